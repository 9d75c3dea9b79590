import { concatBytes, utf8 } from './bytes.js'
import { CURRENCY_PATTERN, DECLINE_CODES, type DeclineCode, MAX_AMOUNT_MINOR } from './codes.js'
import { DOMAIN, NULLIFIER_BYTES, PROOF_BYTES, PROTOCOL_VERSION } from './constants.js'
import { fail, ok, type Result } from './errors.js'
import { type KeyPair, signBytes, verifyBytes } from './keys.js'

export const PROOF_DECISIONS = [
  'approved_offline',
  'approved_offline_isolated',
  'approved_online',
  'declined_offline',
  'declined_online',
] as const
export type ProofDecision = (typeof PROOF_DECISIONS)[number]

/**
 * What a proof attests: the checks ran for this nullifier and returned `decision` (and
 * `declineCode`) at `ts`, under `policyVersion`, as the terminal's `seq`-th event.
 */
export interface ProofClaims {
  nullifier: Uint8Array
  amountMinor: number
  currency: string
  decision: ProofDecision
  declineCode?: DeclineCode | undefined
  ts: number
  seq: number
  policyVersion: number
}

export interface DecodedProof extends Omit<ProofClaims, 'nullifier'> {
  signature: Uint8Array
}

// Fixed layout, 87 bytes (a proof must fit in 90, so there is no room for a generic encoder):
//   0      version
//   1      decision index
//   2      decline code index + 1 (0 = none)
//   3..8   ts, ms since epoch, 48-bit big-endian
//   9..12  seq, uint32 big-endian
//   13..14 policy version, uint16 big-endian
//   15..20 amount in minor units, 48-bit big-endian
//   21..22 currency, three letters A–Z packed 5 bits each
//   23..86 Ed25519 signature over DOMAIN.proof ‖ 0 ‖ nullifier ‖ bytes 0..22
// The nullifier itself is not carried: the verifier has it with the payment it checks.
const HEADER_BYTES = 23

function packCurrency(c: string): number {
  return ((c.charCodeAt(0) - 65) << 10) | ((c.charCodeAt(1) - 65) << 5) | (c.charCodeAt(2) - 65)
}

function unpackCurrency(n: number): string {
  return String.fromCharCode(65 + ((n >> 10) & 31), 65 + ((n >> 5) & 31), 65 + (n & 31))
}

function header(c: Omit<ProofClaims, 'nullifier'>): Uint8Array {
  if (!CURRENCY_PATTERN.test(c.currency)) throw new TypeError('currency must be ISO 4217 alphabetic')
  if (!Number.isSafeInteger(c.amountMinor) || c.amountMinor < 0 || c.amountMinor > MAX_AMOUNT_MINOR)
    throw new TypeError('amount out of range')
  const b = Buffer.alloc(HEADER_BYTES)
  b[0] = PROTOCOL_VERSION
  b[1] = PROOF_DECISIONS.indexOf(c.decision)
  b[2] = c.declineCode === undefined ? 0 : DECLINE_CODES.indexOf(c.declineCode) + 1
  b.writeUIntBE(c.ts, 3, 6)
  b.writeUInt32BE(c.seq >>> 0, 9)
  b.writeUInt16BE(c.policyVersion & 0xffff, 13)
  b.writeUIntBE(c.amountMinor, 15, 6)
  b.writeUInt16BE(packCurrency(c.currency), 21)
  return new Uint8Array(b)
}

function signingBytes(nullifier: Uint8Array, head: Uint8Array): Uint8Array {
  return concatBytes(utf8(DOMAIN.proof), new Uint8Array([0]), nullifier, head)
}

export function createProof(key: KeyPair, claims: ProofClaims): Uint8Array {
  if (claims.nullifier.byteLength !== NULLIFIER_BYTES) throw new TypeError('nullifier must be 32 bytes')
  const head = header(claims)
  return concatBytes(head, signBytes(key.privateKey, signingBytes(claims.nullifier, head)))
}

export function decodeProof(bytes: Uint8Array): Result<DecodedProof> {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength !== PROOF_BYTES)
    return fail('ERR_MALFORMED', `a proof is ${PROOF_BYTES} bytes`)
  if (bytes[0] !== PROTOCOL_VERSION) return fail('ERR_BAD_VERSION', `unsupported proof version ${bytes[0]}`)
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const decision = PROOF_DECISIONS[b[1]!]
  if (decision === undefined) return fail('ERR_BAD_FIELD', 'unknown decision')
  const codeIndex = b[2]!
  const declineCode = codeIndex === 0 ? undefined : DECLINE_CODES[codeIndex - 1]
  if (codeIndex !== 0 && declineCode === undefined) return fail('ERR_BAD_FIELD', 'unknown decline code')
  const currency = unpackCurrency(b.readUInt16BE(21))
  if (b.readUInt16BE(21) >> 15 !== 0 || !CURRENCY_PATTERN.test(currency))
    return fail('ERR_BAD_FIELD', 'invalid currency')
  return ok({
    decision,
    declineCode,
    ts: b.readUIntBE(3, 6),
    seq: b.readUInt32BE(9),
    policyVersion: b.readUInt16BE(13),
    amountMinor: b.readUIntBE(15, 6),
    currency,
    signature: bytes.slice(HEADER_BYTES),
  })
}

/** Verify a proof for a nullifier with the terminal's public key alone. Never throws. */
export function verifyProof(
  bytes: Uint8Array,
  nullifier: Uint8Array,
  publicKey: Uint8Array,
): Result<DecodedProof> {
  const d = decodeProof(bytes)
  if (!d.ok) return d
  if (nullifier.byteLength !== NULLIFIER_BYTES) return fail('ERR_BAD_FIELD', 'nullifier must be 32 bytes')
  if (!verifyBytes(publicKey, signingBytes(nullifier, bytes.subarray(0, HEADER_BYTES)), d.value.signature)) {
    return fail('ERR_BAD_SIGNATURE', 'proof signature invalid')
  }
  return d
}
