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
  | { op: 'putPayment'; payment: PaymentRecord }
  | { op: 'claimNullifier'; nullifier: string; paymentId: string }
  /** a voided payment gives its nullifier back (the caller checks it holds it) */
  | { op: 'delNullifier'; nullifier: string }
  | { op: 'putRelease'; release: PendingRelease }
  | { op: 'delRelease'; reservationId: string }
  | { op: 'putWebhook'; endpoint: WebhookEndpoint }
  | { op: 'delWebhook'; id: string }
  | { op: 'putOutbox'; entry: OutboxEntry }
  | { op: 'delOutbox'; id: string }
  | { op: 'putDeadLetter'; entry: OutboxEntry }
  | { op: 'putDenylist'; denylist: DenylistState }

export interface PaymentFilter {
  venue?: string
  status?: PaymentStatus
  limit?: number
}

/**
 * Everything central keeps. The settlement and dedup logic only ever talks to this interface, so a
 * PostgreSQL backend (one transaction per apply(), unique index on nullifier and on (origin, seq))
 * can replace the LevelDB one without touching it. Callers serialise writes (one writer per store).
 */
export interface CentralStore {
  open(opts?: AbortOptions): Promise<void>
  close(opts?: AbortOptions): Promise<void>

  /** Apply all writes atomically and durably (fsync), or none. */
  apply(ops: StoreOp[], opts?: AbortOptions): Promise<void>

  getEvent(origin: string, seq: number, opts?: AbortOptions): Promise<StoredEvent | undefined>
  getEventById(id: string, opts?: AbortOptions): Promise<StoredEvent | undefined>
  countEvents(opts?: AbortOptions): Promise<number>

  getPayment(paymentId: string, opts?: AbortOptions): Promise<PaymentRecord | undefined>
  /** newest (queuedAt) first, at most filter.limit */
  listPayments(filter: PaymentFilter, opts?: AbortOptions): Promise<PaymentRecord[]>
  /** every payment, of one venue when given (for reports) */
  scanPayments(filter: { venue?: string }, opts?: AbortOptions): AsyncIterable<PaymentRecord>
  /** ids of payments in queued or processing, oldest queuedAt first */
  listActivePayments(opts?: AbortOptions): Promise<string[]>

  /** the payment that holds this nullifier (committed or authorised first, not since voided), if any */
  getNullifier(nullifier: string, opts?: AbortOptions): Promise<string | undefined>
  getPendingRelease(reservationId: string, opts?: AbortOptions): Promise<PendingRelease | undefined>

  getWebhook(id: string, opts?: AbortOptions): Promise<WebhookEndpoint | undefined>
  listWebhooks(opts?: AbortOptions): Promise<WebhookEndpoint[]>
  /** pending deliveries, oldest first */
  listOutbox(opts?: AbortOptions): Promise<OutboxEntry[]>
  listDeadLetters(opts?: AbortOptions): Promise<OutboxEntry[]>

  getDenylist(venueId: string, opts?: AbortOptions): Promise<DenylistState | undefined>
}
