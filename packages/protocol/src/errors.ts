/** Stable error codes of the protocol package. Decoders and verifiers return these, never throw. */
export type ProtocolErrorCode =
  | 'ERR_TOO_LARGE'
  | 'ERR_BAD_VERSION'
  | 'ERR_MALFORMED'
  | 'ERR_NON_CANONICAL'
  | 'ERR_BAD_FIELD'
  | 'ERR_BAD_SIGNATURE'
  | 'ERR_WRONG_VENUE'
  | 'ERR_NOT_YET_VALID'
  | 'ERR_EXPIRED'
  | 'ERR_WRONG_ISSUER'
  | 'ERR_WRONG_SUBJECT'

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode
  constructor(code: ProtocolErrorCode, message: string) {
    super(message)
    this.name = 'ProtocolError'
    this.code = code
  }
}

/** A typed result: decoders and verifiers return one of these instead of throwing on bad input. */
export type Result<T> = { ok: true; value: T } | { ok: false; error: ProtocolError }

export function ok<T>(value: T): Result<T> {
  return { ok: true, value }
}

export function fail<T = never>(code: ProtocolErrorCode, message: string): Result<T> {
  return { ok: false, error: new ProtocolError(code, message) }
}
