/** Stable error codes of the central service. HTTP responses carry them as `{ code, message }`. */
export type CentralErrorCode =
  | 'ERR_NOT_STARTED'
  | 'ERR_ABORTED'
  | 'ERR_INVALID_REQUEST'
  /** the HTTP request was not received in time (408) */
  | 'ERR_REQUEST_TIMEOUT'
  /** the HTTP request headers are too large (431) */
  | 'ERR_HEADERS_TOO_LARGE'
  | 'ERR_UNAUTHORIZED'
  | 'ERR_ADMIN_DISABLED'
  | 'ERR_NOT_FOUND'
  | 'ERR_UNKNOWN_VENUE'
  | 'ERR_INVALID_EXPORT'
  | 'ERR_STORE'
  | 'ERR_ISSUER_UNAVAILABLE'
  /** a payment authorised online cannot be voided: the issuer adapter has no reverse() */
  | 'ERR_REVERSAL_UNSUPPORTED'

export class CentralError extends Error {
  readonly code: CentralErrorCode | RejectCode
  /** HTTP status this error maps to */
  readonly status: number
  constructor(code: CentralErrorCode | RejectCode, message: string, status = 400) {
    super(message)
    this.name = 'CentralError'
    this.code = code
    this.status = status
  }
}

/**
 * Why one event of an ingest batch was rejected. Protocol decode errors keep their protocol code
 * (ERR_MALFORMED, ERR_NON_CANONICAL, ERR_BAD_FIELD, ERR_TOO_LARGE, ERR_BAD_VERSION).
 */
export type RejectCode =
  | 'ERR_BAD_ENCODING'
  | 'ERR_TOO_LARGE'
  | 'ERR_BAD_VERSION'
  | 'ERR_MALFORMED'
  | 'ERR_NON_CANONICAL'
  | 'ERR_BAD_FIELD'
  | 'ERR_UNKNOWN_VENUE'
  | 'ERR_NOT_ENROLLED'
  /** signed more than the policy's maxClockSkewMs ahead of central's clock (may be retried later) */
  | 'ERR_FUTURE_TS'
  | 'ERR_BAD_SIGNATURE'
  | 'ERR_QUORUM'
  | 'ERR_SEQ_CONFLICT'
  | 'ERR_NOT_ORIGIN'
  | 'ERR_WRONG_TYPE'

export class AbortError extends CentralError {
  constructor(message = 'the operation was aborted') {
    super('ERR_ABORTED', message, 499)
    this.name = 'AbortError'
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new AbortError()
}
