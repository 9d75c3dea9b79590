import {
  createExposureState,
  type Decision,
  decideAck,
  decideOffline,
  decideOnlineAck,
  decideUnheldOnline,
  defaultPolicy,
  type ExposureState,
  type OfflineCandidate,
  originView,
  type PolicyOverrides,
  unheldOnlineExposure,
  type VenuePolicy,
} from '@nullmesh/policy'
import { DECLINE_CODES } from '@nullmesh/protocol'
import { beforeEach, describe, expect, it } from 'vitest'
import { CARD_1, CARD_2, facts, hex, ORIGIN_B, T0 } from './helpers.js'

function policy(over: PolicyOverrides = {}): VenuePolicy {
  return defaultPolicy('venue-1', over)
}

function candidate(over: Partial<OfflineCandidate> = {}): OfflineCandidate {
  const f = facts()
  return { ...f, id: undefined, ...over }
}

function code(d: Decision): string | undefined {
  return d.approve ? undefined : d.code
}

const quorum = { mode: 'quorum' as const, now: T0 }
const isolated = { mode: 'isolated' as const, now: T0 }

describe('decideOffline: one test per decline code', () => {
  let state: ExposureState
  beforeEach(() => {
    state = createExposureState()
  })

  it('approves a plain payment on an empty state, in both modes', () => {
    expect(decideOffline(policy(), state, candidate(), quorum)).toEqual({ approve: true })
    expect(decideOffline(policy(), state, candidate(), isolated)).toEqual({ approve: true })
  })

  it('every decline code it returns is a protocol DeclineCode with a message', () => {
    const d = decideOffline(policy(), state, candidate({ currency: 'JPY' }), quorum)
    expect(d.approve).toBe(false)
    if (d.approve) return
    expect(DECLINE_CODES).toContain(d.code)
    expect(d.message).toMatch(/JPY/)
  })

  it('currency_not_supported', () => {
    expect(code(decideOffline(policy(), state, candidate({ currency: 'JPY' }), quorum))).toBe(
      'currency_not_supported',
    )
    // prototype keys are not currencies
    expect(code(decideOffline(policy(), state, candidate({ currency: 'constructor' }), quorum))).toBe(
      'currency_not_supported',
    )
  })

  it('method_not_allowed_offline (swipe by default)', () => {
    expect(code(decideOffline(policy(), state, candidate({ method: 'swipe' }), quorum))).toBe(
      'method_not_allowed_offline',
    )
    const p = policy({ allowedMethodsOffline: ['chip'] })
    expect(code(decideOffline(p, state, candidate({ method: 'contactless' }), quorum))).toBe(
      'method_not_allowed_offline',
    )
    expect(code(decideOffline(p, state, candidate({ method: 'chip' }), quorum))).toBeUndefined()
  })

  it('denylisted_card (case-insensitive card key)', () => {
    const p = policy({ denylistCardKeys: [CARD_1] })
    expect(code(decideOffline(p, state, candidate({ cardKey: CARD_1 }), quorum))).toBe('denylisted_card')
    expect(code(decideOffline(p, state, candidate({ cardKey: CARD_1.toUpperCase() }), quorum))).toBe(
      'denylisted_card',
    )
    expect(code(decideOffline(p, state, candidate({ cardKey: CARD_2 }), quorum))).toBeUndefined()
  })

  it('blocked_bin only when a BIN is given', () => {
    const p = policy({ blockedBins: ['4111', '55'] })
    expect(code(decideOffline(p, state, candidate({ bin: '41111111' }), quorum))).toBe('blocked_bin')
    expect(code(decideOffline(p, state, candidate({ bin: '55000000' }), quorum))).toBe('blocked_bin')
    expect(code(decideOffline(p, state, candidate({ bin: '41211111' }), quorum))).toBeUndefined()
    expect(code(decideOffline(p, state, candidate({ bin: undefined }), quorum))).toBeUndefined()
  })

  it('floor_limit_exceeded in quorum mode, isolated_limit_exceeded in isolated mode', () => {
    const p = policy()
    expect(code(decideOffline(p, state, candidate({ amountMinor: 5000 }), quorum))).toBeUndefined()
    expect(code(decideOffline(p, state, candidate({ amountMinor: 5001 }), quorum))).toBe(
      'floor_limit_exceeded',
    )
    expect(code(decideOffline(p, state, candidate({ amountMinor: 2500 }), isolated))).toBeUndefined()
    expect(code(decideOffline(p, state, candidate({ amountMinor: 2501 }), isolated))).toBe(
      'isolated_limit_exceeded',
    )
  })

  it('nullifier_seen: held, committed; not when released or not held', () => {
    const p = policy()
    const r = facts()
    const c = candidate({ nullifier: r.nullifier })
    state.addReservation(r, false)
    expect(code(decideOffline(p, state, c, quorum))).toBeUndefined()
    state.hold(r.id)
    expect(code(decideOffline(p, state, c, quorum))).toBe('nullifier_seen')
    state.addRelease(r.id)
    expect(code(decideOffline(p, state, c, quorum))).toBeUndefined()
    state.addCommit(r, 'quorum') // a commit counts even after a release
    expect(code(decideOffline(p, state, c, quorum))).toBe('nullifier_seen')
    // the same reservation deciding about itself is not a conflict
    expect(code(decideOffline(p, state, { ...c, id: r.id }, quorum))).toBeUndefined()
  })

  it('nullifier_seen for an online commit too', () => {
    const r = facts()
    state.addCommit(r, 'online')
    expect(code(decideOffline(policy(), state, candidate({ nullifier: r.nullifier }), quorum))).toBe(
      'nullifier_seen',
    )
  })

  it('card_cap_exceeded within the card window only', () => {
    const p = policy({ currencies: { EUR: { cardCapMinor: 3000 } } })
    state.addReservation(facts({ amountMinor: 2000, ts: T0 - 1000 }), true)
    expect(code(decideOffline(p, state, candidate({ amountMinor: 1000 }), quorum))).toBeUndefined()
    expect(code(decideOffline(p, state, candidate({ amountMinor: 1001 }), quorum))).toBe('card_cap_exceeded')
    // another card, another currency: separate caps
    expect(
      code(decideOffline(p, state, candidate({ amountMinor: 1001, cardKey: CARD_2 }), quorum)),
    ).toBeUndefined()
    // outside the window (1 h) it no longer counts
    const late = T0 + 60 * 60 * 1000
    expect(
      code(decideOffline(p, state, candidate({ amountMinor: 1001, ts: late }), { ...quorum, now: late })),
    ).toBeUndefined()
  })

  it('card_count_exceeded', () => {
    const p = policy({ cardCapCount: 2, currencies: { EUR: { cardCapMinor: 100_000 } } })
    state.addReservation(facts({ amountMinor: 1 }), true)
    expect(code(decideOffline(p, state, candidate({ amountMinor: 1 }), quorum))).toBeUndefined()
    state.addCommit(facts({ amountMinor: 1 }), 'quorum')
    expect(code(decideOffline(p, state, candidate({ amountMinor: 1 }), quorum))).toBe('card_count_exceeded')
  })

  it('device_cap_exceeded counts this origin only', () => {
    const p = policy({ currencies: { EUR: { deviceCapMinor: 2500 } } })
    state.addCommit(facts({ amountMinor: 2000, cardKey: hex('x', 16) }), 'quorum')
    state.addCommit(facts({ amountMinor: 1000, cardKey: hex('y', 16), origin: ORIGIN_B }), 'quorum')
    expect(code(decideOffline(p, state, candidate({ amountMinor: 500 }), quorum))).toBeUndefined()
    expect(code(decideOffline(p, state, candidate({ amountMinor: 501 }), quorum))).toBe('device_cap_exceeded')
    expect(
      code(decideOffline(p, state, candidate({ amountMinor: 501, origin: ORIGIN_B }), quorum)),
    ).toBeUndefined()
  })

  it('queue_full counts this origin across currencies', () => {
    const p = policy({ deviceMaxQueued: 2 })
    state.addCommit(facts({ cardKey: hex('a', 16) }), 'quorum')
    state.addCommit(facts({ cardKey: hex('b', 16), currency: 'USD' }), 'quorum')
    expect(code(decideOffline(p, state, candidate(), quorum))).toBe('queue_full')
    expect(code(decideOffline(p, state, candidate({ origin: ORIGIN_B }), quorum))).toBeUndefined()
    // older than the queue duration: settled or voided, no longer queued
    const later = T0 + 24 * 60 * 60 * 1000 + 1
    expect(code(decideOffline(p, state, candidate({ ts: later }), { ...quorum, now: later }))).toBeUndefined()
  })

  it('venue_cap_exceeded counts every origin', () => {
    const p = policy({ currencies: { EUR: { venueCapMinor: 3000 } } })
    state.addCommit(facts({ amountMinor: 1500, cardKey: hex('a', 16), origin: ORIGIN_B }), 'quorum')
    state.addReservation(facts({ amountMinor: 1000, cardKey: hex('b', 16), origin: hex('origin-c') }), true)
    expect(code(decideOffline(p, state, candidate({ amountMinor: 500 }), quorum))).toBeUndefined()
    expect(code(decideOffline(p, state, candidate({ amountMinor: 501 }), quorum))).toBe('venue_cap_exceeded')
  })

  it('isolated_limit_exceeded: the isolated device cap counts isolated commits of this origin', () => {
    const p = policy({ currencies: { EUR: { isolatedDeviceCapMinor: 3000 } } })
    state.addCommit(facts({ amountMinor: 2000, cardKey: hex('a', 16) }), 'isolated')
    // quorum-mode commits and other origins' isolated commits do not use this terminal's isolated cap
    state.addCommit(facts({ amountMinor: 2000, cardKey: hex('b', 16) }), 'quorum')
    state.addCommit(facts({ amountMinor: 2000, cardKey: hex('c', 16), origin: ORIGIN_B }), 'isolated')
    expect(code(decideOffline(p, state, candidate({ amountMinor: 1000 }), isolated))).toBeUndefined()
    expect(code(decideOffline(p, state, candidate({ amountMinor: 1001 }), isolated))).toBe(
      'isolated_limit_exceeded',
    )
    expect(code(decideOffline(p, state, candidate({ amountMinor: 1001 }), quorum))).toBeUndefined()
  })

  it('isolated_card_used', () => {
    const p = policy()
    state.addCommit(facts({ amountMinor: 100 }), 'isolated')
    expect(code(decideOffline(p, state, candidate({ amountMinor: 100 }), isolated))).toBe(
      'isolated_card_used',
    )
    expect(
      code(decideOffline(p, state, candidate({ amountMinor: 100, cardKey: CARD_2 }), isolated)),
    ).toBeUndefined()
    expect(code(decideOffline(p, state, candidate({ amountMinor: 100 }), quorum))).toBeUndefined()
    const two = policy({ isolated: { maxApprovalsPerCard: 2 } })
    expect(code(decideOffline(two, state, candidate({ amountMinor: 100 }), isolated))).toBeUndefined()
  })

  it('isolated limits hold across a forward clock jump past the queue window, until central confirms', () => {
    const p = policy({ currencies: { EUR: { isolatedDeviceCapMinor: 2000 } } })
    const first = facts({ amountMinor: 2000 })
    expect(decideOffline(p, state, { ...first, id: undefined }, isolated)).toEqual({ approve: true })
    state.addCommit(first, 'isolated')
    // the terminal stays isolated, and its clock jumps forward by more than a queue window
    const later = T0 + p.queueDurationMs + 60_000
    const at = { mode: 'isolated' as const, now: later }
    expect(code(decideOffline(p, state, candidate({ amountMinor: 1, cardKey: CARD_2, ts: later }), at))).toBe(
      'isolated_limit_exceeded',
    )
    expect(code(decideOffline(p, state, candidate({ amountMinor: 0, ts: later }), at))).toBe(
      'isolated_card_used',
    )
    // central ingested it: the budget and the card are free again
    state.confirmIsolated(first.id)
    expect(decideOffline(p, state, candidate({ amountMinor: 2000, ts: later }), at)).toEqual({
      approve: true,
    })
    // and a confirmed commit is not subtracted from itself when re-decided
    expect(decideOffline(p, state, { ...first, ts: later }, at)).toEqual({ approve: true })
  })

  it('quorum_unavailable in isolated mode when it is disabled', () => {
    const p = policy({ isolated: { enabled: false } })
    expect(code(decideOffline(p, state, candidate(), isolated))).toBe('quorum_unavailable')
    expect(code(decideOffline(p, state, candidate(), quorum))).toBeUndefined()
  })

  it('stale_reservation when the payment time is too far from now, either way', () => {
    const p = policy()
    expect(code(decideOffline(p, state, candidate({ ts: T0 - 30_000 }), quorum))).toBeUndefined()
    expect(code(decideOffline(p, state, candidate({ ts: T0 - 30_001 }), quorum))).toBe('stale_reservation')
    expect(code(decideOffline(p, state, candidate({ ts: T0 + 30_001 }), quorum))).toBe('stale_reservation')
  })

  it('invalid amounts are declined, not thrown', () => {
    expect(code(decideOffline(policy(), state, candidate({ amountMinor: -1 }), quorum))).toBe('other')
    expect(code(decideOffline(policy(), state, candidate({ amountMinor: 1.5 }), quorum))).toBe('other')
    expect(code(decideOffline(policy(), state, candidate({ amountMinor: 2 ** 48 }), quorum))).toBe(
      'max_amount_exceeded',
    )
  })
})

describe('decideOffline: order and self-exclusion', () => {
  it('checks run in the documented order', () => {
    const state = createExposureState()
    const p = policy({
      denylistCardKeys: [CARD_1],
      blockedBins: ['4'],
      isolated: { enabled: false },
      currencies: { EUR: { cardCapMinor: 10 } },
    })
    const all = candidate({ currency: 'JPY', method: 'swipe', bin: '41111111', amountMinor: 999_999 })
    const steps: Array<[Partial<OfflineCandidate>, string]> = [
      [{}, 'currency_not_supported'],
      [{ currency: 'EUR' }, 'method_not_allowed_offline'],
      [{ currency: 'EUR', method: 'chip' }, 'denylisted_card'],
      [{ currency: 'EUR', method: 'chip', cardKey: CARD_2 }, 'blocked_bin'],
    ]
    for (const [over, expected] of steps)
      expect(code(decideOffline(p, state, { ...all, ...over }, isolated))).toBe(expected)
    const clean = { ...all, currency: 'EUR', method: 'chip' as const, cardKey: CARD_2, bin: undefined }
    expect(code(decideOffline(p, state, clean, isolated))).toBe('quorum_unavailable')
    expect(code(decideOffline(p, state, clean, quorum))).toBe('floor_limit_exceeded')
    const held = facts({ cardKey: CARD_2 })
    state.addReservation(held, true)
    expect(
      code(decideOffline(p, state, { ...clean, amountMinor: 5000, nullifier: held.nullifier }, quorum)),
    ).toBe('nullifier_seen')
    expect(code(decideOffline(p, state, { ...clean, amountMinor: 5000 }, quorum))).toBe('card_cap_exceeded')
  })

  it('a reservation already in the state is not counted against itself', () => {
    const p = policy({
      cardCapCount: 1,
      deviceMaxQueued: 1,
      currencies: {
        EUR: {
          cardCapMinor: 1000,
          deviceCapMinor: 1000,
          venueCapMinor: 1000,
          isolatedDeviceCapMinor: 1000,
          isolatedFloorLimitMinor: 1000,
        },
      },
    })
    const state = createExposureState()
    const r = facts({ amountMinor: 1000 })
    state.addReservation(r, true)
    expect(decideOffline(p, state, r, quorum)).toEqual({ approve: true })
    state.addCommit(r, 'isolated')
    expect(decideOffline(p, state, r, isolated)).toEqual({ approve: true })
    // without its id it is another payment, and every cap is full
    expect(code(decideOffline(p, state, { ...r, id: undefined, nullifier: hex('n2') }, quorum))).toBe(
      'card_cap_exceeded',
    )
  })

  it('is pure: deciding does not change the state', () => {
    const state = createExposureState()
    state.addReservation(facts(), true)
    const before = state.snapshot()
    decideOffline(policy(), state, candidate(), quorum)
    decideOffline(policy(), state, candidate(), isolated)
    expect(state.snapshot()).toEqual(before)
  })

  it('an online-only commit does not use offline caps', () => {
    const p = policy({ currencies: { EUR: { cardCapMinor: 1000 } } })
    const state = createExposureState()
    state.addCommit(facts({ amountMinor: 1000 }), 'online')
    expect(code(decideOffline(p, state, candidate({ amountMinor: 1000 }), quorum))).toBeUndefined()
  })
})

describe('decideAck', () => {
  it('is decideOffline in quorum mode from the peer view, the reservation excluded', () => {
    const p = policy({ currencies: { EUR: { cardCapMinor: 2000 } } })
    const peer = createExposureState()
    const r = facts({ amountMinor: 1500 })
    expect(decideAck(p, peer, r, { now: T0 })).toEqual({ approve: true })
    peer.addReservation(r, true) // acked: held
    // asked again (a retransmission): same answer
    expect(decideAck(p, peer, r, { now: T0 })).toEqual({ approve: true })
    // another reservation for the same card now exceeds the cap at this peer
    expect(code(decideAck(p, peer, facts({ amountMinor: 600 }), { now: T0 }))).toBe('card_cap_exceeded')
    // and the same credential use is refused
    expect(
      code(
        decideAck(p, peer, facts({ amountMinor: 1, nullifier: r.nullifier, cardKey: CARD_2 }), { now: T0 }),
      ),
    ).toBe('nullifier_seen')
  })

  it('refuses stale and future reservations', () => {
    const p = policy()
    const peer = createExposureState()
    expect(code(decideAck(p, peer, facts({ ts: T0 - 31_000 }), { now: T0 }))).toBe('stale_reservation')
    expect(code(decideAck(p, peer, facts({ ts: T0 + 31_000 }), { now: T0 }))).toBe('stale_reservation')
  })

  it('ignores the BIN (peers never see it) but applies every other rule', () => {
    const p = policy({ blockedBins: ['4'], allowedMethodsOffline: ['chip'] })
    const peer = createExposureState()
    expect(decideAck(p, peer, facts({ method: 'chip' }), { now: T0 })).toEqual({ approve: true })
    expect(code(decideAck(p, peer, facts({ method: 'nfc' }), { now: T0 }))).toBe('method_not_allowed_offline')
  })

  it('with an origin view: conflict when the peer holds a card reservation the origin has not seen', () => {
    const p = policy()
    const origin = createExposureState()
    const peer = createExposureState()
    const seenByBoth = facts({ amountMinor: 100 })
    const onlyPeer = facts({ amountMinor: 100, origin: ORIGIN_B })
    origin.addCommit(seenByBoth, 'quorum')
    peer.addCommit(seenByBoth, 'quorum')
    const r = facts({ amountMinor: 100 })
    const view = originView(p, origin, r)
    expect(view).toEqual([seenByBoth.id])
    expect(decideAck(p, peer, r, { now: T0, originView: view })).toEqual({ approve: true })
    peer.addReservation(onlyPeer, true)
    expect(code(decideAck(p, peer, r, { now: T0, originView: view }))).toBe('conflict')
    // not held by the peer (only gossiped): does not count, no conflict
    const other = createExposureState()
    other.addReservation(onlyPeer, false)
    expect(decideAck(p, other, r, { now: T0, originView: view })).toEqual({ approve: true })
    // without a view there is no such check
    expect(decideAck(p, peer, r, { now: T0 })).toEqual({ approve: true })
  })

  it('originView lists the active card reservations in the window, the candidate excluded', () => {
    const p = policy()
    const s = createExposureState()
    const old = facts({ ts: T0 - 2 * 60 * 60 * 1000 })
    const a = facts({ ts: T0 - 10 })
    const b = facts({ ts: T0 - 5 })
    const released = facts({ ts: T0 - 1 })
    const otherCard = facts({ cardKey: CARD_2 })
    for (const f of [old, a, b, released, otherCard]) s.addReservation(f, true)
    s.addRelease(released.id)
    expect(originView(p, s, { ...b, ts: T0 })).toEqual([a.id])
    expect(originView(p, s, { cardKey: CARD_1, currency: 'EUR', ts: T0 })).toEqual([a.id, b.id])
  })
})

describe('decideOnlineAck', () => {
  const now = { now: T0 }

  it('is not bound by the offline floor limit, caps, currency or method', () => {
    const p = policy({
      cardCapCount: 1,
      deviceMaxQueued: 1,
      allowedMethodsOffline: ['chip'],
      currencies: { EUR: { cardCapMinor: 100, deviceCapMinor: 100, venueCapMinor: 100 } },
    })
    const peer = createExposureState()
    peer.addCommit(facts({ amountMinor: 100 }), 'quorum') // every offline cap of CARD_1 and ORIGIN_A is full
    const big = facts({ amountMinor: 90_000, method: 'swipe' })
    expect(decideOnlineAck(p, peer, big, now)).toEqual({ approve: true })
    expect(decideOnlineAck(p, peer, { ...big, currency: 'JPY' }, now)).toEqual({ approve: true })
    // the offline rules would have refused it
    expect(code(decideAck(p, peer, big, now))).toBe('method_not_allowed_offline')
    expect(code(decideAck(p, peer, { ...big, method: 'chip' }, now))).toBe('floor_limit_exceeded')
    expect(code(decideAck(p, peer, facts({ amountMinor: 1, method: 'chip' }), now))).toBe('card_cap_exceeded')
  })

  it('input sanity: other, max_amount_exceeded', () => {
    const peer = createExposureState()
    expect(code(decideOnlineAck(policy(), peer, facts({ amountMinor: -1 }), now))).toBe('other')
    expect(code(decideOnlineAck(policy(), peer, facts({ amountMinor: 0.5 }), now))).toBe('other')
    expect(code(decideOnlineAck(policy(), peer, facts({ amountMinor: 2 ** 48 }), now))).toBe(
      'max_amount_exceeded',
    )
  })

  it('stale_reservation either way, at the policy skew', () => {
    const peer = createExposureState()
    expect(decideOnlineAck(policy(), peer, facts({ ts: T0 - 30_000 }), now)).toEqual({ approve: true })
    expect(code(decideOnlineAck(policy(), peer, facts({ ts: T0 - 30_001 }), now))).toBe('stale_reservation')
    expect(code(decideOnlineAck(policy(), peer, facts({ ts: T0 + 30_001 }), now))).toBe('stale_reservation')
    expect(code(decideOnlineAck(policy(), peer, facts({ ts: Number.NaN }), now))).toBe('stale_reservation')
  })

  it('denylisted_card (case-insensitive card key)', () => {
    const p = policy({ denylistCardKeys: [CARD_1] })
    const peer = createExposureState()
    expect(code(decideOnlineAck(p, peer, facts({ cardKey: CARD_1.toUpperCase() }), now))).toBe(
      'denylisted_card',
    )
    expect(decideOnlineAck(p, peer, facts({ cardKey: CARD_2 }), now)).toEqual({ approve: true })
  })

  it('nullifier_seen: held by another active reservation, offline or online; not by itself', () => {
    const p = policy()
    const peer = createExposureState()
    const offline = facts()
    const online = facts({ nullifier: offline.nullifier, cardKey: CARD_2 })
    peer.addReservation(offline, true)
    expect(code(decideOnlineAck(p, peer, online, now))).toBe('nullifier_seen')
    peer.addRelease(offline.id)
    expect(decideOnlineAck(p, peer, online, now)).toEqual({ approve: true })
    // acked: this peer now holds the nullifier, so an offline use of it is refused here…
    peer.addReservation(online, true)
    expect(code(decideAck(p, peer, facts({ nullifier: online.nullifier }), now))).toBe('nullifier_seen')
    // …and so is a second online reservation, while the same one asked again is not a conflict
    expect(code(decideOnlineAck(p, peer, facts({ nullifier: online.nullifier }), now))).toBe('nullifier_seen')
    expect(decideOnlineAck(p, peer, online, now)).toEqual({ approve: true })
    // an online commit holds it for good
    peer.addCommit(online, 'online')
    peer.addRelease(online.id)
    expect(code(decideOnlineAck(p, peer, facts({ nullifier: online.nullifier }), now))).toBe('nullifier_seen')
  })

  it('checks in order: sanity, stale, deny list, nullifier', () => {
    const p = policy({ denylistCardKeys: [CARD_1] })
    const peer = createExposureState()
    const held = facts()
    peer.addReservation(held, true)
    const r = facts({ amountMinor: -1, ts: T0 - 60_000, nullifier: held.nullifier })
    expect(code(decideOnlineAck(p, peer, r, now))).toBe('other')
    expect(code(decideOnlineAck(p, peer, { ...r, amountMinor: 1 }, now))).toBe('stale_reservation')
    expect(code(decideOnlineAck(p, peer, { ...r, amountMinor: 1, ts: T0 }, now))).toBe('denylisted_card')
    expect(code(decideOnlineAck(p, peer, { ...r, amountMinor: 1, ts: T0, cardKey: CARD_2 }, now))).toBe(
      'nullifier_seen',
    )
  })

  it('is pure', () => {
    const peer = createExposureState()
    peer.addReservation(facts(), true)
    const before = peer.snapshot()
    decideOnlineAck(policy(), peer, facts(), now)
    expect(peer.snapshot()).toEqual(before)
  })
})

describe('decideUnheldOnline: an online payment no quorum holds, under the isolated rules', () => {
  const c = (over: Partial<OfflineCandidate> = {}) => candidate(over)
  it('counts min(amount, floor limit), one per card, within the isolated device cap', () => {
    const p = policy()
    const limits = p.currencies.EUR!
    expect(unheldOnlineExposure(p, 'EUR', 10 * limits.floorLimitMinor)).toBe(limits.floorLimitMinor)
    expect(unheldOnlineExposure(p, 'EUR', 1)).toBe(1)
    expect(unheldOnlineExposure(p, 'JPY', 1000)).toBe(0)
    const state = createExposureState()
    expect(decideUnheldOnline(p, state, c())).toEqual({ approve: true })
    const first = facts({ amountMinor: 10 * limits.floorLimitMinor })
    state.addReservation(first, true)
    state.exposeUnheld(first.id, unheldOnlineExposure(p, 'EUR', first.amountMinor))
    expect(code(decideUnheldOnline(p, state, c()))).toBe('isolated_card_used')
    expect(decideUnheldOnline(p, state, c({ cardKey: CARD_2 }))).toEqual({ approve: true })
    // 5,000 counted + 5,000 more > a cap of 8,000
    const tight = policy({ currencies: { EUR: { isolatedDeviceCapMinor: 8_000 } } })
    const big = c({ cardKey: CARD_2, amountMinor: 9_000 })
    expect(code(decideUnheldOnline(tight, state, big))).toBe('isolated_limit_exceeded')
    expect(decideUnheldOnline(tight, state, c({ cardKey: CARD_2, amountMinor: 3_000 }))).toEqual({
      approve: true,
    })
    // a currency not accepted offline: nothing offline could duplicate it
    expect(decideUnheldOnline(p, state, c({ currency: 'JPY' }))).toEqual({ approve: true })
  })

  it('isolated mode disabled: refused quorum_unavailable', () => {
    const p = policy({ isolated: { enabled: false } })
    expect(code(decideUnheldOnline(p, createExposureState(), c()))).toBe('quorum_unavailable')
  })
})
