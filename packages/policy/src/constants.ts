import { MAX_ACKS, PAYMENT_METHODS, type PaymentMethod } from '@nullmesh/protocol'
import type { CurrencyLimits } from './types.js'

/**
 * Default limits per currency, in minor units (cents/pence). Conservative for a bar or stall:
 * an offline payment is an unauthorised claim on the card until central settles it, so every
 * number here is money the venue can lose.
 */
export const DEFAULT_CURRENCY_LIMITS: Readonly<CurrencyLimits> = Object.freeze({
  /** largest single offline payment with a quorum (50.00) */
  floorLimitMinor: 5_000,
  /** one card's offline total per card window (150.00 per hour) */
  cardCapMinor: 15_000,
  /** one terminal's offline total per queue duration (2,000.00 per day) */
  deviceCapMinor: 200_000,
  /** the venue's offline total per queue duration (20,000.00 per day) */
  venueCapMinor: 2_000_000,
  /** largest single payment while a terminal is isolated (25.00) */
  isolatedFloorLimitMinor: 2_500,
  /** one terminal's isolated-mode total not yet confirmed by central (200.00), whatever the time */
  isolatedDeviceCapMinor: 20_000,
})

/** Currencies a default policy accepts offline; all others are declined `currency_not_supported`. */
export const DEFAULT_CURRENCIES: readonly string[] = Object.freeze(['EUR', 'USD', 'GBP'])

/** Magnetic stripe is trivially cloned and carries no ATC: never offline by default. */
export const DEFAULT_ALLOWED_METHODS_OFFLINE: readonly PaymentMethod[] = Object.freeze(
  PAYMENT_METHODS.filter((m) => m !== 'swipe'),
)

/** Per-card cap window: 1 hour. */
export const DEFAULT_CARD_WINDOW_MS = 60 * 60 * 1000
/** At most this many offline approvals per card per window. */
export const DEFAULT_CARD_CAP_COUNT = 5
/** At most this many offline approvals per terminal awaiting settlement (per queue duration). */
export const DEFAULT_DEVICE_MAX_QUEUED = 200
/** How long an offline approval may wait for settlement before it is voided: 24 hours. */
export const DEFAULT_QUEUE_DURATION_MS = 24 * 60 * 60 * 1000

/** Majority quorum: any two quorums share a terminal, which is what stops a double spend. */
export const DEFAULT_BARRIER_QUORUM = 'majority'
/** A card-present customer waits for this at most per barrier attempt. */
export const DEFAULT_BARRIER_TIMEOUT_MS = 750
export const DEFAULT_BARRIER_RETRIES = 4
/** Random back-off between retries so two terminals racing for one card do not collide again. */
export const DEFAULT_BARRIER_RETRY_JITTER_MS = 25

/** Isolated mode (no quorum reachable) is allowed, with its own smaller limits. */
export const DEFAULT_ISOLATED_ENABLED = true
/** While isolated, a terminal approves each card at most once until central confirms it. */
export const DEFAULT_ISOLATED_MAX_APPROVALS_PER_CARD = 1

/** Terminals' clocks may disagree by this much; reservations further off are refused as stale. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 30_000
/**
 * Upper bound of maxClockSkewMs: 10 minutes. A reservation's ts places it in the cap windows, so a
 * larger skew lets an origin backdate payments out of a card's window.
 */
export const MAX_CLOCK_SKEW_MS = 10 * 60 * 1000

/** A terminal answers every tap within this, whatever the barrier, retries or central link do. */
export const DEFAULT_TAP_BUDGET_MS = 2000
/** Bounds of tapBudgetMs: below 200 ms no barrier completes; above 10 s a customer walks away. */
export const MIN_TAP_BUDGET_MS = 200
export const MAX_TAP_BUDGET_MS = 10_000

/**
 * Largest roster. A quorum certificate carries at most a majority of a card's custodian group
 * (barrier.groupSize), not of the roster, so the roster is bounded by what a venue bundle, the
 * simulator and the per-card group hashing (one hash per member) are sized for, not by MAX_ACKS.
 */
export const MAX_ROSTER_SIZE = 1000
/** Terminals in a card's custodian group (odd, so a majority tolerates (G − 1) / 2 failures). */
export const DEFAULT_BARRIER_GROUP_SIZE = 5
/**
 * Largest custodian group: a Commit carries at most MAX_ACKS acks, and a majority of
 * 2 × MAX_ACKS − 1 terminals is MAX_ACKS. A larger group could never carry a majority certificate.
 */
export const MAX_GROUP_SIZE = 2 * MAX_ACKS - 1

export const DEFAULT_POLICY_VERSION = 1

/** Enrollment certificates from createVenueBundle are valid for a year unless told otherwise. */
export const DEFAULT_CERTIFICATE_VALIDITY_MS = 365 * 24 * 60 * 60 * 1000

/** Card keys are 16-byte keyed hashes (protocol CARD_KEY_BYTES), written as lowercase hex. */
export const CARD_KEY_HEX_PATTERN = /^[0-9a-f]{32}$/
/** BIN prefixes: up to the 8 digits cardBin() extracts. */
export const BIN_PREFIX_PATTERN = /^[0-9]{1,8}$/
