/** Defaults of the central service. Every one can be overridden through the factory's Init. */

export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_PORT = 0

/** Upper bound of events in one POST /v1/sync request. */
export const MAX_SYNC_EVENTS = 500
/** Upper bound of payment ids in one POST /v1/payments/status request (a terminal's status poll). */
export const MAX_STATUS_IDS = 500
/**
 * Most events one GET /v1/terminals/:key/events page returns (a terminal that lost its disk takes
 * its own events back from central before it signs again).
 */
export const MAX_ORIGIN_EVENTS_PAGE = 1_000
/** Enough for MAX_SYNC_EVENTS events of the protocol's maximum size, base64url-encoded, plus JSON. */
export const MAX_BODY_BYTES = 12 * 1024 * 1024
/** Longest base64url string one event may take (MAX_EVENT_BYTES = 16 KiB → 21,846 chars). */
export const MAX_EVENT_BASE64_LENGTH = 21_846

/**
 * Longest path parameter the router hands to a route (Fastify's default is 100, answered with its
 * own 414 body): longer than any request line Node accepts, so every id reaches its schema.
 */
export const MAX_PARAM_LENGTH = 65_536

/** How many of an origin's earlier events central reads to judge one isolated Commit (issue 17). */
export const MAX_ISOLATED_LOOKBACK = 10_000

/** How often the settlement loop looks for queued payments, besides being woken by ingest. */
export const DEFAULT_SETTLE_INTERVAL_MS = 1_000
/** A payment whose issuer call failed (threw, timed out) is retried after this long at the earliest. */
export const DEFAULT_ISSUER_RETRY_MS = 2_000
/** One issuer call may take at most this long. */
export const DEFAULT_ISSUER_TIMEOUT_MS = 10_000
/** Issuer calls in flight at once during settlement. */
export const DEFAULT_SETTLE_CONCURRENCY = 8
/** Payments moved through one settlement step together (each step is one atomic, fsynced batch). */
export const DEFAULT_SETTLE_BATCH = 64
/**
 * A settlement worker's claim on a payment holds this long against other central processes on the
 * same database (a crashed process's claims lapse after it). Correctness does not rest on it: the
 * issuer call is idempotent and every transition checks the payment's revision.
 */
export const DEFAULT_SETTLE_LEASE_MS = 30_000
/** A webhook dispatcher's claim on a delivery holds this long against other processes. */
export const DEFAULT_WEBHOOK_LEASE_MS = 60_000

const SECOND = 1_000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
/**
 * When a failed delivery is attempted again: the first attempt at once, then after each of these
 * delays — 15 attempts over 71 h 42 min (about three days, as Stripe). When the last one fails and
 * the endpoint has not succeeded since that event was created, the endpoint is disabled (its
 * deliveries wait for it to be re-enabled); otherwise the event is tried every 12 h.
 */
export const DEFAULT_WEBHOOK_SCHEDULE_MS: readonly number[] = [
  5 * SECOND,
  30 * SECOND,
  2 * MINUTE,
  10 * MINUTE,
  30 * MINUTE,
  1 * HOUR,
  2 * HOUR,
  4 * HOUR,
  8 * HOUR,
  8 * HOUR,
  12 * HOUR,
  12 * HOUR,
  12 * HOUR,
  12 * HOUR,
]

export const DEFAULT_WEBHOOK_RETRY = {
  /** one delivery attempt (connect, send, response) may take at most this long */
  timeoutMs: 10_000,
  /** deliveries in flight at once to one endpoint (its lane) */
  concurrency: 4,
  /** how often a dispatcher looks for deliveries written by other central processes */
  pollMs: 1_000,
} as const

/** How long the event log keeps an event (longer while an enabled endpoint still waits for it). */
export const DEFAULT_EVENT_RETENTION_MS = 30 * 24 * HOUR
/** A rotated-out secret signs deliveries this long by default (POST …/rotate-secret). */
export const DEFAULT_SECRET_OVERLAP_S = 24 * 60 * 60
export const MAX_SECRET_OVERLAP_S = 7 * 24 * 60 * 60
/** A merchant-supplied signing secret has at least this many bytes (UTF-8). */
export const MIN_WEBHOOK_SECRET_BYTES = 32
export const DEFAULT_EVENTS_LIMIT = 100
export const MAX_EVENTS_LIMIT = 1_000

/** How far the receiver's clock may be from the signature's timestamp. */
export const DEFAULT_WEBHOOK_TOLERANCE_MS = 5 * 60_000
export const WEBHOOK_SIGNATURE_HEADER = 'nullmesh-signature'

export const DEFAULT_PAYMENTS_LIMIT = 100
export const MAX_PAYMENTS_LIMIT = 1_000

/** The decline code every failed offline payment carries; the reason is in syncDeclineCode. */
export const OFFLINE_SYNC_FAILURE = 'offline_sync_failure'

export const LEDGER_EXPORT_FORMAT = 'nullmesh-ledger-export'
export const LEDGER_EXPORT_VERSION = 1

export const DENYLIST_DOMAIN = 'nullmesh/denylist/v1'
