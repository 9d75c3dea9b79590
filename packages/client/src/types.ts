/**
 * Wire types of the terminal's local HTTP API. The terminal's TypeBox schemas (served as
 * `/openapi.json`) describe the same shapes; a test sends a real request with this SDK and checks
 * the answer against those schemas, so the two cannot drift apart silently.
 */

export type PaymentMethod = 'chip' | 'contactless' | 'nfc' | 'qr' | 'swipe'

/**
 * prefer_online (default): authorise with central when reachable, otherwise offline.
 * require_online: decline `offline_not_allowed` when central is not reachable.
 * force_offline: take the offline path even when online (forwarded later in the background).
 */
export type OfflineBehavior = 'prefer_online' | 'require_online' | 'force_offline'

export interface PaymentContext {
  location?: string
  eventId?: string
  vertical?: string
}

/** `POST /v1/payments` body. Amounts are integer minor units of an ISO 4217 currency. */
export interface PaymentRequest {
  /** the same key always returns the first decision, even across a terminal restart */
  idempotencyKey: string
  /** card token or PAN-shaped string; used to compute the nullifier and card key, never stored */
  cardToken: string
  amountMinor: number
  currency: string
  method: PaymentMethod
  offlineBehavior?: OfflineBehavior
  /** the card's transaction counter (EMV ATC) when it supplies one */
  credentialCounter?: number
  context?: PaymentContext
}

export type PaymentStatus = 'approved_online' | 'approved_offline' | 'declined_online' | 'declined_offline'

/** How the decision was taken: by central, by a quorum of terminals, alone while isolated, or alone by floor limit. */
export type DecisionMode = 'online' | 'quorum' | 'isolated' | 'floor_limit'

export interface BarrierInfo {
  /** positive acks collected (this terminal included) */
  acks: number
  quorum: number
  /** barrier duration in milliseconds */
  ms: number
}

/** `POST /v1/payments` answer. */
export interface PaymentResponse {
  /** the reservation id for offline payments, central's payment id for online ones */
  paymentId: string
  status: PaymentStatus
  /** stable decline code (see the protocol's DECLINE_CODES) */
  declineCode?: string
  /** hex */
  nullifier: string
  /** base64url, 87 bytes: verifiable with the terminal's public key */
  proof: string
  /** approved offline and waiting to be forwarded to central */
  queued: boolean
  barrier?: BarrierInfo
  mode: DecisionMode
  /** roster id of the terminal that decided, e.g. T1 */
  terminal: string
}

/**
 * Where an approved payment is on its way to settlement. none: nothing to settle (declined).
 * queued: approved offline, not yet at central. forwarded: central has it (queued/processing).
 * completed / failed: central's definitive outcome.
 */
export type SettlementStatus = 'none' | 'queued' | 'forwarded' | 'completed' | 'failed'

export interface Settlement {
  status: SettlementStatus
  /** central's decline code of a failed payment, e.g. offline_sync_failure */
  declineCode?: string
  /** why it failed: insufficient_funds, lost_or_stolen, expired, duplicate_nullifier, … */
  syncDeclineCode?: string
  /** ms since the epoch */
  completedAt?: number
  updatedAt: number
}

/** `GET /v1/payments/:id` answer: the decision as first answered, plus the settlement state. */
export interface Payment extends PaymentResponse {
  idempotencyKey: string
  amountMinor: number
  currency: string
  method: PaymentMethod
  offlineBehavior: OfflineBehavior
  context?: PaymentContext
  /** ms since the epoch */
  createdAt: number
  settlement: Settlement
}

export interface TerminalStatus {
  /** central reachable */
  online: boolean
  mesh: {
    mode: 'quorum' | 'isolated'
    /** enrolled peers connected, verified and caught up */
    peers: number
    roster: number
    quorum: number
  }
  /** approved offline and not yet forwarded to central */
  queue: { count: number; amountsByCurrency: Record<string, number> }
  /** worst case all terminals could approve in isolated mode (policy's first currency) */
  exposureBoundMinor: number
  /** online attempts without an answer from central, held until central voided them */
  onlineUnresolved?: number
  /**
   * payments decided since the terminal started, the longest as it timed it (handler to answer;
   * a POS also sees the queueing before the handler runs) and how many it timed over the tap budget
   */
  decisions?: { count: number; maxMs: number; overBudget: number }
  /** own approved payments by settlement status (queued ones are counted in `queue`) */
  settlement: { forwarded: number; completed: number; failed: number }
  /** roster id */
  terminal: string
  peerId: string
  decisionMode: 'mesh' | 'floor-limit-only'
}

/** Error body of every 4xx/5xx answer. */
export interface ApiErrorBody {
  code: string
  message: string
  /** the offending field of a 400, e.g. `amountMinor` or `context.location` */
  field?: string
}

export interface ConnectivityEventData {
  online: boolean
  /** ms since the epoch */
  at: number
}

export interface MeshModeEventData {
  mode: 'quorum' | 'isolated'
  peers: number
  at: number
}

export interface PaymentEventData {
  payment: Payment
  at: number
}

/** The events of `GET /v1/events` (Server-Sent Events), by SSE event name. */
export interface TerminalEventMap {
  connectivity: ConnectivityEventData
  'mesh.mode': MeshModeEventData
  /** every decision, approved or declined */
  'payment.decided': PaymentEventData
  /** approved offline, queued for forwarding */
  'payment.queued': PaymentEventData
  /** central stored it */
  'payment.forwarded': PaymentEventData
  'payment.completed': PaymentEventData
  'payment.failed': PaymentEventData
}

export type TerminalEventType = keyof TerminalEventMap

export type TerminalEvent = {
  [K in TerminalEventType]: { type: K; id: string; data: TerminalEventMap[K] }
}[TerminalEventType]

export const TERMINAL_EVENT_TYPES: readonly TerminalEventType[] = [
  'connectivity',
  'mesh.mode',
  'payment.decided',
  'payment.queued',
  'payment.forwarded',
  'payment.completed',
  'payment.failed',
]
