import { decode, encode } from 'cborg'
import { equalBytes } from './bytes.js'
import { PROTOCOL_VERSION } from './constants.js'
import { fail, ok, type Result } from './errors.js'

// Deterministic CBOR (RFC 8949 §4.2 core rules, as cborg emits by default): shortest integer
// forms, definite lengths, no floats in our schemas. Every structure is a CBOR array of fixed
// positions, which is smaller than a map and has no key-order question.
const DECODE_OPTIONS = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: false,
  rejectDuplicateMapKeys: true,
  useMaps: false,
} as const

export type Cbor = unknown

export function encodeCbor(value: Cbor): Uint8Array {
  return encode(value)
}

/** version byte ‖ deterministic CBOR */
export function encodeVersioned(value: Cbor): Uint8Array {
  const body = encode(value)
  const out = new Uint8Array(body.byteLength + 1)
  out[0] = PROTOCOL_VERSION
  out.set(body, 1)
  return out
}

/**
 * Decode hostile bytes: size-checked before parsing, any parser error becomes a typed result,
 * and the input must be the canonical encoding of what it decodes to (so one value has exactly
 * one wire form, and content hashes are stable).
 */
export function decodeVersioned(bytes: Uint8Array, maxBytes: number): Result<unknown> {
  if (!(bytes instanceof Uint8Array)) return fail('ERR_MALFORMED', 'input is not bytes')
  if (bytes.byteLength > maxBytes)
    return fail('ERR_TOO_LARGE', `${bytes.byteLength} bytes exceeds the ${maxBytes}-byte limit`)
  if (bytes.byteLength < 2) return fail('ERR_MALFORMED', 'input too short')
  if (bytes[0] !== PROTOCOL_VERSION) return fail('ERR_BAD_VERSION', `unsupported version ${bytes[0]}`)
  const body = bytes.subarray(1)
  let value: unknown
  try {
    value = decode(body, DECODE_OPTIONS)
  } catch (err: unknown) {
    return fail('ERR_MALFORMED', `invalid CBOR: ${err instanceof Error ? err.message : String(err)}`)
  }
  try {
    if (!equalBytes(encode(value), body)) return fail('ERR_NON_CANONICAL', 'encoding is not canonical')
  } catch {
    return fail('ERR_MALFORMED', 'value cannot be re-encoded')
  }
  return ok(value)
}

// Field readers for fixed-position arrays. They throw FieldError, caught by each decoder.
export class FieldError extends Error {}

export function asArray(v: unknown, len: number, what: string): unknown[] {
  if (!Array.isArray(v) || v.length !== len) throw new FieldError(`${what}: expected an array of ${len}`)
  return v
}

export function asUint(v: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max)
    throw new FieldError(`${what}: expected an unsigned integer ≤ ${max}`)
  return v
}

export function asBytes(v: unknown, what: string, len?: number, maxLen = 16 * 1024): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new FieldError(`${what}: expected bytes`)
  if (len !== undefined && v.byteLength !== len) throw new FieldError(`${what}: expected ${len} bytes`)
  if (v.byteLength > maxLen) throw new FieldError(`${what}: longer than ${maxLen} bytes`)
  return v
}

export function asString(v: unknown, what: string, maxLen: number, pattern?: RegExp): string {
  if (typeof v !== 'string' || v.length > maxLen)
    throw new FieldError(`${what}: expected a string of at most ${maxLen}`)
  if (pattern !== undefined && !pattern.test(v)) throw new FieldError(`${what}: invalid format`)
  return v
}

export function asBool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new FieldError(`${what}: expected a boolean`)
  return v
}
