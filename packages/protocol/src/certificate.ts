import { concatBytes, equalBytes, toHex, utf8 } from './bytes.js'
import {
  DOMAIN,
  ED25519_PUBLIC_KEY_BYTES,
  ED25519_SIGNATURE_BYTES,
  MAX_CERT_BYTES,
  MAX_VENUE_ID_LENGTH,
} from './constants.js'
import {
  asArray,
  asBytes,
  asString,
  asUint,
  decodeVersioned,
  encodeCbor,
  encodeVersioned,
  FieldError,
} from './encoding.js'
import { fail, ok, type Result } from './errors.js'
import { VENUE_ID_PATTERN } from './events.js'
import { type KeyPair, signBytes, verifyBytes } from './keys.js'

export const ROLES = ['terminal', 'central'] as const
export type Role = (typeof ROLES)[number]

/** The operator's statement that a key belongs to an enrolled terminal of one venue, for a time. */
export interface EnrollmentCertificate {
  venue: string
  subject: Uint8Array
  role: Role
  /** ms since the epoch */
  notBefore: number
  notAfter: number
  issuer: Uint8Array
}

export interface SignedCertificate {
  certificate: EnrollmentCertificate
  signature: Uint8Array
  bytes: Uint8Array
}

function certArray(c: EnrollmentCertificate): unknown[] {
  return [c.venue, c.subject, ROLES.indexOf(c.role), c.notBefore, c.notAfter, c.issuer]
}

function certSigningBytes(c: EnrollmentCertificate): Uint8Array {
  return concatBytes(utf8(DOMAIN.certificate), new Uint8Array([0]), encodeCbor(certArray(c)))
}

export function issueCertificate(
  operator: KeyPair,
  fields: Omit<EnrollmentCertificate, 'issuer'>,
): SignedCertificate {
  const certificate = { ...fields, issuer: operator.publicKey }
  const signature = signBytes(operator.privateKey, certSigningBytes(certificate))
  return { certificate, signature, bytes: encodeVersioned([certArray(certificate), signature]) }
}

export function decodeCertificate(bytes: Uint8Array): Result<SignedCertificate> {
  const decoded = decodeVersioned(bytes, MAX_CERT_BYTES)
  if (!decoded.ok) return decoded
  try {
    const outer = asArray(decoded.value, 2, 'certificate')
    const c = asArray(outer[0], 6, 'certificate body')
    const certificate: EnrollmentCertificate = {
      venue: asString(c[0], 'venue', MAX_VENUE_ID_LENGTH, VENUE_ID_PATTERN),
      subject: asBytes(c[1], 'subject', ED25519_PUBLIC_KEY_BYTES),
      role: ROLES[asUint(c[2], 'role', ROLES.length - 1)]!,
      notBefore: asUint(c[3], 'notBefore'),
      notAfter: asUint(c[4], 'notAfter'),
      issuer: asBytes(c[5], 'issuer', ED25519_PUBLIC_KEY_BYTES),
    }
    return ok({ certificate, signature: asBytes(outer[1], 'signature', ED25519_SIGNATURE_BYTES), bytes })
  } catch (err: unknown) {
    if (err instanceof FieldError) return fail('ERR_BAD_FIELD', err.message)
    return fail('ERR_MALFORMED', err instanceof Error ? err.message : String(err))
  }
}

export interface VerifyCertificateOptions {
  operatorPublicKey: Uint8Array
  venue: string
  /** ms since the epoch */
  now: number
  /** when given, the certificate must be for this key */
  subject?: Uint8Array
  role?: Role
}

/** Verify an enrollment certificate. Never throws; returns the certificate or why it is not valid. */
export function verifyCertificate(
  input: Uint8Array | SignedCertificate,
  opts: VerifyCertificateOptions,
): Result<SignedCertificate> {
  let signed: SignedCertificate
  if (input instanceof Uint8Array) {
    const d = decodeCertificate(input)
    if (!d.ok) return d
    signed = d.value
  } else {
    signed = input
  }
  const c = signed.certificate
  if (!equalBytes(c.issuer, opts.operatorPublicKey))
    return fail('ERR_WRONG_ISSUER', 'certificate not issued by this venue operator')
  if (!verifyBytes(opts.operatorPublicKey, certSigningBytes(c), signed.signature))
    return fail('ERR_BAD_SIGNATURE', 'certificate signature invalid')
  if (c.venue !== opts.venue)
    return fail('ERR_WRONG_VENUE', `certificate is for venue ${c.venue}, not ${opts.venue}`)
  if (opts.subject !== undefined && !equalBytes(c.subject, opts.subject))
    return fail('ERR_WRONG_SUBJECT', `certificate is for ${toHex(c.subject).slice(0, 16)}…`)
  if (opts.role !== undefined && c.role !== opts.role)
    return fail('ERR_WRONG_SUBJECT', `certificate role is ${c.role}, not ${opts.role}`)
  if (opts.now < c.notBefore) return fail('ERR_NOT_YET_VALID', 'certificate not yet valid')
  if (opts.now > c.notAfter) return fail('ERR_EXPIRED', 'certificate expired')
  return ok(signed)
}
