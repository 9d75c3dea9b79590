import { type Commit, type KeyPair, type Reservation, type SignedEvent, signEvent } from '@nullmesh/protocol'
import { describe, expect, it } from 'vitest'
import type { MutationName } from '../src/core/index.js'
import { coreFixture } from './core-fixture.js'

const T0 = 1_700_000_000_000

/** a signed reservation of `key` at `seq` (card and nullifier filled with `fill`) */
function signedReservation(key: KeyPair, seq: number, ts: number, fill: number): SignedEvent<Reservation> {
  return signEvent(key, {
    type: 'reservation',
    venue: 'v',
    origin: key.publicKey,
    seq,
    ts,
    nullifier: new Uint8Array(32).fill(fill),
    cardKey: new Uint8Array(16).fill(fill),
    amountMinor: 500,
    currency: 'EUR',
    method: 'contactless',
    policyVersion: 1,
  }) as SignedEvent<Reservation>
}

/**
 * A terminal that lost its disk learns its own history from a quorum of peers, and also takes back
 * the own events central kept. Peers alone miss an isolated approval that was synced to central
 * and never reached a peer: the simulator (seed 14 at 40,000 steps) saw a wiped terminal sign
 * that approval's seqs again, and central refuses such events as ERR_SEQ_CONFLICT, so whatever it
 * approved on them never settles (docs/protocol.md, "Lost disks").
 */
describe('core: own events from central before signing after a lost disk [central refill]', () => {
  function fixture(opts: { mutations?: ReadonlySet<MutationName>; holdMark?: boolean } = {}) {
    const f = coreFixture({ size: 5, me: 0, wall: T0, centralRefill: true, ...opts })
    const k = f.keys[0]!
    /** an isolated approval at seqs 41 and 42 that only central holds */
    const reservation = signedReservation(k, 41, T0 - 60_000, 7)
    const commit = signEvent(k, {
      type: 'commit',
      venue: 'v',
      origin: k.publicKey,
      seq: 42,
      ts: T0 - 60_000,
      reservation,
      mode: 'isolated',
      acks: [],
    }) as SignedEvent<Commit>
    const learnQuorum = () => {
      for (const peer of f.hex.slice(1, 4)) f.learnFrom(peer)
    }
    return { ...f, reservation, commit, learnQuorum }
  }

  it('waits for central after a quorum of peers taught it, then signs past what central kept', () => {
    const f = fixture()
    expect(f.refills()).toBe(1)
    f.learnQuorum()
    // three peers are enough for a certified event, not for one only central holds
    expect(f.core.view.seqKnown).toBe(false)
    expect(f.core.refillBatch([f.reservation.bytes, f.commit.bytes])).toBe(2)
    // what came back is written to the store (without fsync: the relearning mark covers it)
    const written = f.effects.flatMap((e) => (e.type === 'write' ? e.records.map((r) => r.event.idHex) : []))
    expect(written).toEqual([f.reservation.idHex, f.commit.idHex])
    f.core.refillEnded(true)
    f.marks()
    f.marks()
    expect(f.core.view.seqKnown).toBe(true)
    expect(f.core.view.nextSeq).toBe(43)
    // the approval counts in the view as it did before the disk was lost
    expect(f.core.view.known.has(f.commit.idHex)).toBe(true)
  })

  it('peers that teach it while its relearning mark is being written still wait for central [refill before the mark]', () => {
    // simulator seed 3394: a quorum of catch-ups ended during the mark's fsync; the refill was
    // asked only after it, too late to hold learning back, and the terminal signed seq 9 again
    const f = fixture({ holdMark: true })
    for (const peer of f.hex.slice(1, 4)) {
      f.core.peerConnected(peer)
      f.core.peerVerified(peer)
      f.core.catchupStarted(peer, true)
      f.core.catchupEnded(peer, true, true)
    }
    f.marks()
    f.marks()
    expect(f.refills()).toBe(1)
    expect(f.core.view.seqKnown).toBe(false)
    expect(f.core.refillBatch([f.reservation.bytes, f.commit.bytes])).toBe(2)
    f.core.refillEnded(true)
    f.marks()
    f.marks()
    expect(f.core.view.seqKnown).toBe(true)
    expect(f.core.view.nextSeq).toBe(43)
  })

  it('central answering first still waits for the peers', () => {
    const f = fixture()
    f.core.refillBatch([f.reservation.bytes])
    f.core.refillEnded(true)
    f.marks()
    expect(f.core.view.seqKnown).toBe(false)
    f.learnQuorum()
    expect(f.core.view.seqKnown).toBe(true)
    expect(f.core.view.nextSeq).toBe(42)
  })

  it('a central that cannot be asked does not hold learning back (the residual stated in the docs)', () => {
    const f = fixture()
    f.learnQuorum()
    f.core.refillEnded(false)
    f.marks()
    f.marks()
    expect(f.core.view.seqKnown).toBe(true)
    expect(f.core.view.nextSeq).toBe(1)
  })

  it('only our own events are taken; a page after learning is ignored', () => {
    const f = fixture()
    const theirs = signedReservation(f.keys[2]!, 99, T0 - 1_000, 9)
    expect(f.core.refillBatch([theirs.bytes, new Uint8Array([1, 2, 3])])).toBe(0)
    f.core.refillEnded(true)
    f.learnQuorum()
    expect(f.core.view.seqKnown).toBe(true)
    expect(f.core.refillBatch([f.reservation.bytes])).toBe(0)
    expect(f.core.view.nextSeq).toBe(1)
  })

  it('own events dated in our clock’s future (the clock went back since) still count', () => {
    const f = fixture()
    // ten minutes past our clock now, far beyond the skew bound
    const ahead = signedReservation(f.keys[0]!, 77, T0 + 10 * 60_000, 3)
    expect(f.core.refillBatch([ahead.bytes])).toBe(1)
    f.core.refillEnded(true)
    f.learnQuorum()
    expect(f.core.view.seqKnown).toBe(true)
    expect(f.core.view.nextSeq).toBe(78)
    // a peer's event that far ahead is still refused (a catch-up validates alike)
    const theirs = signedReservation(f.keys[1]!, 5, T0 + 10 * 60_000, 4)
    expect(f.core.receive(theirs.bytes)).toBeDefined()
  })

  it('mutant no-central-refill: learns from the peers alone and would sign seq 1 again', () => {
    const f = fixture({ mutations: new Set<MutationName>(['no-central-refill']) })
    expect(f.refills()).toBe(0)
    f.learnQuorum()
    expect(f.core.view.seqKnown).toBe(true)
    expect(f.core.view.nextSeq).toBe(1)
  })

  it('an intact store asks central for nothing', () => {
    const f = coreFixture({ size: 5, me: 0, wall: T0, centralRefill: true, nextSeq: 12 })
    expect(f.core.view.seqKnown).toBe(true)
    expect(f.refills()).toBe(0)
  })
})
