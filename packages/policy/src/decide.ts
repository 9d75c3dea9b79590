import { type DeclineCode, MAX_AMOUNT_MINOR, type PaymentMethod } from '@nullmesh/protocol'
import type { ExposureState, ReservationFacts } from './exposure.js'
import { currencyLimits } from './policy.js'
import type { VenuePolicy } from './types.js'

export type Decision = { approve: true } | { approve: false; code: DeclineCode; message: string }

/** A payment to decide offline. Hex strings as in ReservationFacts. */
export interface OfflineCandidate {
  /** the reservation id, when it already exists (a peer deciding an ack, a retry): excluded from its own exposure */
  id?: string | undefined
  origin: string
  nullifier: string
  cardKey: string
  amountMinor: number
  currency: string
  method: PaymentMethod
  /** the card's BIN, when the terminal read a PAN; only the origin has it */
  bin?: string | undefined
  /** origin time of the payment: cap windows are measured back from it, so every peer counts the same window */
  ts: number
}

export interface DecisionContext {
  /** quorum: the barrier will run; isolated: no quorum is reachable, isolated-mode limits apply */
  mode: 'quorum' | 'isolated'
  /** this terminal's clock, ms since the epoch */
  now: number
}

export interface AckContext {
  now: number
  /**
   * The card's active reservations as the origin saw them when it decided (originView()), sent
   * with the barrier request. When given, a peer that holds one the origin has not seen refuses
   * with `conflict`: this is what makes per-card caps exact under concurrency (see README).
   */
  originView?: readonly string[] | undefined
}

const APPROVE: Decision = Object.freeze({ approve: true })
/** sinceTs of a check without a time window */
const ALL = Number.NEGATIVE_INFINITY

function decline(code: DeclineCode, message: string): Decision {
  return { approve: false, code, message }
}

function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`
  if (ms % 60_000 === 0) return `${ms / 60_000} min`
  if (ms % 1000 === 0) return `${ms / 1000} s`
  return `${ms} ms`
}

/**
 * The candidate's own contribution to the state's totals, when the state already holds it (a peer
 * re-deciding a reservation it acked, the origin re-checking its own), so it is not counted twice.
 */
function ownShare(state: ExposureState, c: OfflineCandidate) {
  const none = {
    counted: undefined as ReservationFacts | undefined,
    isolated: undefined as ReservationFacts | undefined,
  }
  if (c.id === undefined) return none
  const r = state.get(c.id)
  if (r?.facts === undefined || !state.isActive(c.id)) return none
  const onlineOnly = r.commitModes.length === 1 && r.commitModes[0] === 'online'
  return {
    counted: onlineOnly ? undefined : r.facts,
    isolated:
      (r.commitModes.includes('isolated') || r.unheldMinor !== undefined) && !r.confirmed
        ? r.facts
        : undefined,
  }
}

/** Amount sanity and clock skew: what no payment passes, offline or online. */
function inputDecline(
  policy: VenuePolicy,
  c: Pick<OfflineCandidate, 'amountMinor' | 'ts'>,
  now: number,
): Decision | undefined {
  if (!Number.isSafeInteger(c.amountMinor) || c.amountMinor < 0) {
    return decline('other', `amount must be an integer number of minor units ≥ 0, got ${c.amountMinor}`)
  }
  if (c.amountMinor > MAX_AMOUNT_MINOR)
    return decline('max_amount_exceeded', `amount ${c.amountMinor} is beyond the protocol maximum`)
  if (!Number.isFinite(c.ts) || Math.abs(now - c.ts) > policy.maxClockSkewMs) {
    return decline(
      'stale_reservation',
      `payment time is ${now - c.ts} ms off this terminal's clock (max ${policy.maxClockSkewMs})`,
    )
  }
  return undefined
}

function denylisted(policy: VenuePolicy, cardKey: string): boolean {
  return policy.denylistCardKeys.includes(cardKey.toLowerCase())
}

/** nullifier_seen when another active reservation holds the candidate's nullifier. */
function nullifierDecline(
  state: ExposureState,
  c: Pick<OfflineCandidate, 'id' | 'nullifier'>,
): Decision | undefined {
  const holder = state.nullifierHolder(c.nullifier, c.id)
  if (holder === undefined) return undefined
  return decline(
    'nullifier_seen',
    `this card credential use is already held by reservation ${holder.slice(0, 16)}…`,
  )
}

function share(f: ReservationFacts | undefined, sinceTs: number, match: (f: ReservationFacts) => boolean) {
  return f !== undefined && f.ts >= sinceTs && match(f)
    ? { amountMinor: f.amountMinor, count: 1 }
    : { amountMinor: 0, count: 0 }
}

/**
 * Decide a payment offline against the policy and this terminal's view of the venue. Pure: no
 * I/O, no clock (ctx.now is given), the state is only read. The checks run in a fixed order and
 * the first failing one names the decline code:
 *
 *  input sanity (other / max_amount_exceeded), stale_reservation (|now − ts| > maxClockSkewMs),
 *  currency_not_supported, method_not_allowed_offline, denylisted_card, blocked_bin (if a BIN is
 *  given), quorum_unavailable (isolated mode while it is disabled), floor_limit_exceeded /
 *  isolated_limit_exceeded (single-payment limit of the mode), nullifier_seen, card_cap_exceeded,
 *  card_count_exceeded, device_cap_exceeded, queue_full, venue_cap_exceeded, and in isolated mode
 *  isolated_limit_exceeded (isolated device cap) and isolated_card_used. The two isolated checks
 *  count every isolated commit of this origin central has not confirmed, whatever its time.
 */
export function decideOffline(
  policy: VenuePolicy,
  state: ExposureState,
  c: OfflineCandidate,
  ctx: DecisionContext,
): Decision {
  const bad = inputDecline(policy, c, ctx.now)
  if (bad !== undefined) return bad
  const limits = currencyLimits(policy, c.currency)
  if (limits === undefined) return decline('currency_not_supported', `${c.currency} is not accepted offline`)
  if (!policy.allowedMethodsOffline.includes(c.method)) {
    return decline('method_not_allowed_offline', `${c.method} payments are not accepted offline`)
  }
  const cardKey = c.cardKey
  if (denylisted(policy, cardKey)) return decline('denylisted_card', 'card is on the deny list')
  if (c.bin !== undefined) {
    const bin = c.bin
    const blocked = policy.blockedBins.find((prefix) => bin.startsWith(prefix))
    if (blocked !== undefined) return decline('blocked_bin', `card range ${blocked} is blocked offline`)
  }
  const isolated = ctx.mode === 'isolated'
  if (isolated && !policy.isolated.enabled) {
    return decline('quorum_unavailable', 'no quorum reachable and isolated mode is disabled')
  }
  if (isolated) {
    if (c.amountMinor > limits.isolatedFloorLimitMinor) {
      return decline(
        'isolated_limit_exceeded',
        `${c.amountMinor} ${c.currency} exceeds the isolated-mode limit of ${limits.isolatedFloorLimitMinor}`,
      )
    }
  } else if (c.amountMinor > limits.floorLimitMinor) {
    return decline(
      'floor_limit_exceeded',
      `${c.amountMinor} ${c.currency} exceeds the offline floor limit of ${limits.floorLimitMinor}`,
    )
  }

  const held = nullifierDecline(state, c)
  if (held !== undefined) return held

  const own = ownShare(state, c)
  const cardSince = c.ts - policy.cardWindowMs
  const card = state.cardExposure(cardKey, c.currency, cardSince)
  const ownCard = share(own.counted, cardSince, (f) => f.cardKey === cardKey && f.currency === c.currency)
  const cardAmount = card.amountMinor - ownCard.amountMinor
  if (cardAmount + c.amountMinor > limits.cardCapMinor) {
    return decline(
      'card_cap_exceeded',
      `card total ${cardAmount} + ${c.amountMinor} ${c.currency} exceeds ${limits.cardCapMinor} per ${formatMs(policy.cardWindowMs)}`,
    )
  }
  const cardCount = card.count - ownCard.count
  if (cardCount + 1 > policy.cardCapCount) {
    return decline(
      'card_count_exceeded',
      `card already has ${cardCount} offline payments in ${formatMs(policy.cardWindowMs)} (max ${policy.cardCapCount})`,
    )
  }

  const queueSince = c.ts - policy.queueDurationMs
  const device = state.deviceExposure(c.origin, c.currency, queueSince)
  const ownDevice = share(own.counted, queueSince, (f) => f.origin === c.origin && f.currency === c.currency)
  const deviceAmount = device.amountMinor - ownDevice.amountMinor
  if (deviceAmount + c.amountMinor > limits.deviceCapMinor) {
    return decline(
      'device_cap_exceeded',
      `terminal total ${deviceAmount} + ${c.amountMinor} ${c.currency} exceeds ${limits.deviceCapMinor}`,
    )
  }
  const queued =
    state.deviceQueued(c.origin, queueSince) -
    share(own.counted, queueSince, (f) => f.origin === c.origin).count
  if (queued + 1 > policy.deviceMaxQueued) {
    return decline(
      'queue_full',
      `terminal has ${queued} offline payments awaiting settlement (max ${policy.deviceMaxQueued})`,
    )
  }
  const venueAmount =
    state.venueExposure(c.currency, queueSince) -
    share(own.counted, queueSince, (f) => f.currency === c.currency).amountMinor
  if (venueAmount + c.amountMinor > limits.venueCapMinor) {
    return decline(
      'venue_cap_exceeded',
      `venue offline total ${venueAmount} + ${c.amountMinor} ${c.currency} exceeds ${limits.venueCapMinor}`,
    )
  }

  if (isolated) {
    // no window: an isolated approval uses the budget until central confirms it, so neither a
    // long partition nor a clock jump frees it (partitionExposureBound holds per partition)
    const iso = state.isolatedExposure(c.origin, c.currency)
    const ownIso = share(own.isolated, ALL, (f) => f.origin === c.origin && f.currency === c.currency)
    const isoAmount = iso.amountMinor - ownIso.amountMinor
    if (isoAmount + c.amountMinor > limits.isolatedDeviceCapMinor) {
      return decline(
        'isolated_limit_exceeded',
        `isolated-mode total ${isoAmount} + ${c.amountMinor} ${c.currency} not yet confirmed by central exceeds ${limits.isolatedDeviceCapMinor}`,
      )
    }
    const uses =
      state.isolatedCardCount(c.origin, cardKey) -
      share(own.isolated, ALL, (f) => f.origin === c.origin && f.cardKey === cardKey).count
    if (uses + 1 > policy.isolated.maxApprovalsPerCard) {
      return decline(
        'isolated_card_used',
        `card already approved ${uses} time(s) by this terminal in isolated mode, not yet confirmed by central (max ${policy.isolated.maxApprovalsPerCard})`,
      )
    }
  }
  return APPROVE
}

/**
 * The isolated budget an online approval made without a quorum round uses: what a duplicate of
 * its credential use approved offline elsewhere could cost — at most the offline floor limit, and
 * nothing in a currency not accepted offline.
 */
export function unheldOnlineExposure(policy: VenuePolicy, currency: string, amountMinor: number): number {
  const limits = currencyLimits(policy, currency)
  return limits === undefined ? 0 : Math.min(amountMinor, limits.floorLimitMinor)
}

/**
 * May this terminal send an online payment to central without a quorum holding its reservation
 * (none reachable)? Central's dedup does not know offline approvals not synced yet, so such an
 * approval may duplicate one made elsewhere (docs/protocol.md, "Online without a quorum"). It is
 * admitted under the isolated rules, counted at unheldOnlineExposure: isolated mode enabled, the
 * origin's unconfirmed isolated total within isolatedDeviceCapMinor, and the card's isolated
 * approvals here within maxApprovalsPerCard. Asked before the reservation exists. Pure.
 */
export function decideUnheldOnline(
  policy: VenuePolicy,
  state: ExposureState,
  c: Pick<OfflineCandidate, 'origin' | 'cardKey' | 'currency' | 'amountMinor'>,
): Decision {
  const exposure = unheldOnlineExposure(policy, c.currency, c.amountMinor)
  // nothing offline in this currency could duplicate it
  if (exposure === 0) return APPROVE
  if (!policy.isolated.enabled)
    return decline(
      'quorum_unavailable',
      'no quorum reachable and isolated mode is disabled: an online payment needs a quorum to hold it',
    )
  const limits = currencyLimits(policy, c.currency)!
  const iso = state.isolatedExposure(c.origin, c.currency).amountMinor
  if (iso + exposure > limits.isolatedDeviceCapMinor)
    return decline(
      'isolated_limit_exceeded',
      `isolated-mode total ${iso} + ${exposure} ${c.currency} (an online payment no quorum holds) not yet confirmed by central exceeds ${limits.isolatedDeviceCapMinor}`,
    )
  const uses = state.isolatedCardCount(c.origin, c.cardKey)
  if (uses + 1 > policy.isolated.maxApprovalsPerCard)
    return decline(
      'isolated_card_used',
      `card already approved ${uses} time(s) by this terminal without a quorum, not yet confirmed by central (max ${policy.isolated.maxApprovalsPerCard})`,
    )
  return APPROVE
}

/**
 * What a peer answers when asked to ack a reservation: the same decideOffline the origin ran
 * (quorum mode, no BIN), so origin and peers cannot disagree on the rules, only on what they have
 * seen. Refuses `stale_reservation` when the reservation's time is more than maxClockSkewMs from
 * this terminal's clock, and `conflict` when an originView is given and this terminal holds an
 * active reservation of the card the origin had not seen. Checking policy versions
 * (`policy_mismatch`) is the caller's job.
 */
export function decideAck(
  policy: VenuePolicy,
  state: ExposureState,
  r: ReservationFacts,
  ctx: AckContext,
): Decision {
  const verdict = decideOffline(policy, state, { ...r, bin: undefined }, { mode: 'quorum', now: ctx.now })
  if (!verdict.approve || ctx.originView === undefined) return verdict
  const seen = new Set(ctx.originView)
  const unseen = originView(policy, state, r).filter((id) => !seen.has(id))
  if (unseen.length > 0) {
    return decline(
      'conflict',
      `${unseen.length} reservation(s) of this card are held here but not in the origin's view`,
    )
  }
  return verdict
}

/**
 * What a peer answers when asked to ack a reservation its origin will send to central for
 * online authorisation. The issuer decides the money, so the offline floor limit, caps, currency
 * and method rules do not apply; what the mesh must still guarantee is that one credential use is
 * approved once, online or offline. So only, in this order: input sanity (`other`,
 * `max_amount_exceeded`), `stale_reservation` (|now − ts| > maxClockSkewMs), `denylisted_card`,
 * and `nullifier_seen` (another active reservation holds the nullifier). Pure, like decideOffline.
 *
 * An ack means "I now hold this nullifier": on approve, the caller holds the reservation
 * (addReservation(r, true) or hold(r.id)) in the same synchronous step, before anything else is
 * decided, and keeps it until the origin's Commit (mode online) or Release. Until that Commit
 * arrives the held reservation also counts in this peer's offline caps, like any held one: the
 * conservative side. Checking policy versions (`policy_mismatch`) is the caller's job.
 */
export function decideOnlineAck(
  policy: VenuePolicy,
  state: ExposureState,
  r: ReservationFacts,
  ctx: { now: number },
): Decision {
  return (
    inputDecline(policy, r, ctx.now) ??
    (denylisted(policy, r.cardKey) ? decline('denylisted_card', 'card is on the deny list') : undefined) ??
    nullifierDecline(state, r) ??
    APPROVE
  )
}

/**
 * The ids an origin sends with its barrier request (AckContext.originView): the card's active
 * offline reservations in its card window, as this state sees them, the candidate excluded.
 */
export function originView(
  policy: VenuePolicy,
  state: ExposureState,
  c: Pick<OfflineCandidate, 'id' | 'cardKey' | 'currency' | 'ts'>,
): string[] {
  const ids = state.cardReservations(c.cardKey, c.currency, c.ts - policy.cardWindowMs)
  return c.id === undefined ? ids : ids.filter((id) => id !== c.id)
}
