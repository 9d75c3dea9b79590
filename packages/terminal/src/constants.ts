/** Debug namespace of the terminal's logger (`DEBUG=nullmesh:terminal*`). */
export const LOG_NAMESPACE = 'nullmesh:terminal'

/** The local API listens on loopback only unless told otherwise. */
export const DEFAULT_API_HOST = '127.0.0.1'
/** 0: a free port chosen by the OS (read it back from `terminal.apiUrl`). */
export const DEFAULT_API_PORT = 0
/** Environment variable read for the API bearer token when none is given. */
export const API_TOKEN_ENV = 'NULLMESH_API_TOKEN'
/** File in the data directory holding the generated API token (mode 0600). */
export const API_TOKEN_FILE = 'api-token'
/** Sub-directory of the data directory holding the LevelDB ledger. */
export const LEDGER_DIR = 'ledger'
/** Largest accepted request body. A payment request is a few hundred bytes. */
export const API_BODY_LIMIT_BYTES = 16 * 1024
/** SSE comment lines sent this often so that proxies and clients keep an idle stream open. */
export const SSE_KEEPALIVE_MS = 15_000
/** SSE `retry:` hint for reconnecting clients. */
export const SSE_RETRY_MS = 2_000

/** Connectivity monitor of the central link. */
export const CONNECTIVITY_DEFAULTS = Object.freeze({
  /** first retry after a failure: within ~100 ms (jittered down to half) */
  initialDelayMs: 100,
  /** backoff doubles up to this cap */
  maxDelayMs: 5_000,
  factor: 2,
  /** fraction of each delay that is randomised: delay × (1 − jitter × random) */
  jitter: 0.5,
  /** while online, a health probe this often notices a lost link */
  probeIntervalMs: 2_000,
  /** one health probe may take at most this long */
  probeTimeoutMs: 1_000,
})

/** An online authorisation may take this long before the payment falls back to the offline path. */
export const DEFAULT_ONLINE_TIMEOUT_MS = 3_000
/** Any other request to central (sync batches, deny list, payment status). */
export const DEFAULT_CENTRAL_TIMEOUT_MS = 10_000

/** Most payment ids in one POST /v1/payments/status (central's bound). */
export const STATUS_BATCH_MAX = 500

/** Sync agent. */
export const SYNC_DEFAULTS = Object.freeze({
  /** events per POST /v1/sync (central accepts at most 500) */
  batchSize: 50,
  /** while online, look for new events and settlement updates this often (also woken by each payment) */
  intervalMs: 1_000,
  /** own payments whose settlement status is asked for per round */
  statusPollLimit: 100,
  /** one payment's settlement status is asked for at most this often */
  statusPollMinIntervalMs: 1_000,
  /** concurrent GET /v1/payments/:id (a central without POST /v1/payments/status) */
  statusPollConcurrency: 4,
  /** deny list refresh interval while online */
  denylistRefreshMs: 30_000,
  /** delete event bodies central confirmed (off: the mesh rebuilds its caps from the events at start) */
  prune: false,
})

/** Ledger cursor names used by the terminal. */
export const CURSORS = Object.freeze({
  /** the last deny list document accepted from central (JSON) */
  denylist: 'terminal/denylist',
  /** events central rejected for good and that the agent moved past (JSON list, bounded) */
  syncRejected: 'terminal/sync-rejected',
  /** operator revocations accepted from central (JSON list of signed documents) */
  revocations: 'terminal/revocations',
  /** reservations central abandoned (JSON list of ids), re-applied to the mesh at start */
  abandoned: 'terminal/abandoned',
})
/** How many permanently rejected event ids are remembered in the cursor. */
export const MAX_REMEMBERED_REJECTIONS = 1_000

/** Barrier latency histogram buckets, in seconds. */
export const BARRIER_BUCKETS_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2]
/** Whole-decision latency histogram buckets, in seconds. */
export const PAY_BUCKETS_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]

/** Payment request limits (also in the OpenAPI document). */
export const LIMITS = Object.freeze({
  idempotencyKeyMaxLength: 128,
  cardTokenMaxLength: 64,
  contextFieldMaxLength: 128,
  maxCredentialCounter: 2 ** 32 - 1,
})

/** the window over which the event loop's delay is measured for the tap deadline (loop-lag.ts) */
export const LOOP_LAG_WINDOW_MS = 2_000

/**
 * part of the tap budget kept for the answer's way back (serialising it, the POS's network and its
 * own event loop): a decision that runs to its deadline still reaches the customer within the budget.
 * 50 ms left 1–75 ms overshoots inside the terminal in 4 of 10 partition runs (the sim's seven
 * processes on 2 cores); 150 ms, none in 10 (2026-12-03, docs/protocol.md "Time").
 */
export const ANSWER_MARGIN_MS = 150

/**
 * The event loop delay sampler's period: each sample is a timer wake-up, whatever the loop does.
 * 10 ms cost an idle terminal ~4–5 ms of CPU a second (this machine, loaded); 50 ms about 1. A stall
 * of 50 ms or more always lands on a sample (a blocked loop delays the next one by the stall's
 * length), shorter ones are seen in part — the reserve is meant for the 100 ms+ stalls of a
 * starved loop, against a tap budget of seconds.
 */
export const LOOP_LAG_RESOLUTION_MS = 50

/**
 * How overdue the loop-lag tick must be before a request read now is taken to have waited since it
 * was due (loop-lag.ts, `arrival`): timers fire a few ms late on a healthy loop too.
 */
export const LOOP_LAG_STALL_SLACK_MS = 10

/**
 * How long after a stall ends a request read is still taken to have waited through it (loop-lag.ts,
 * `arrival`): the overdue tick runs first, the sockets are read in a poll phase shortly after it.
 * Conservative: a request that really came just after the stall gets a deadline that much earlier.
 */
export const LOOP_LAG_READ_WINDOW_MS = 20

/**
 * Request header a POS may send with a payment: when the card was tapped, in ms since the epoch on
 * its clock (the same clock when the POS app runs on the terminal, an NTP-synced one on the LAN).
 * The tap budget counts from then when that is earlier than the request's arrival here: the wait
 * before this process read it (its socket behind a starved CPU) is part of what the customer
 * waits for, and only the POS saw it begin.
 */
export const TAP_AT_HEADER = 'nullmesh-tap-at'
/**
 * At most this share of the tap budget is taken back from a claimed tap time: a POS whose clock
 * is behind shortens every decision by at most half the budget, it cannot make them all decline.
 */
export const MAX_TAP_AGE_SHARE = 0.5

/**
 * A terminal that lost its disk takes its own events back from central before it signs
 * (docs/protocol.md, "Lost disks"). It asks once; the first page may take this long (a silent
 * central delays its learning by at most this much), an unreachable central ends it at once.
 */
export const CENTRAL_REFILL_FIRST_TIMEOUT_MS = 2_000
