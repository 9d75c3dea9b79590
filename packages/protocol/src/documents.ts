import { concatBytes, fromBase64url, toBase64url, toHex, utf8 } from './bytes.js'
import { encodeCbor } from './encoding.js'
import { fail, ok, type Result } from './errors.js'
import { type KeyPair, signBytes, verifyBytes } from './keys.js'

/**
 * A JSON document signed by a key (policy files, deny lists): the signature is over the
 * deterministic CBOR encoding of the value, so whitespace and key order in the file do not matter.
 */
export interface SignedDocument<T> {
  payload: T
  signer: string
  signature: string
}

function message(domain: string, payload: unknown): Uint8Array {
  return concatBytes(utf8(domain), new Uint8Array([0]), encodeCbor(payload))
}

export function signDocument<T>(domain: string, key: KeyPair, payload: T): SignedDocument<T> {
  return {
    payload,
    signer: toHex(key.publicKey),
    signature: toBase64url(signBytes(key.privateKey, message(domain, payload))),
  }
}

/** Never throws. Checks shape, signer and signature; the payload's own schema is the caller's. */
export function verifyDocument<T = unknown>(
  domain: string,
  doc: unknown,
  signerPublicKey: Uint8Array,
): Result<SignedDocument<T>> {
  const d = doc as Partial<SignedDocument<T>> | null
  if (
    d === null ||
    typeof d !== 'object' ||
    typeof d.signature !== 'string' ||
    typeof d.signer !== 'string' ||
    !('payload' in d)
  ) {
    return fail('ERR_MALFORMED', 'not a signed document ({ payload, signer, signature })')
  }
  if (d.signer !== toHex(signerPublicKey))
    return fail('ERR_WRONG_ISSUER', 'document not signed by the expected key')
  let valid = false
  try {
    valid = verifyBytes(signerPublicKey, message(domain, d.payload), fromBase64url(d.signature))
  } catch {
    valid = false
  }
  if (!valid) return fail('ERR_BAD_SIGNATURE', 'document signature invalid')
  return ok(d as SignedDocument<T>)
}
