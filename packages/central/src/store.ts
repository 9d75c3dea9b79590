import type {
  AbortOptions,
  DenylistState,
  OutboxEntry,
  PaymentRecord,
  PaymentStatus,
  PendingRelease,
  StoredEvent,
  WebhookEndpoint,
} from './types.js'

/** One write of an atomic batch. A backend applies a whole batch or none of it. */
export type StoreOp =
  | { op: 'putEvent'; event: StoredEvent }
  /**
   * payment.rev undefined: a new payment (fails with StoreConflict if one exists); otherwise an
   * update of exactly the revision that was read (StoreConflict if another writer changed it since).
   * Several puts of one payment in a batch all carry the revision read before the batch.
   */
  | { op: 'putPayment'; payment: PaymentRecord }
  /** StoreConflict if another payment holds it */
  | { op: 'claimNullifier'; nullifier: string; paymentId: string }
  /** a voided payment gives its nullifier back (only while this payment holds it) */
  | { op: 'delNullifier'; nullifier: string; paymentId: string }
  | { op: 'putRelease'; release: PendingRelease }
  | { op: 'delRelease'; reservationId: string }
  | { op: 'putWebhook'; endpoint: WebhookEndpoint }
  | { op: 'delWebhook'; id: string }
  | { op: 'putOutbox'; entry: OutboxEntry }
  | { op: 'delOutbox'; id: string }
  | { op: 'putDeadLetter'; entry: OutboxEntry }
  /** creates the venue's list, or replaces exactly version − 1 of it (StoreConflict otherwise) */
  | { op: 'putDenylist'; denylist: DenylistState }

/**
 * Another writer (another process on the same database) changed what a unit of work read: nothing
 * of the batch was written; read again and redo it.
 */
export class StoreConflict extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StoreConflict'
  }
}

export interface PaymentFilter {
  venue?: string
  status?: PaymentStatus
  limit?: number
}

/** What reports are made of: payments of one venue grouped, amounts summed by currency. */
export interface PaymentAggregate {
  venue: string
  status: PaymentStatus
  currency: string
  /** committed offline (not an online authorisation) */
  offline: boolean
  partitionLoss: boolean
  /** syncDeclineCode ?? declineCode, for failed payments */
  code: string | null
  /** the origin (terminal key) of a commit failed as a policy violation, else null */
  violator: string | null
  count: number
  amountMinor: number
}

/**
 * Everything central keeps. Correctness does not depend on one process: every apply() is one
 * transaction checked by the database (unique keys, revisions), and a batch that lost a race
 * throws StoreConflict, so any number of central processes can share one store.
 */
export interface CentralStore {
  /** Open (and migrate) the store. */
  open(opts?: AbortOptions): Promise<void>
  close(opts?: AbortOptions): Promise<void>

  /** Apply all writes atomically and durably, or none (StoreConflict: a race was lost). */
  apply(ops: StoreOp[], opts?: AbortOptions): Promise<void>

  getEvent(origin: string, seq: number, opts?: AbortOptions): Promise<StoredEvent | undefined>
  getEventById(id: string, opts?: AbortOptions): Promise<StoredEvent | undefined>
  countEvents(opts?: AbortOptions): Promise<number>

  getPayment(paymentId: string, opts?: AbortOptions): Promise<PaymentRecord | undefined>
  /** newest (queuedAt) first, at most filter.limit */
  listPayments(filter: PaymentFilter, opts?: AbortOptions): Promise<PaymentRecord[]>
  /** every payment, of one venue when given */
  scanPayments(filter: { venue?: string }, opts?: AbortOptions): AsyncIterable<PaymentRecord>
  /** ids of payments in queued or processing, oldest queuedAt first */
  listActivePayments(opts?: AbortOptions): Promise<string[]>
  /**
   * Claim these payments for settlement by `owner` until now + leaseMs (SELECT … FOR UPDATE SKIP
   * LOCKED): returns those still queued or processing and not claimed by another owner's live lease.
   */
  claimPayments(ids: string[], owner: string, now: number, leaseMs: number): Promise<string[]>
  /** Give up owner's claims (all of them when ids is omitted). */
  releasePayments(owner: string, ids?: string[]): Promise<void>
  /** Payments (of one venue when given) aggregated for reports: one GROUP BY over report_payments. */
  aggregatePayments(venue?: string, opts?: AbortOptions): Promise<PaymentAggregate[]>

  /** the payment that holds this nullifier (committed or authorised first, not since voided), if any */
  getNullifier(nullifier: string, opts?: AbortOptions): Promise<string | undefined>
  getPendingRelease(reservationId: string, opts?: AbortOptions): Promise<PendingRelease | undefined>

  getWebhook(id: string, opts?: AbortOptions): Promise<WebhookEndpoint | undefined>
  listWebhooks(opts?: AbortOptions): Promise<WebhookEndpoint[]>
  /** pending deliveries, oldest first */
  listOutbox(opts?: AbortOptions): Promise<OutboxEntry[]>
  /**
   * Claim due deliveries for `owner` until now + leaseMs: per (endpoint, payment) only the oldest
   * undelivered one, so one payment's notifications go out in order whichever process sends them.
   */
  claimOutbox(owner: string, now: number, leaseMs: number, limit: number): Promise<OutboxEntry[]>
  /** Give up owner's claims on deliveries (when stopping). */
  releaseOutbox(owner: string): Promise<void>
  /** when the earliest delivery not yet due is due, if any */
  nextOutboxDue(opts?: AbortOptions): Promise<number | undefined>
  listDeadLetters(opts?: AbortOptions): Promise<OutboxEntry[]>

  getDenylist(venueId: string, opts?: AbortOptions): Promise<DenylistState | undefined>
}
