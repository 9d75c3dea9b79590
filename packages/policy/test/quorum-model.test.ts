import {
  createExposureState,
  decideAck,
  decideOffline,
  defaultPolicy,
  type ExposureState,
  originView,
  partitionExposureBound,
  quorumSize,
  type ReservationFacts,
  type VenuePolicy,
} from '@nullmesh/policy'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { hex, T0 } from './helpers.js'

// An explicit model of the barrier: N terminals, each with its own exposure state. An origin
// decides on its own state and holds its reservation (its own ack), asks peers one by one in any
// interleaving with other barriers, and commits with a quorum of acks (its own included) or
// releases. Gossip of reservations, commits and releases is delivered late, out of order, or never;
// terminals sometimes merge whole states. Safety must hold in every interleaving.

const CARDS = [hex('card-a', 16), hex('card-b', 16)]

const POLICY: VenuePolicy = defaultPolicy('venue-1', {
  cardCapCount: 3,
  currencies: {
    EUR: {
      floorLimitMinor: 2000,
      cardCapMinor: 3000,
      deviceCapMinor: 6000,
      venueCapMinor: 9000,
      isolatedFloorLimitMinor: 1000,
      isolatedDeviceCapMinor: 2000,
    },
  },
})
const LIMITS = POLICY.currencies.EUR!

type Op =
  | { t: 'start'; o: number; card: number; nul: number; amount: number }
  | { t: 'ask'; b: number; p: number }
  | { t: 'finish'; b: number }
  | { t: 'deliver'; m: number; p: number }
  | { t: 'sync'; a: number; b: number }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('start' as const),
      o: fc.nat(),
      card: fc.nat(1),
      nul: fc.nat(12),
      amount: fc.constantFrom(500, 1000, 1500, 1500, 2000),
    }),
  },
  { weight: 8, arbitrary: fc.record({ t: fc.constant('ask' as const), b: fc.nat(), p: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('finish' as const), b: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('deliver' as const), m: fc.nat(), p: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('sync' as const), a: fc.nat(), b: fc.nat() }) },
)

interface Barrier {
  r: ReservationFacts
  origin: number
  view: string[] | undefined
  asked: Set<number>
  acks: number
  open: boolean
}

interface Gossip {
  kind: 'reservation' | 'commit' | 'release'
  r: ReservationFacts
}

interface Outcome {
  n: number
  q: number
  committed: ReservationFacts[]
  states: ExposureState[]
}

function simulate(ops: Op[], n: number, useView: boolean, policy = POLICY): Outcome {
  const states = Array.from({ length: n }, () => createExposureState())
  const keys = Array.from({ length: n }, (_, i) => hex(`terminal-${i}`))
  const q = quorumSize(policy, n)
  const barriers: Barrier[] = []
  const gossip: Gossip[] = []
  const committed: ReservationFacts[] = []
  let clock = T0
  let seq = 0
  for (const op of ops) {
    clock += 7
    const open = barriers.filter((b) => b.open)
    switch (op.t) {
      case 'start': {
        const o = op.o % n
        const r: ReservationFacts = {
          id: hex(`reservation-${seq++}`),
          origin: keys[o]!,
          nullifier: hex(`nullifier-${op.nul}`),
          cardKey: CARDS[op.card]!,
          amountMinor: op.amount,
          currency: 'EUR',
          method: 'chip',
          ts: clock,
        }
        const verdict = decideOffline(
          policy,
          states[o]!,
          { ...r, id: undefined },
          { mode: 'quorum', now: clock },
        )
        if (!verdict.approve) break
        const view = useView ? originView(policy, states[o]!, r) : undefined
        states[o]!.addReservation(r, true)
        barriers.push({ r, origin: o, view, asked: new Set([o]), acks: 1, open: true })
        gossip.push({ kind: 'reservation', r })
        break
      }
      case 'ask': {
        if (open.length === 0) break
        const b = open[op.b % open.length]!
        // peers are numbered from the origin, so an ask never goes to the origin itself
        const p = (b.origin + 1 + (op.p % (n - 1))) % n
        if (b.asked.has(p)) break
        b.asked.add(p)
        const verdict = decideAck(policy, states[p]!, b.r, { now: clock, originView: b.view })
        if (verdict.approve) {
          states[p]!.addReservation(b.r, true)
          b.acks++
        } else {
          states[p]!.addReservation(b.r, false)
        }
        break
      }
      case 'finish': {
        if (open.length === 0) break
        const b = open[op.b % open.length]!
        b.open = false
        if (b.acks >= q) {
          states[b.origin]!.addCommit(b.r, 'quorum')
          committed.push(b.r)
          gossip.push({ kind: 'commit', r: b.r })
        } else {
          states[b.origin]!.addRelease(b.r.id)
          gossip.push({ kind: 'release', r: b.r })
        }
        break
      }
      case 'deliver': {
        if (gossip.length === 0) break
        const m = gossip[op.m % gossip.length]!
        const s = states[op.p % n]!
        if (m.kind === 'reservation') s.addReservation(m.r, false)
        else if (m.kind === 'commit') s.addCommit(m.r, 'quorum')
        else s.addRelease(m.r.id)
        break
      }
      case 'sync':
        states[op.a % n]!.merge(states[op.b % n]!)
        break
    }
  }
  return { n, q, committed, states }
}

function totals(committed: ReservationFacts[], key: (r: ReservationFacts) => string) {
  const out = new Map<string, { amountMinor: number; count: number }>()
  for (const r of committed) {
    const t = out.get(key(r)) ?? { amountMinor: 0, count: 0 }
    t.amountMinor += r.amountMinor
    t.count++
    out.set(key(r), t)
  }
  return [...out.values()]
}

function expectNoNullifierTwice(o: Outcome): void {
  const nullifiers = o.committed.map((r) => r.nullifier)
  expect(new Set(nullifiers).size).toBe(nullifiers.length)
}

function expectDeviceCapsExact(o: Outcome): void {
  // an origin holds all its own reservations, so the per-terminal caps are exact
  for (const t of totals(o.committed, (r) => r.origin)) {
    expect(t.amountMinor).toBeLessThanOrEqual(LIMITS.deviceCapMinor)
    expect(t.count).toBeLessThanOrEqual(POLICY.deviceMaxQueued)
  }
}

const opsArb = fc.array(opArb, { minLength: 20, maxLength: 160 })
const nArb = fc.integer({ min: 2, max: 6 })

describe('quorum model: safety under any interleaving', () => {
  it('with origin views: no nullifier committed twice, card caps exact, device caps exact', () => {
    fc.assert(
      fc.property(nArb, opsArb, (n, ops) => {
        const o = simulate(ops, n, true)
        expectNoNullifierTwice(o)
        for (const t of totals(o.committed, (r) => r.cardKey)) {
          expect(t.amountMinor).toBeLessThanOrEqual(LIMITS.cardCapMinor)
          expect(t.count).toBeLessThanOrEqual(POLICY.cardCapCount)
        }
        expectDeviceCapsExact(o)
        // the venue cap is a sum over all origins: only bounded by n/q × cap (see README)
        const venue = o.committed.reduce((s, r) => s + r.amountMinor, 0)
        expect(venue * o.q).toBeLessThanOrEqual(LIMITS.venueCapMinor * n)
      }),
      { numRuns: 1500 },
    )
  })

  it('without origin views: no nullifier committed twice; card totals within n/q × cap', () => {
    fc.assert(
      fc.property(nArb, opsArb, (n, ops) => {
        const o = simulate(ops, n, false)
        expectNoNullifierTwice(o)
        for (const t of totals(o.committed, (r) => r.cardKey)) {
          // each commit is held by q terminals, each holding at most one cap's worth
          expect(t.amountMinor * o.q).toBeLessThanOrEqual(LIMITS.cardCapMinor * n)
          expect(t.count * o.q).toBeLessThanOrEqual(POLICY.cardCapCount * n)
        }
        expectDeviceCapsExact(o)
      }),
      { numRuns: 1500 },
    )
  })

  it('with every message delivered before the next payment, card caps are exact even without views', () => {
    fc.assert(
      fc.property(
        nArb,
        fc.array(
          fc.record({
            o: fc.nat(),
            card: fc.nat(1),
            nul: fc.nat(6),
            amount: fc.constantFrom(500, 1000, 1500, 2000),
            acks: fc.nat(),
          }),
          { maxLength: 30 },
        ),
        (n, payments) => {
          // sequential payments: start, ask some peers, finish, deliver everything everywhere
          const ops: Op[] = []
          let messages = 0
          for (const p of payments) {
            ops.push({ t: 'start', o: p.o, card: p.card, nul: p.nul, amount: p.amount })
            for (let i = 0; i < p.acks % n; i++) ops.push({ t: 'ask', b: 0, p: i })
            ops.push({ t: 'finish', b: 0 })
            messages += 2
            for (let m = 0; m < messages; m++) for (let t = 0; t < n; t++) ops.push({ t: 'deliver', m, p: t })
          }
          const o = simulate(ops, n, false)
          expectNoNullifierTwice(o)
          for (const t of totals(o.committed, (r) => r.cardKey)) {
            expect(t.amountMinor).toBeLessThanOrEqual(LIMITS.cardCapMinor)
            expect(t.count).toBeLessThanOrEqual(POLICY.cardCapCount)
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  it('why views are needed: without them three terminals can commit 1.5 × the card cap', () => {
    // A, B, C; the card cap allows two 1500 payments. Every pair of quorums shares a terminal, but
    // no terminal sees all three payments: r1 by {A,B}, r2 by {B,C}, r3 by {C,A}.
    const ops: Op[] = [
      { t: 'start', o: 0, card: 0, nul: 1, amount: 1500 }, // r1 at A
      { t: 'ask', b: 0, p: 0 }, // B acks r1 (peers are numbered from the origin: 0 is the next one)
      { t: 'finish', b: 0 }, // r1 committed; gossip never arrives
      { t: 'start', o: 1, card: 0, nul: 2, amount: 1500 }, // r2 at B (B holds r1: 1500 + 1500 ≤ 3000)
      { t: 'ask', b: 0, p: 0 }, // C acks r2
      { t: 'finish', b: 0 },
      { t: 'start', o: 2, card: 0, nul: 3, amount: 1500 }, // r3 at C (C holds r2)
      { t: 'ask', b: 0, p: 0 }, // A acks r3 (A holds r1)
      { t: 'finish', b: 0 },
    ]
    const without = simulate(ops, 3, false)
    expect(without.committed.map((r) => r.amountMinor)).toEqual([1500, 1500, 1500])
    // with views, the third barrier meets A holding r1, which C's view lacks: conflict, released
    const withViews = simulate(ops, 3, true)
    expect(withViews.committed.map((r) => r.amountMinor)).toEqual([1500, 1500])
    const refusal = decideAck(
      POLICY,
      withViews.states[0]!,
      { ...without.committed[2]!, ts: T0 + 56 },
      {
        now: T0 + 56,
        originView: [without.committed[1]!.id],
      },
    )
    expect(refusal.approve || refusal.code).toBe('conflict')
  })
})

describe('isolated mode: partition bound', () => {
  it('terminals approving alone never exceed partitionExposureBound', () => {
    fc.assert(
      fc.property(
        nArb,
        fc.array(fc.record({ o: fc.nat(), card: fc.nat(5), amount: fc.integer({ min: 1, max: 1000 }) }), {
          maxLength: 80,
        }),
        (n, payments) => {
          const states = Array.from({ length: n }, () => createExposureState())
          let total = 0
          payments.forEach((p, i) => {
            const o = p.o % n
            const ts = T0 + i
            const r: ReservationFacts = {
              id: hex(`iso-${i}`),
              origin: hex(`terminal-${o}`),
              nullifier: hex(`iso-n-${i}`),
              cardKey: hex(`iso-card-${p.card}`, 16),
              amountMinor: p.amount,
              currency: 'EUR',
              method: 'chip',
              ts,
            }
            const v = decideOffline(
              POLICY,
              states[o]!,
              { ...r, id: undefined },
              { mode: 'isolated', now: ts },
            )
            if (!v.approve) return
            states[o]!.addCommit(r, 'isolated')
            total += r.amountMinor
          })
          expect(total).toBeLessThanOrEqual(partitionExposureBound(POLICY, n, 'EUR'))
        },
      ),
      { numRuns: 300 },
    )
  })

  it('whatever the duration of the partition and the clock jumps, until central confirms', () => {
    const day = POLICY.queueDurationMs
    fc.assert(
      fc.property(
        nArb,
        fc.array(
          fc.record({
            o: fc.nat(),
            card: fc.nat(5),
            amount: fc.integer({ min: 1, max: 1000 }),
            // a few ms, or a jump of up to three queue windows, forward or back
            step: fc.oneof(fc.integer({ min: 0, max: 10 }), fc.integer({ min: -3 * day, max: 3 * day })),
            // central confirms this terminal's approvals so far, rarely (its link flaps)
            confirm: fc.nat(9).map((x) => x === 0),
          }),
          { maxLength: 80 },
        ),
        (n, payments) => {
          const states = Array.from({ length: n }, () => createExposureState())
          const clocks = Array.from({ length: n }, () => T0)
          // approvals central has not confirmed, per terminal
          const pending = Array.from({ length: n }, () => new Map<string, number>())
          let total = 0
          payments.forEach((p, i) => {
            const o = p.o % n
            clocks[o]! += p.step
            const ts = clocks[o]!
            const r: ReservationFacts = {
              id: hex(`isoj-${i}`),
              origin: hex(`terminal-${o}`),
              nullifier: hex(`isoj-n-${i}`),
              cardKey: hex(`iso-card-${p.card}`, 16),
              amountMinor: p.amount,
              currency: 'EUR',
              method: 'chip',
              ts,
            }
            if (p.confirm) {
              for (const id of pending[o]!.keys()) states[o]!.confirmIsolated(id)
              pending[o]!.clear()
            }
            const v = decideOffline(
              POLICY,
              states[o]!,
              { ...r, id: undefined },
              { mode: 'isolated', now: ts },
            )
            if (!v.approve) return
            states[o]!.addCommit(r, 'isolated')
            pending[o]!.set(r.id, r.amountMinor)
            // per terminal, so the sum over the roster is within partitionExposureBound
            const mine = [...pending[o]!.values()].reduce((a, b) => a + b, 0)
            expect(mine).toBeLessThanOrEqual(POLICY.currencies.EUR!.isolatedDeviceCapMinor)
            if (!payments.some((q) => q.confirm)) total += r.amountMinor
          })
          // with no confirmation at all, the whole partition stays within the bound
          expect(total).toBeLessThanOrEqual(partitionExposureBound(POLICY, n, 'EUR'))
        },
      ),
      { numRuns: 300 },
    )
  })
})
