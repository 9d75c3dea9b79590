export type LedgerErrorCode =
  /** another process (or another ledger instance in this one) holds the directory's LOCK */
  | 'ERR_LEDGER_LOCKED'
  /** the database could not be opened for another reason (see `cause`) */
  | 'ERR_LEDGER_OPEN_FAILED'
  /** a method was called before open() or after close() */
  | 'ERR_LEDGER_NOT_OPEN'
  /** stored bytes no longer decode */
  | 'ERR_LEDGER_CORRUPT'
  /** a payment's idempotency key already belongs to another payment */
  | 'ERR_IDEMPOTENCY_CONFLICT'
  /** a batch failed to be written: nothing queued behind it was written; reopen the ledger */
  | 'ERR_LEDGER_WRITE_FAILED'
  | 'ERR_INVALID_ARGUMENT'

export class LedgerError extends Error {
  readonly code: LedgerErrorCode

  constructor(code: LedgerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'LedgerError'
    this.code = code
  }
}
