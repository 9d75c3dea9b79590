import type { PaymentMethod } from '@nullmesh/protocol'

/** Limits for one currency, all in integer minor units. */
export interface CurrencyLimits {
  /** max single offline payment (quorum mode) */
  floorLimitMinor: number
  /** per card, per cardWindowMs, approved offline total */
  cardCapMinor: number
  /** per terminal (origin) total within queueDurationMs */
  deviceCapMinor: number
  /** venue-wide offline exposure within queueDurationMs */
  venueCapMinor: number
  /** max single payment while isolated */
  isolatedFloorLimitMinor: number
  /** per-terminal total approved while isolated and not yet confirmed by central (no time window) */
  isolatedDeviceCapMinor: number
}

export interface BarrierPolicy {
  /**
   * acks a commit needs, the origin's own included, counted within the card's custodian group of
   * min(groupSize, roster) terminals: a majority of the group, or a fixed number clamped to
   * [majority, group]
   */
  quorum: 'majority' | number
  /**
   * terminals in a card's custodian group (odd): a card's reservations go to these only. With a
   * roster of at most groupSize the group is the whole roster (see docs/protocol.md, "Custodian groups")
   */
  groupSize: number
  timeoutMs: number
  retries: number
  retryJitterMs: number
}

export interface IsolatedPolicy {
  enabled: boolean
  /** isolated approvals of one card by one terminal not yet confirmed by central (no time window) */
  maxApprovalsPerCard: number
}

/** A venue's offline payment policy. Signed by the operator; every terminal runs the same version. */
export interface VenuePolicy {
  venueId: string
  /** uint16, carried in every reservation and proof */
  version: number
  /** ISO 4217 keys; other currencies are declined currency_not_supported */
  currencies: Record<string, CurrencyLimits>
  allowedMethodsOffline: PaymentMethod[]
  cardWindowMs: number
  /** per-card count cap per card window */
  cardCapCount: number
  deviceMaxQueued: number
  /** max age of an offline approval before it is voided; window of device and venue caps */
  queueDurationMs: number
  /** BIN prefixes (digits) */
  blockedBins: string[]
  /** card keys (lowercase hex) */
  denylistCardKeys: string[]
  barrier: BarrierPolicy
  isolated: IsolatedPolicy
  /** terminals' clocks may disagree by this much (≤ 10 minutes); reservations further off are stale */
  maxClockSkewMs: number
  /** every decision of a terminal (barrier, retries, isolated fallback) returns within this */
  tapBudgetMs: number
}

/** What defaultPolicy and createVenueBundle accept: any field, nested objects partially. */
export interface PolicyOverrides extends Partial<Omit<VenuePolicy, 'currencies' | 'barrier' | 'isolated'>> {
  /** replaces the currency set; missing limits of a listed currency take the defaults */
  currencies?: Record<string, Partial<CurrencyLimits>>
  barrier?: Partial<BarrierPolicy>
  isolated?: Partial<IsolatedPolicy>
}

/** One problem found in a policy, naming the field by JSON pointer. */
export interface PolicyIssue {
  /** JSON pointer of the field, e.g. /currencies/EUR/floorLimitMinor ('' for the whole document) */
  path: string
  /** the path and the problem, e.g. "/currencies/EUR/floorLimitMinor: expected integer ≥ 0" */
  message: string
}
