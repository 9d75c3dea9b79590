/**
 * Every failure of a call. `code` is the API's stable error code (`unauthorized`,
 * `invalid_request`, `not_found`, `payment_not_found`, …) or, when no answer arrived,
 * `timeout` / `network_error` (status 0). An abort by the caller's own signal is not wrapped:
 * the signal's reason is thrown as is.
 */
export class TerminalApiError extends Error {
  readonly code: string
  /** HTTP status, 0 when no response was received */
  readonly status: number
  /** the offending field of a 400 */
  readonly field?: string | undefined

  constructor(
    code: string,
    status: number,
    message: string,
    options?: { field?: string | undefined; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'TerminalApiError'
    this.code = code
    this.status = status
    this.field = options?.field
  }
}
