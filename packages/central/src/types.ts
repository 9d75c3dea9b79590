import type { CommitMode, PaymentMethod } from '@nullmesh/protocol'

export interface AbortOptions {
  signal?: AbortSignal
}

/**
 * created: reservation seen, no Commit yet (never settled). released: abandoned by its origin
 * without a Commit (never settled). queued → processing → completed | failed: settlement.
 * voided: its terminal declined it after an online authorisation went unanswered (never charged,
 * an online charge reversed; a Commit arriving later fails with syncDeclineCode 'voided').
 */
export type PaymentStatus =
  | 'created'
  | 'released'
  | 'queued'
  | 'processing'
  | 'completed'
  | 'failed'
  | 'voided'
  /**
   * issue 17, item 5: a reservation without Commit or Release that no ledger of the venue can still
   * commit (every enrolled, non-revoked terminal synced past it): its terminals release it
   */
  | 'abandoned'

export const PAYMENT_STATUSES: readonly PaymentStatus[] = [
  'created',
  'released',
  'queued',
  'processing',
  'completed',
  'failed',
  'voided',
  'abandoned',
]

export const FINAL_STATUSES: ReadonlySet<PaymentStatus> = new Set([
  'completed',
  'failed',
  'voided',
  'abandoned',
])

/** Why a committed payment was not settled (payment.syncDeclineCode). */
export type SyncDeclineCode =
  | 'insufficient_funds'
  | 'lost_or_stolen'
  | 'expired'
  | 'duplicate_nullifier'
  | 'issuer_declined'
  /** committed after its terminal had voided the reservation at central */
  | 'voided'
  /** a Commit outside the venue policy (issue 17): its terminal broke the rules; see `violation` */
  | 'policy_violation'
  /** committed after central had abandoned the reservation (issue 17, item 5): never settled */
  | 'abandoned'

/** One payment as central records it. Card data is only ever the terminal's keyed hashes. */
export interface PaymentRecord {
  /** the Reservation's event id (hex) */
  paymentId: string
  venue: string
  /** origin terminal public key, hex */
  origin: string
  seq: number
  nullifier: string
  cardKey: string
  amountMinor: number
  currency: string
  method: PaymentMethod
  policyVersion: number
  /** when the card was presented: the reservation's ts (ms since the epoch) */
  queuedAt: number
  status: PaymentStatus
  /** how it was approved, once a Commit (or an online authorisation) is known */
  mode?: CommitMode
  /** id (hex) of the Commit event, when one was merged */
  commitId?: string
  /** e.g. 'isolated' (approved without quorum), 'online_unverified' (online commit central never authorised) */
  flags: string[]
  declineCode?: string
  syncDeclineCode?: SyncDeclineCode
  authorizationCode?: string
  /** a second Commit of an already committed nullifier: money handed out twice across a partition */
  partitionLoss?: boolean
  /** why its Commit broke the policy (`code: message`), when syncDeclineCode is policy_violation */
  violation?: string
  createdAt: number
  updatedAt: number
  completedAt?: number
  /** the store's revision of this record, as read (a write names it; undefined: not stored yet) */
  rev?: number
}

export interface StoredEvent {
  /** hex sha256 of the wire bytes */
  id: string
  origin: string
  seq: number
  venue: string
  type: 'reservation' | 'commit' | 'release' | 'transfer'
  /** base64url wire bytes */
  bytes: string
  receivedAt: number
}

/** A Release that arrived before the reservation it releases. */
export interface PendingRelease {
  reservationId: string
  origin: string
  eventId: string
}

export interface WebhookEndpoint {
  id: string
  url: string
  /** the current signing secret */
  secret: string
  createdAt: number
  /** the event types delivered to it; undefined: every type */
  events?: WebhookEventType[]
  /** set (true) while deliveries are stopped: by PATCH, or after failing for the whole retry schedule */
  disabled?: boolean
  disabledAt?: number
  disabledReason?: string
  /** secrets replaced by a rotation that still sign deliveries until expiresAt */
  previousSecrets?: Array<{ secret: string; expiresAt: number }>
  /** delivery health (written by the dispatcher) */
  lastSuccessAt?: number
  lastErrorAt?: number
  lastError?: string
  /** the first failure since the last success */
  failingSince?: number
}

export type WebhookEventType =
  | 'payment.queued'
  | 'payment.processing'
  | 'payment.completed'
  | 'payment.failed'

export const WEBHOOK_EVENT_TYPES: readonly WebhookEventType[] = [
  'payment.queued',
  'payment.processing',
  'payment.completed',
  'payment.failed',
]

/** The payment as webhooks and reports show it. */
export interface PaymentView {
  paymentId: string
  venue: string
  origin: string
  amountMinor: number
  currency: string
  status: PaymentStatus
  declineCode?: string
  syncDeclineCode?: SyncDeclineCode
  queuedAt: number
  completedAt?: number
  mode?: CommitMode
  flags: string[]
  authorizationCode?: string
}

/** The compact status a sync response carries. */
export interface PaymentStatusView {
  paymentId: string
  status: PaymentStatus
  declineCode?: string
  syncDeclineCode?: SyncDeclineCode
  queuedAt: number
  completedAt?: number
}

export interface WebhookEvent {
  /** stable per (payment, status): a redelivery carries the same id */
  id: string
  type: WebhookEventType
  createdAt: number
  /** only on `nullmesh webhooks trigger` test events, which are not in the event log */
  test?: true
  data: { payment: PaymentView }
}

/** One entry of the event log (webhook_events): the event exactly as delivered. */
export interface EventLogEntry {
  id: string
  type: WebhookEventType
  paymentId: string
  createdAt: number
  /** the exact JSON body POSTed to endpoints */
  body: string
  /** the log's order (assigned when written) */
  pos?: number
}

/** Per endpoint: what waits to be delivered. */
export interface WebhookBacklog {
  endpointId: string
  pending: number
  /** createdAt of the oldest pending delivery */
  oldestPendingAt?: number
}

/** A webhook delivery waiting to be made (the durable outbox). */
export interface OutboxEntry {
  /** sortable: creation time then a counter */
  id: string
  endpointId: string
  /** ordering key (the payment id): an entry waits while an older one with its key is undelivered */
  key?: string
  /** the exact JSON body to POST */
  body: string
  /** the event log entry it delivers (none for entries written before the log existed) */
  eventId?: string
  attempts: number
  nextAttemptAt: number
  createdAt: number
  lastError?: string
}

/** An operator revocation as central keeps it (issue 17, item 2). */
export interface RevocationRecord {
  venueId: string
  terminal: string
  effectiveAt: number
  reason: string
  issuedAt: number
  /** the signed document, JSON, served to terminals as received */
  document: string
  receivedAt: number
}

/** The latest sync checkpoint of one terminal (issue 17, item 5). */
export interface CheckpointRecord {
  venueId: string
  terminal: string
  /** the terminal's clock when the round that flushed its whole ledger began */
  at: number
  receivedAt: number
}

export interface DenylistState {
  venueId: string
  version: number
  blockedBins: string[]
  denylistCardKeys: string[]
  updatedAt: number
}

export function toPaymentView(p: PaymentRecord): PaymentView {
  const view: PaymentView = {
    paymentId: p.paymentId,
    venue: p.venue,
    origin: p.origin,
    amountMinor: p.amountMinor,
    currency: p.currency,
    status: p.status,
    queuedAt: p.queuedAt,
    flags: p.flags,
  }
  if (p.declineCode !== undefined) view.declineCode = p.declineCode
  if (p.syncDeclineCode !== undefined) view.syncDeclineCode = p.syncDeclineCode
  if (p.completedAt !== undefined) view.completedAt = p.completedAt
  if (p.mode !== undefined) view.mode = p.mode
  if (p.authorizationCode !== undefined) view.authorizationCode = p.authorizationCode
  return view
}

export function toStatusView(p: PaymentRecord): PaymentStatusView {
  const view: PaymentStatusView = { paymentId: p.paymentId, status: p.status, queuedAt: p.queuedAt }
  if (p.declineCode !== undefined) view.declineCode = p.declineCode
  if (p.syncDeclineCode !== undefined) view.syncDeclineCode = p.syncDeclineCode
  if (p.completedAt !== undefined) view.completedAt = p.completedAt
  return view
}
