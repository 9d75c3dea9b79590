import { createExposureState, type ExposureState, type ReservationFacts } from '@nullmesh/policy'
import { type CommitMode, PAYMENT_METHODS } from '@nullmesh/protocol'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CARD_1, facts, hex, ORIGIN_A, ORIGIN_B, T0 } from './helpers.js'

describe('exposure state: what is active', () => {
  it('held and not released, or committed', () => {
    const s = createExposureState()
    const r = facts()
    s.addReservation(r, false)
    expect(s.isActive(r.id)).toBe(false)
    expect(s.cardExposure(CARD_1, 'EUR', 0)).toEqual({ amountMinor: 0, count: 0 })
    s.hold(r.id)
    expect(s.isActive(r.id)).toBe(true)
    expect(s.cardExposure(CARD_1, 'EUR', 0)).toEqual({ amountMinor: 1000, count: 1 })
    expect(s.nullifierHolder(r.nullifier)).toBe(r.id)
    s.addRelease(r.id)
    expect(s.isActive(r.id)).toBe(false)
    expect(s.nullifierHolder(r.nullifier)).toBeUndefined()
    expect(s.venueExposure('EUR', 0)).toBe(0)
    s.addCommit(r, 'quorum')
    expect(s.isActive(r.id)).toBe(true)
    expect(s.venueExposure('EUR', 0)).toBe(1000)
  })

  it('a hold or release seen before the reservation applies when it arrives', () => {
    const s = createExposureState()
    const r = facts()
    s.hold(r.id)
    expect(s.isActive(r.id)).toBe(false)
    s.addReservation(r, false)
    expect(s.isActive(r.id)).toBe(true)
    const r2 = facts()
    s.addRelease(r2.id)
    s.addReservation(r2, true)
    expect(s.isActive(r2.id)).toBe(false)
  })

  it('indexes by card, origin, currency and time', () => {
    const s = createExposureState()
    s.addReservation(facts({ amountMinor: 100, ts: T0 }), true)
    s.addReservation(facts({ amountMinor: 200, ts: T0 + 10, origin: ORIGIN_B }), true)
    s.addReservation(facts({ amountMinor: 400, ts: T0 + 20, currency: 'USD' }), true)
    s.addReservation(facts({ amountMinor: 800, ts: T0 + 30, cardKey: hex('other', 16) }), true)
    expect(s.cardExposure(CARD_1, 'EUR', T0)).toEqual({ amountMinor: 300, count: 2 })
    expect(s.cardExposure(CARD_1, 'EUR', T0 + 1)).toEqual({ amountMinor: 200, count: 1 })
    expect(s.deviceExposure(ORIGIN_A, 'EUR', T0)).toEqual({ amountMinor: 900, count: 2 })
    expect(s.deviceExposure(ORIGIN_A, 'USD', T0)).toEqual({ amountMinor: 400, count: 1 })
    expect(s.deviceQueued(ORIGIN_A, T0)).toBe(3)
    expect(s.venueExposure('EUR', T0)).toBe(1100)
    expect(s.venueExposure('EUR', T0 + 31)).toBe(0)
  })

  it('isolated exposure counts isolated commits of the origin only', () => {
    const s = createExposureState()
    const a = facts({ amountMinor: 100 })
    s.addCommit(a, 'isolated')
    s.addCommit(facts({ amountMinor: 200 }), 'quorum')
    s.addReservation(facts({ amountMinor: 400 }), true)
    s.addCommit(facts({ amountMinor: 800, origin: ORIGIN_B }), 'isolated')
    expect(s.isolatedExposure(ORIGIN_A, 'EUR')).toEqual({ amountMinor: 100, count: 1 })
    expect(s.isolatedCardCount(ORIGIN_A, CARD_1)).toBe(1)
    expect(s.isolatedCardCount(ORIGIN_B, CARD_1)).toBe(1)
    // a release does not undo a commit
    s.addRelease(a.id)
    expect(s.isolatedExposure(ORIGIN_A, 'EUR').amountMinor).toBe(100)
    expect(s.isActive(a.id)).toBe(true)
  })

  it('confirmIsolated frees the isolated budget only: idempotent, early or late, kept by merge', () => {
    const s = createExposureState()
    const a = facts({ amountMinor: 100 })
    const b = facts({ amountMinor: 200 })
    s.addCommit(a, 'isolated')
    s.addCommit(b, 'isolated')
    s.confirmIsolated(a.id)
    s.confirmIsolated(a.id)
    expect(s.isolatedExposure(ORIGIN_A, 'EUR')).toEqual({ amountMinor: 200, count: 1 })
    expect(s.isolatedCardCount(ORIGIN_A, CARD_1)).toBe(1)
    // still an offline approval: it holds its nullifier and counts toward the caps
    expect(s.isActive(a.id)).toBe(true)
    expect(s.nullifierHolder(a.nullifier)).toBe(a.id)
    expect(s.cardExposure(CARD_1, 'EUR', 0)).toEqual({ amountMinor: 300, count: 2 })
    expect(s.get(a.id)?.confirmed).toBe(true)
    // a confirmation seen before its commit applies when the commit arrives
    const c = facts({ amountMinor: 400 })
    s.confirmIsolated(c.id)
    s.addCommit(c, 'isolated')
    expect(s.isolatedExposure(ORIGIN_A, 'EUR').amountMinor).toBe(200)
    // merge ORs the flag, in either direction
    const other = createExposureState()
    other.addCommit(b, 'isolated')
    other.addCommit(a, 'isolated')
    expect(other.isolatedExposure(ORIGIN_A, 'EUR').amountMinor).toBe(300)
    other.merge(s)
    expect(other.isolatedExposure(ORIGIN_A, 'EUR').amountMinor).toBe(200)
    s.confirmIsolated(b.id)
    const back = createExposureState()
    back.merge(s)
    back.merge(other)
    expect(back.isolatedExposure(ORIGIN_A, 'EUR')).toEqual({ amountMinor: 0, count: 0 })
  })

  it('isolated exposure has no time window: old unconfirmed commits still count', () => {
    const s = createExposureState()
    s.addCommit(facts({ amountMinor: 100, ts: T0 - 365 * 24 * 3600 * 1000 }), 'isolated')
    s.addCommit(facts({ amountMinor: 200, ts: T0 + 365 * 24 * 3600 * 1000 }), 'isolated')
    expect(s.isolatedExposure(ORIGIN_A, 'EUR')).toEqual({ amountMinor: 300, count: 2 })
    expect(s.isolatedCardCount(ORIGIN_A, CARD_1)).toBe(2)
  })

  it('exposeUnheld: an online reservation no quorum holds uses the isolated budget at its exposure amount while active', () => {
    const s = createExposureState()
    const r = facts({ amountMinor: 9000 })
    s.addReservation(r, true)
    s.exposeUnheld(r.id, 5000)
    expect(s.isolatedExposure(ORIGIN_A, 'EUR')).toEqual({ amountMinor: 5000, count: 1 })
    expect(s.isolatedCardCount(ORIGIN_A, CARD_1)).toBe(1)
    // approved online: still counted (until central confirms), and no offline cap is used
    s.addCommit(r, 'online')
    expect(s.isolatedExposure(ORIGIN_A, 'EUR').amountMinor).toBe(5000)
    expect(s.cardExposure(CARD_1, 'EUR', 0).amountMinor).toBe(0)
    // merge keeps it; confirmation frees it
    const t = createExposureState()
    t.merge(s)
    expect(t.isolatedExposure(ORIGIN_A, 'EUR').amountMinor).toBe(5000)
    s.confirmIsolated(r.id)
    expect(s.isolatedExposure(ORIGIN_A, 'EUR')).toEqual({ amountMinor: 0, count: 0 })
    // a declined one (released, never committed) gives it back
    const d = facts({ amountMinor: 300 })
    s.addReservation(d, true)
    s.exposeUnheld(d.id, 300)
    expect(s.isolatedExposure(ORIGIN_A, 'EUR').amountMinor).toBe(300)
    s.addRelease(d.id)
    expect(s.isolatedExposure(ORIGIN_A, 'EUR').amountMinor).toBe(0)
    // decided offline in isolated mode under the same reservation: its own amount counts
    const o = facts({ amountMinor: 2000 })
    s.addReservation(o, true)
    s.exposeUnheld(o.id, 2000)
    s.addCommit(o, 'isolated')
    expect(s.isolatedExposure(ORIGIN_A, 'EUR')).toEqual({ amountMinor: 2000, count: 1 })
  })

  it('online-only commits hold the nullifier but use no offline cap', () => {
    const s = createExposureState()
    const r = facts()
    s.addCommit(r, 'online')
    expect(s.isActive(r.id)).toBe(true)
    expect(s.nullifierHolder(r.nullifier)).toBe(r.id)
    expect(s.cardExposure(CARD_1, 'EUR', 0).count).toBe(0)
    // the same reservation also committed offline does count
    s.addCommit(r, 'quorum')
    expect(s.cardExposure(CARD_1, 'EUR', 0).count).toBe(1)
  })

  it('nullifierHolder skips the excluded id and is deterministic', () => {
    const s = createExposureState()
    const n = hex('shared-nullifier')
    const ids = [hex('z'), hex('a'), hex('m')].sort()
    for (const id of ids) s.addCommit(facts({ id, nullifier: n }), 'isolated')
    expect(s.nullifierHolder(n)).toBe(ids[0])
    expect(s.nullifierHolder(n, ids[0])).toBe(ids[1])
  })

  it('keeps the first facts for an id and is not aliased to the caller', () => {
    const s = createExposureState()
    const r = facts()
    s.addReservation(r, true)
    r.amountMinor = 999_999
    expect(s.get(r.id)?.facts?.amountMinor).toBe(1000)
    s.addCommit({ ...r }, 'quorum')
    expect(s.cardExposure(CARD_1, 'EUR', 0).amountMinor).toBe(1000)
  })
})

// ---- CRDT properties -----------------------------------------------------------------------------

type Op =
  | { kind: 'reserve'; r: ReservationFacts; held: boolean }
  | { kind: 'hold'; id: string }
  | { kind: 'commit'; r: ReservationFacts; mode: CommitMode }
  | { kind: 'release'; id: string }
  | { kind: 'confirm'; id: string }

const ORIGINS = [ORIGIN_A, ORIGIN_B, hex('origin-c')]
const CARDS = [CARD_1, hex('card-x', 16), hex('card-y', 16)]

const factsArb = fc
  .record({
    i: fc.integer({ min: 0, max: 30 }),
    origin: fc.constantFrom(...ORIGINS),
    nullifier: fc.integer({ min: 0, max: 20 }),
    cardKey: fc.constantFrom(...CARDS),
    amountMinor: fc.integer({ min: 0, max: 5000 }),
    currency: fc.constantFrom('EUR', 'USD'),
    method: fc.constantFrom(...PAYMENT_METHODS),
    ts: fc.integer({ min: T0, max: T0 + 10_000 }),
  })
  // facts are a function of the id, as with content-addressed events
  .map(({ i, ...f }) => ({ ...f, id: hex(`id-${i}`), nullifier: hex(`n-${f.nullifier}`) }))

const ID_POOL = Array.from({ length: 31 }, (_, i) => hex(`id-${i}`))

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('reserve' as const), r: factsArb, held: fc.boolean() }),
  fc.record({ kind: fc.constant('hold' as const), id: fc.constantFrom(...ID_POOL) }),
  fc.record({
    kind: fc.constant('commit' as const),
    r: factsArb,
    mode: fc.constantFrom<CommitMode>('quorum', 'isolated', 'online'),
  }),
  fc.record({ kind: fc.constant('release' as const), id: fc.constantFrom(...ID_POOL) }),
  fc.record({ kind: fc.constant('confirm' as const), id: fc.constantFrom(...ID_POOL) }),
)

/** ops for one id must agree on its facts: take the first facts generated for each id */
function canonical(ops: Op[]): Op[] {
  const first = new Map<string, ReservationFacts>()
  return ops.map((op) => {
    if (op.kind !== 'reserve' && op.kind !== 'commit') return op
    const f = first.get(op.r.id) ?? op.r
    first.set(op.r.id, f)
    return { ...op, r: f }
  })
}

function apply(s: ExposureState, op: Op): void {
  if (op.kind === 'reserve') s.addReservation(op.r, op.held)
  else if (op.kind === 'hold') s.hold(op.id)
  else if (op.kind === 'commit') s.addCommit(op.r, op.mode)
  else if (op.kind === 'confirm') s.confirmIsolated(op.id)
  else s.addRelease(op.id)
}

function stateOf(ops: Op[]): ExposureState {
  const s = createExposureState()
  for (const op of ops) apply(s, op)
  return s
}

function observe(s: ExposureState) {
  const out: unknown[] = [s.snapshot()]
  for (const since of [0, T0 + 2_500, T0 + 5_000, T0 + 10_001]) {
    for (const c of ['EUR', 'USD']) {
      out.push(s.venueExposure(c, since))
      for (const card of CARDS) out.push(s.cardExposure(card, c, since), s.cardReservations(card, c, since))
      for (const o of ORIGINS) out.push(s.deviceExposure(o, c, since))
    }
    for (const o of ORIGINS) out.push(s.deviceQueued(o, since))
  }
  for (const o of ORIGINS) {
    for (const c of ['EUR', 'USD']) out.push(s.isolatedExposure(o, c))
    for (const card of CARDS) out.push(s.isolatedCardCount(o, card))
  }
  for (let n = 0; n <= 20; n++) out.push(s.nullifierHolder(hex(`n-${n}`)))
  for (const id of ID_POOL) out.push(s.isActive(id))
  return out
}

describe('exposure state: merge is a CRDT join', () => {
  const opsArb = fc.array(opArb, { maxLength: 60 }).map(canonical)

  it('the same events in any order, with duplicates, give identical snapshots and exposures', () => {
    fc.assert(
      fc.property(opsArb, fc.func(fc.integer()), fc.nat(), (ops, key, dups) => {
        const shuffled = [...ops]
          .map((op, i) => ({ op, k: key(i) }))
          .sort((a, b) => a.k - b.k)
          .map((x) => x.op)
        const withDups = [...shuffled, ...ops.slice(0, dups % (ops.length + 1))]
        expect(observe(stateOf(withDups))).toEqual(observe(stateOf(ops)))
      }),
      { numRuns: 300 },
    )
  })

  it('merging parts in any order equals applying all ops; merge is idempotent', () => {
    fc.assert(
      fc.property(
        opsArb,
        fc.array(fc.nat(3), { minLength: 60, maxLength: 60 }),
        fc.boolean(),
        (ops, split, reverse) => {
          // distribute the ops over 4 terminals (some ops seen by several)
          const parts: Op[][] = [[], [], [], []]
          ops.forEach((op, i) => {
            parts[split[i]!]!.push(op)
            if (i % 3 === 0) parts[(split[i]! + 1) % 4]!.push(op)
          })
          const states = parts.map(stateOf)
          const merged = createExposureState()
          for (const s of reverse ? [...states].reverse() : states) merged.merge(s)
          expect(observe(merged)).toEqual(observe(stateOf(ops)))
          const before = observe(merged)
          merged.merge(states[0]!)
          merged.merge(merged)
          expect(observe(merged)).toEqual(before)
        },
      ),
      { numRuns: 200 },
    )
  })

  it('merge is commutative: a ⊔ b = b ⊔ a', () => {
    fc.assert(
      fc.property(opsArb, opsArb, (x, y) => {
        const both = canonical([...x, ...y])
        const a = both.slice(0, x.length)
        const b = both.slice(x.length)
        const ab = stateOf(a)
        ab.merge(stateOf(b))
        const ba = stateOf(b)
        ba.merge(stateOf(a))
        expect(observe(ab)).toEqual(observe(ba))
      }),
      { numRuns: 200 },
    )
  })

  it('exposures equal a naive recomputation from the records', () => {
    fc.assert(
      fc.property(opsArb, fc.integer({ min: T0 - 1, max: T0 + 10_001 }), (ops, since) => {
        const s = stateOf(ops)
        const counted = [...s.records()].filter(
          (r) =>
            r.facts !== undefined &&
            s.isActive(r.id) &&
            !(r.commitModes.length === 1 && r.commitModes[0] === 'online'),
        )
        for (const card of CARDS) {
          const mine = counted.filter(
            (r) => r.facts!.cardKey === card && r.facts!.currency === 'EUR' && r.facts!.ts >= since,
          )
          expect(s.cardExposure(card, 'EUR', since)).toEqual({
            amountMinor: mine.reduce((t, r) => t + r.facts!.amountMinor, 0),
            count: mine.length,
          })
        }
        const venue = counted.filter((r) => r.facts!.currency === 'USD' && r.facts!.ts >= since)
        expect(s.venueExposure('USD', since)).toBe(venue.reduce((t, r) => t + r.facts!.amountMinor, 0))
        // isolated budget: isolated commits not confirmed, whatever their time
        for (const o of ORIGINS) {
          const iso = [...s.records()].filter(
            (r) =>
              r.facts?.origin === o &&
              r.facts.currency === 'EUR' &&
              r.commitModes.includes('isolated') &&
              !r.confirmed,
          )
          expect(s.isolatedExposure(o, 'EUR')).toEqual({
            amountMinor: iso.reduce((t, r) => t + r.facts!.amountMinor, 0),
            count: iso.length,
          })
        }
      }),
      { numRuns: 300 },
    )
  })
})

describe('exposure state: scale', () => {
  it('holds 100k reservations and answers a decision’s queries fast', () => {
    const s = createExposureState()
    const n = 100_000
    const origins = Array.from({ length: 20 }, (_, i) => hex(`o${i}`))
    const start = performance.now()
    for (let i = 0; i < n; i++) {
      const r: ReservationFacts = {
        id: hex(`big-${i}`),
        origin: origins[i % 20]!,
        nullifier: hex(`bn-${i}`),
        cardKey: hex(`bc-${i % 5000}`, 16),
        amountMinor: 100 + (i % 900),
        currency: 'EUR',
        method: 'chip',
        // mostly in time order, with some jitter
        ts: T0 + i * 800 + ((i * 7919) % 3000),
      }
      if (i % 4 === 0) s.addCommit(r, 'quorum')
      else s.addReservation(r, i % 4 !== 3)
      if (i % 10 === 1) s.addRelease(r.id)
    }
    const loadMs = performance.now() - start
    const now = T0 + n * 800
    const q0 = performance.now()
    let sink = 0
    for (let i = 0; i < 2000; i++) {
      const since = now - 24 * 60 * 60 * 1000 + i
      sink += s.venueExposure('EUR', since)
      sink += s.deviceExposure(origins[i % 20]!, 'EUR', since).amountMinor
      sink += s.deviceQueued(origins[i % 20]!, since)
      sink += s.cardExposure(hex(`bc-${i}`, 16), 'EUR', now - 3_600_000).amountMinor
    }
    const perDecisionMs = (performance.now() - q0) / 2000
    expect(sink).toBeGreaterThan(0)
    expect(s.size).toBe(n)
    // generous bounds for slow CI; a decision must be far below 5 ms (200/s)
    expect(loadMs).toBeLessThan(15_000)
    expect(perDecisionMs).toBeLessThan(1)
  })
})

describe('exposure state: window index under churn', () => {
  it('agrees with a naive sum over many out-of-order inserts and releases', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            ts: fc.integer({ min: 0, max: 500 }),
            amount: fc.integer({ min: 1, max: 100 }),
            release: fc.boolean(),
          }),
          {
            minLength: 300,
            maxLength: 1500,
          },
        ),
        fc.array(fc.integer({ min: -1, max: 501 }), { minLength: 5, maxLength: 5 }),
        (rows, sinces) => {
          const s = createExposureState()
          const live = new Map<string, { ts: number; amount: number }>()
          rows.forEach((row, i) => {
            const id = hex(`churn-${i}`)
            s.addReservation(facts({ id, ts: T0 + row.ts, amountMinor: row.amount }), true)
            live.set(id, { ts: T0 + row.ts, amount: row.amount })
            // release an earlier one now and then
            if (row.release && i > 0) {
              const victim = hex(`churn-${(i * 37) % i}`)
              s.addRelease(victim)
              live.delete(victim)
            }
          })
          for (const since of sinces) {
            const expected = [...live.values()].filter((v) => v.ts >= T0 + since)
            expect(s.venueExposure('EUR', T0 + since)).toBe(expected.reduce((t, v) => t + v.amount, 0))
            expect(s.cardExposure(CARD_1, 'EUR', T0 + since).count).toBe(expected.length)
            expect(s.cardReservations(CARD_1, 'EUR', T0 + since)).toHaveLength(expected.length)
          }
        },
      ),
      { numRuns: 40 },
    )
  })
})
