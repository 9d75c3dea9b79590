import { decodeEvent, type Reservation, type SignedEvent, signAck, toHex } from '@nullmesh/protocol'
import { describe, expect, it } from 'vitest'
import type { Effect } from '../src/core/index.js'
import { coreFixture } from './core-fixture.js'

type Send = Extract<Effect, { type: 'send' }>
type Write = Extract<Effect, { type: 'write' }>

const candidate = (n: number) => ({
  nullifier: new Uint8Array(32).fill(n),
  cardKey: new Uint8Array(16).fill(n + 1),
  amountMinor: 500,
  currency: 'EUR',
  method: 'contactless' as const,
})

/**
 * A barrier round that only ran out of time is retried with the same reservation (docs/protocol.md,
 * "Retries keep the reservation"): before, the origin released it and made a new one, which waited
 * for its own fsync and was refused `nullifier_seen` by every peer still holding the first.
 */
describe('core: retries keep the reservation [retry keeps reservation]', () => {
  function setup() {
    const f = coreFixture({ size: 3, me: 0 })
    for (const peer of [f.hex[1]!, f.hex[2]!]) f.learnFrom(peer)
    f.effects.length = 0
    f.core.authorize(2, candidate(9))
    const write = f.effects.find((e): e is Write => e.type === 'write' && e.own)!
    f.core.durable(write.id)
    const reservation = write.records[0]!.event
    const reqs = () => f.effects.filter((e): e is Send => e.type === 'send' && e.msg.t === 'req')
    const timers = () => f.effects.filter((e) => e.type === 'timer') as Extract<Effect, { type: 'timer' }>[]
    const ownWrites = () =>
      f.effects.filter((e): e is Write => e.type === 'write' && e.own).map((e) => e.records[0]!.event)
    /** a peer answers a request of ours with its signed ack (ok) or refusal */
    const answer = (r: Send, ok: boolean, reason: string): void => {
      const peer = f.keys[f.hex.indexOf(r.to)]!
      const ack = signAck(peer, {
        venue: 'v',
        acker: peer.publicKey,
        reservationId: reservation.id,
        ok,
        reason,
        ts: f.wall,
      })
      f.core.message(r.to, { t: 'ans', rid: (r.msg as { rid: number }).rid, ack: ack.bytes })
    }
    return { ...f, reservation, reqs, timers, ownWrites, answer }
  }

  it('after a timeout the same reservation is asked again, and its acks commit it: no Release, no second reservation', () => {
    const { core, effects, reservation, reqs, timers, ownWrites, answer } = setup()
    expect(reqs()).toHaveLength(2)
    // the round's timer fires (no peer answered in time), then the back-off's
    for (let i = 0; i < 2; i++) {
      const t = timers()
      expect(t.length).toBeGreaterThan(0)
      effects.length = 0
      for (const x of t) core.timer(x.id)
    }
    // round 2: the very same reservation, and nothing written in between
    const again = reqs()
    expect(again).toHaveLength(2)
    for (const r of again) expect(r.msg.t === 'req' && r.msg.bytes).toEqual(reservation.bytes)
    expect(ownWrites()).toEqual([])
    // the peers answer (the acks they gave for the first round, by then durable)
    for (const r of again) answer(r, true, '')
    const written = ownWrites()
    expect(written.map((e) => e.event.type)).toEqual(['commit'])
    const commit = decodeEvent(written[0]!.bytes)
    expect(commit.ok && commit.value.event.type === 'commit' && commit.value.event.reservation.idHex).toBe(
      reservation.idHex,
    )
  })

  it('a reservation still kept when the decision declines is released, once', () => {
    const { core, effects, reservation, timers, ownWrites } = setup()
    // every round times out until the retries (2 for timeouts) and the budget are used
    const released: string[] = []
    for (let i = 0; i < 20; i++) {
      const t = timers()
      if (t.length === 0) break
      for (const w of ownWrites()) {
        if (w.event.type === 'release') released.push(toHex(w.event.reservationId))
        if (w.event.type === 'reservation' && w.idHex !== reservation.idHex)
          throw new Error('a second reservation was made')
      }
      effects.length = 0
      for (const x of t) core.timer(x.id)
    }
    for (const w of ownWrites()) if (w.event.type === 'release') released.push(toHex(w.event.reservationId))
    expect(released).toEqual([reservation.idHex])
    const done = effects.find((e) => e.type === 'done') as Extract<Effect, { type: 'done' }>
    expect(done.result.ok).toBe(true)
    expect((done.result as { value: { approved: boolean } }).value.approved).toBe(false)
  })

  it('refused for a conflict, the reservation is released before the retry (two contenders do not block each other)', () => {
    const { effects, reqs, ownWrites, answer } = setup()
    const first = reqs()
    effects.length = 0
    for (const r of first) answer(r, false, 'conflict')
    const w = ownWrites()
    expect(w.map((e) => e.event.type)).toEqual(['release'])
  })
})

describe('core: no barrier round without time for it [no late round]', () => {
  it('a decision under an existing reservation (an online attempt falling back) that starts past its deadline declines without a round', () => {
    const f = coreFixture({ size: 3, me: 0 })
    for (const peer of [f.hex[1]!, f.hex[2]!]) f.learnFrom(peer)
    f.effects.length = 0
    // a reservation of ours, as the online path would hold one
    f.core.authorize(2, candidate(7))
    const write = f.effects.find((e): e is Write => e.type === 'write' && e.own)!
    const reservation = write.records[0]!.event as SignedEvent<Reservation>
    f.effects.length = 0
    // its fallback arrives after the deadline (the clock reads 0)
    f.core.authorize(3, candidate(7), { reservation, deadline: -1 })
    const sent = f.effects.filter((e) => e.type === 'send' && e.msg.t === 'req')
    expect(sent).toEqual([])
    const done = f.effects.find((e) => e.type === 'done' && e.op === 3) as Extract<Effect, { type: 'done' }>
    expect(done.result.ok).toBe(true)
    const value = (done.result as { value: { approved: boolean; declineCode: string } }).value
    expect(value.approved).toBe(false)
    expect(value.declineCode).toBe('barrier_timeout')
  })

  it('an online reservation whose own fsync stalls past the deadline less the reserve is released and refused, never sent late', () => {
    const f = coreFixture({ size: 3, me: 0 })
    for (const peer of [f.hex[1]!, f.hex[2]!]) f.learnFrom(peer)
    f.effects.length = 0
    f.core.reserveOnline(4, candidate(5), { deadline: 500 })
    const write = f.effects.find((e): e is Write => e.type === 'write' && e.own)!
    const reservation = write.records[0]!.event
    // the fsync never completes; the deadline's timer (500 less the finishing reserve) fires
    const timer = f.effects.find((e) => e.type === 'timer') as Extract<Effect, { type: 'timer' }>
    expect(timer.afterMs).toBeLessThan(500)
    f.effects.length = 0
    f.core.timer(timer.id)
    const done = f.effects.find((e) => e.type === 'done' && e.op === 4) as Extract<Effect, { type: 'done' }>
    expect(done.result).toMatchObject({ ok: false, code: 'ERR_REFUSED' })
    expect(f.effects.some((e) => e.type === 'send' && e.msg.t === 'req')).toBe(false)
    const release = f.effects.find((e): e is Write => e.type === 'write' && e.own)!.records[0]!.event
    expect(release.event.type === 'release' && toHex(release.event.reservationId)).toBe(reservation.idHex)
  })
})
