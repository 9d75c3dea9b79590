import type {
  AbortOptions,
  CheckpointRecord,
  DenylistState,
  EventLogEntry,
  OutboxEntry,
  PaymentRecord,
  PaymentStatus,
  PendingRelease,
  RevocationRecord,
  StoredEvent,
  WebhookBacklog,
  WebhookEndpoint,
  WebhookEventType,
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
  /** an endpoint and every delivery still waiting for it */
  | { op: 'delWebhook'; id: string }
  /** change these settings of an endpoint (events null: every type) */
  | {
      op: 'patchWebhook'
      id: string
      url?: string
      events?: WebhookEventType[] | null
      secret?: string
      previousSecrets?: Array<{ secret: string; expiresAt: number }>
      disabled?: { at: number; reason: string } | false
    }
  /**
   * a delivery attempt's outcome on the endpoint's health; a failure with `disableIfNoSuccessSince`
   * disables the endpoint unless it has had a success since then
   */
  | { op: 'webhookAttempt'; id: string; at: number; error?: string; disableIfNoSuccessSince?: number }
  /** every delivery waiting for the endpoint: due at `at`, attempts from zero (re-enabled) */
  | { op: 'rescheduleOutbox'; endpointId: string; at: number }
  /** an event of the event log (kept once per id) */
  | { op: 'putWebhookEvent'; event: EventLogEntry }
  | { op: 'putOutbox'; entry: OutboxEntry }
  /** a failed attempt: rescheduled and unclaimed (only while the entry exists: never re-inserts) */
  | { op: 'retryOutbox'; id: string; attempts: number; nextAttemptAt: number; lastError: string }
  | { op: 'delOutbox'; id: string }
  | { op: 'putDeadLetter'; entry: OutboxEntry }
  /** creates the venue's list, or replaces exactly version − 1 of it (StoreConflict otherwise) */
  | { op: 'putDenylist'; denylist: DenylistState }
  /** keeps the earliest effective time per (venue, terminal): a revocation only ever widens */
  | { op: 'putRevocation'; revocation: RevocationRecord }
  /** keeps the latest `at` per (venue, terminal) */
  | { op: 'putCheckpoint'; checkpoint: CheckpointRecord }

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

export interface EventLogFilter {
  types?: WebhookEventType[]
  paymentId?: string
  /** createdAt ≥ */
  createdGte?: number
  /** createdAt < */
  createdLt?: number
  /** 'desc' (default): newest first */
  order?: 'asc' | 'desc'
  /** keyset: only entries after this position in the order */
  afterPos?: number
  limit: number
}

export interface RedeliverRequest {
  endpointId: string
  /** these events */
  eventIds?: string[]
  /** or every event created at or after this time (until `until` when given) of `types` */
  since?: number
  until?: number
  types?: WebhookEventType[]
  now: number
}

/** Keys a unit of work will read: getEvent, getPayment, getNullifier, getPendingRelease of each. */
export interface ReadSetRequest {
  /** events by id (getEventById) */
  ids: string[]
  /** events by origin and seq (getEvent) */
  events: Array<{ origin: string; seq: number }>
  payments: string[]
  nullifiers: string[]
  releases: string[]
}

/** What is stored under those keys (a key with nothing stored is simply absent). */
export interface ReadSet {
  /** the events found by id and by (origin, seq) */
  events: StoredEvent[]
  payments: PaymentRecord[]
  /** nullifier → the payment holding it */
  nullifiers: Map<string, string>
  releases: PendingRelease[]
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
  /** which of these event ids are stored (one query for a whole sync batch) */
  knownEventIds(ids: string[], opts?: AbortOptions): Promise<Set<string>>
  /** what a sync batch will read, in a few queries instead of several per event */
  readSet(req: ReadSetRequest, opts?: AbortOptions): Promise<ReadSet>
  countEvents(opts?: AbortOptions): Promise<number>
  /**
   * one origin's events with seq > afterSeq, in seq order, at most `limit` (a terminal that lost its
   * disk takes its own events back before it signs again: docs/protocol.md, "Lost disks")
   */
  listOriginEvents(
    origin: string,
    afterSeq: number,
    limit: number,
    opts?: AbortOptions,
  ): Promise<StoredEvent[]>

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
   * Claim due deliveries for `owner` until now + leaseMs (SELECT … FOR UPDATE SKIP LOCKED), of one
   * endpoint when given: per (endpoint, payment) only the oldest undelivered one, so one payment's
   * notifications go out in order whichever process sends them.
   */
  claimOutbox(
    owner: string,
    now: number,
    leaseMs: number,
    limit: number,
    endpointId?: string,
  ): Promise<OutboxEntry[]>
  /** Give up owner's claims on deliveries (these, or all of them when stopping). */
  releaseOutbox(owner: string, ids?: string[]): Promise<void>
  /** when the earliest delivery (of one endpoint, when given) not yet due is due, if any */
  nextOutboxDue(opts?: AbortOptions & { endpointId?: string }): Promise<number | undefined>
  /** endpoints with a delivery due at `now` that nobody holds */
  dueEndpoints(now: number, opts?: AbortOptions): Promise<string[]>
  /** pending deliveries per endpoint (only endpoints with some) */
  webhookBacklog(opts?: AbortOptions): Promise<WebhookBacklog[]>
  listDeadLetters(opts?: AbortOptions): Promise<OutboxEntry[]>

  /** The event log: filtered, in `order` by position, after `afterPos`, at most `limit`. */
  listWebhookEvents(filter: EventLogFilter, opts?: AbortOptions): Promise<EventLogEntry[]>
  getWebhookEvent(id: string, opts?: AbortOptions): Promise<EventLogEntry | undefined>
  /** Queue logged events for one endpoint again (after what it has pending); returns how many. */
  redeliverEvents(req: RedeliverRequest, opts?: AbortOptions): Promise<number>
  /**
   * Delete log entries created before `before`, except those still pending for an enabled endpoint;
   * deliveries of a disabled endpoint created before it go with them.
   */
  pruneWebhookEvents(before: number, opts?: AbortOptions): Promise<{ events: number; deliveries: number }>

  getDenylist(venueId: string, opts?: AbortOptions): Promise<DenylistState | undefined>

  /** issue 17: the operator revocations of a venue (every venue when omitted) */
  listRevocations(venueId?: string, opts?: AbortOptions): Promise<RevocationRecord[]>
  /** issue 17: the latest sync checkpoint of each terminal of the venue */
  listCheckpoints(venueId: string, opts?: AbortOptions): Promise<CheckpointRecord[]>
  /** issue 17: payments of the venue still `created` with queuedAt ≤ `before`, oldest first */
  listCreatedBefore(venueId: string, before: number, limit: number, opts?: AbortOptions): Promise<string[]>
  /** issue 17: ids of the venue's abandoned payments abandoned at or after `since`, newest first */
  listAbandoned(venueId: string, since: number, limit: number, opts?: AbortOptions): Promise<string[]>
}
