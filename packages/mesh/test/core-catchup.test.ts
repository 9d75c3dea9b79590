import { fromHex, type Release, type Reservation, type SignedEvent, signEvent } from '@nullmesh/protocol'
import { describe, expect, it } from 'vitest'
import { catchupSummary, type Effect, eventsAfter, type MeshCore } from '../src/core/index.js'
import { coreFixture } from './core-fixture.js'

const T0 = 1_700_000_000_000

/**
 * A catch-up request states the asker's contiguous marks and the seqs it holds past them; the
 * answer carries what it misses, not everything after its first gap (docs/protocol.md, "Catch-up
 * (anti-entropy)"). Before the held ranges, a terminal that missed one push was sent the rest of
 * that origin's log again, and refused it event by event (the simulator: 11.1 catch-up events per
 * payment, 6.6 of them already held).
 */
describe('core: a catch-up answers what the asker misses [catch-up held ranges]', () => {
  /** T5 (keys[4]) signs 10 events: reservations at odd seqs, each released at the next seq */
  function history() {
    const f = coreFixture({ size: 5, me: 1, wall: T0 })
    const k = f.keys[4]!
    const events: SignedEvent[] = []
    for (let seq = 1; seq <= 10; seq += 2) {
      const r = signEvent(k, {
        type: 'reservation',
        venue: 'v',
        origin: k.publicKey,
        seq,
        ts: T0 - 1_000,
        nullifier: new Uint8Array(32).fill(seq),
        cardKey: new Uint8Array(16).fill(seq),
        amountMinor: 500,
        currency: 'EUR',
        method: 'contactless',
        policyVersion: 1,
      }) as SignedEvent<Reservation>
      const rel = signEvent(k, {
        type: 'release',
        venue: 'v',
        origin: k.publicKey,
        seq: seq + 1,
        ts: T0 - 900,
        reservationId: fromHex(r.idHex),
        reason: 'declined',
      }) as SignedEvent<Release>
      events.push(r, rel)
    }
    return { ...f, events }
  }

  /** what a core wrote to its store */
  const stored = (effects: Effect[]): SignedEvent[] =>
    effects.flatMap((e) => (e.type === 'write' ? e.records.map((r) => r.event) : []))
  const seqs = (evs: SignedEvent[]): number[] => evs.map((e) => e.event.seq)

  /** one catch-up of `asker` from a peer holding `served`: the answer, and how many were new */
  function catchUp(asker: MeshCore, askerEffects: Effect[], peer: string, served: SignedEvent[]) {
    const have = catchupSummary(stored(askerEffects))
    const answer = eventsAfter(served, have.marks, Number.POSITIVE_INFINITY, have.held)
    asker.catchupStarted(peer, false)
    const fresh = asker.catchupBatch(
      peer,
      answer.map((e) => e.bytes),
    )
    asker.catchupEnded(peer, true, false)
    return { have, answer, fresh }
  }

  it('sends only the missed events, a reservation before its release, none the asker holds', () => {
    const { core, effects, hex, events } = history()
    // pushes reached us except seqs 3, 4 and 7: the release at 8 is ignored (its reservation is
    // unknown here), so 3, 4, 7 and 8 are missing; 5–6 and 9–10 are held past the gap
    for (const e of events) if (![3, 4, 7].includes(e.event.seq)) core.receive(e.bytes)
    expect(seqs(stored(effects))).toEqual([1, 2, 5, 6, 9, 10])
    const { have, answer, fresh } = catchUp(core, effects, hex[2]!, events)
    expect(have).toEqual({ marks: { [hex[4]!]: 2 }, held: { [hex[4]!]: [5, 6, 9, 10] } })
    // before the held ranges: 3–10, of which 5, 6, 9 and 10 were refused as already known
    expect(seqs(answer)).toEqual([3, 4, 7, 8])
    expect(fresh).toBe(answer.length)
    expect(seqs(stored(effects)).sort((a, b) => a - b)).toEqual(seqs(events))
    // and nothing is left to send
    const again = catchupSummary(stored(effects))
    expect(again).toEqual({ marks: { [hex[4]!]: 10 }, held: {} })
    expect(eventsAfter(events, again.marks, Number.POSITIVE_INFINITY, again.held)).toEqual([])
  })

  it('a lost disk states nothing held: it is sent everything, in order, and learns all of it', () => {
    const { core, effects, hex, events } = history()
    const { have, answer, fresh } = catchUp(core, effects, hex[2]!, events)
    expect(have).toEqual({ marks: {}, held: {} })
    expect(seqs(answer)).toEqual(seqs(events))
    expect(fresh).toBe(events.length)
  })

  it('a summary with more ranges than a request may carry states the lowest (the rest is resent)', () => {
    const { core, effects, hex, events } = history()
    for (const seq of [1, 2, 5, 9]) core.receive(events[seq - 1]!.bytes)
    const all = catchupSummary(stored(effects))
    expect(all.held).toEqual({ [hex[4]!]: [5, 5, 9, 9] })
    const capped = catchupSummary(stored(effects), 1)
    expect(capped).toEqual({ marks: { [hex[4]!]: 2 }, held: { [hex[4]!]: [5, 5] } })
    expect(seqs(eventsAfter(events, capped.marks, Number.POSITIVE_INFINITY, capped.held))).toEqual([
      3, 4, 6, 7, 8, 9, 10,
    ])
  })
})
