/**
 * Stable error codes of the terminal. The HTTP API answers `{ code, message, field? }` with the
 * status below; the in-process API throws a TerminalError with the same code.
 */
export const TERMINAL_ERROR_STATUS = {
  /** a request field is missing, has the wrong type or is out of range (`field` names it) */
  invalid_request: 400,
  /** the body is not valid JSON */
  invalid_json: 400,
  /** missing or wrong bearer token */
  unauthorized: 401,
  /** no such route */
  not_found: 404,
  /** no payment with this id */
  payment_not_found: 404,
  /** the idempotency key was first used with another amount, currency, method or card (`field` names it) */
  idempotency_key_reused: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  /** the HTTP request was not received in time */
  request_timeout: 408,
  /** the HTTP request headers are too large */
  headers_too_large: 431,
  /** the operator revoked this terminal (issue 17): it takes no new payments */
  terminal_revoked: 403,
  /** the terminal is starting or stopping */
  not_ready: 503,
  /** the caller's signal aborted the call before a decision was taken */
  aborted: 499,
  internal: 500,
  /** configuration problem found by start() (venue bundle, key, data directory) */
  invalid_config: 500,
  /** the central link failed (network, timeout, 5xx) */
  central_unavailable: 502,
  /** central refused a request (4xx) */
  central_rejected: 502,
} as const

export type TerminalErrorCode = keyof typeof TERMINAL_ERROR_STATUS

export class TerminalError extends Error {
  readonly code: TerminalErrorCode
  readonly status: number
  /** the offending request field, e.g. `amountMinor` or `context.location` */
  readonly field?: string | undefined
  /** for central_unavailable / central_rejected: central's HTTP status, when it answered */
  readonly upstreamStatus?: number | undefined

  constructor(
    code: TerminalErrorCode,
    message: string,
    options?: { field?: string | undefined; cause?: unknown; upstreamStatus?: number | undefined },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'TerminalError'
    this.code = code
    this.status = TERMINAL_ERROR_STATUS[code]
    this.field = options?.field
    this.upstreamStatus = options?.upstreamStatus
  }

  toJSON(): { code: string; message: string; field?: string } {
    return this.field === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, field: this.field }
  }
}
