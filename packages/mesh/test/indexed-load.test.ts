import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLedger, type Ledger } from '@nullmesh/ledger'
import { defaultPolicy } from '@nullmesh/policy'
import {
  type CommitMode,
  type KeyPair,
  keyPairFromSeed,
  type Reservation,
  type SignedAck,
  type SignedEvent,
  signAck,
  signEvent,
  toHex,
} from '@nullmesh/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MeshCore } from '../src/core/index.js'
import { loadFromIndexes } from '../src/load-state.js'

const VENUE = 'v'
const T0 = 1_700_000_000_000

class Signer {
  seq = 0
  readonly hex: string
  constructor(readonly key: KeyPair) {
    this.hex = toHex(key.publicKey)
  }
  reservation(i: number): SignedEvent<Reservation> {
    return signEvent(this.key, {
      type: 'reservation',
      venue: VENUE,
      origin: this.key.publicKey,
      seq: ++this.seq,
      ts: T0 + i,
      nullifier: new Uint8Array(32).fill(i + 1),
      cardKey: new Uint8Array(16).fill((i % 3) + 1),
      amountMinor: 100 + i,
      currency: 'EUR',
      method: 'contactless',
      policyVersion: 1,
    }) as SignedEvent<Reservation>
  }
  commit(r: SignedEvent<Reservation>, mode: CommitMode = 'quorum'): SignedEvent {
    return signEvent(this.key, {
      type: 'commit',
      venue: VENUE,
      origin: this.key.publicKey,
      seq: ++this.seq,
      ts: r.event.ts + 1,
      reservation: r,
      mode,
      acks: [],
    })
  }
  release(r: SignedEvent<Reservation>): SignedEvent {
    return signEvent(this.key, {
      type: 'release',
      venue: VENUE,
      origin: this.key.publicKey,
      seq: ++this.seq,
      ts: r.event.ts + 1,
      reservationId: r.id,
      reason: 'timeout',
    })
  }
  transfer(to: Signer, amountMinor: number): SignedEvent {
    return signEvent(this.key, {
      type: 'transfer',
      venue: VENUE,
      origin: this.key.publicKey,
      seq: ++this.seq,
      ts: T0 + this.seq,
      to: to.key.publicKey,
      amountMinor,
      currency: 'EUR',
    })
  }
  ack(r: SignedEvent<Reservation>): SignedAck {
    return signAck(this.key, {
      venue: VENUE,
      acker: this.key.publicKey,
      reservationId: r.id,
      ok: true,
      reason: '',
      ts: r.event.ts,
    })
  }
}

function newCore(key: KeyPair, members: string[]): MeshCore {
  return new MeshCore({
    venueId: VENUE,
    policy: defaultPolicy(VENUE),
    key,
    roster: { size: 3, members, isEnrolled: () => true },
    clock: { wall: () => T0, mono: () => 0 },
    rng: () => 0.5,
    effects: () => {},
  })
}

/** The replay start-up this replaced: every event decoded and applied, with isHeld/ackGiven reads. */
async function loadByReplay(core: MeshCore, ledger: Ledger, me: string): Promise<void> {
  const events = []
  for await (const signed of ledger.events()) {
    let held = false
    let ackGiven: SignedAck | undefined
    if (signed.event.type === 'reservation') {
      held = toHex(signed.event.origin) === me || (await ledger.isHeld(signed.idHex))
      ackGiven = held ? await ledger.ackGiven(signed.idHex) : undefined
    }
    events.push({ signed, held, ackGiven })
  }
  const pruned = []
  for await (const r of ledger.prunedReservations()) pruned.push(r)
  core.load({
    events,
    pruned,
    confirmedMarks: await ledger.confirmedMarks(),
    nextSeq: await ledger.nextSeq(me),
  })
}

function viewOf(core: MeshCore, members: string[]) {
  const v = core.view
  const sorted = <T>(xs: Iterable<T>) => [...xs].sort()
  return {
    known: sorted(v.known),
    idsAt: sorted([...v.idsAt.entries()].map(([k, id]) => `${k}=${id}`)),
    reservationOrigin: sorted([...v.reservationOrigin].map(([id, o]) => `${id}=${o}`)),
    acksGiven: sorted([...v.acksGiven].map(([id, a]) => `${id}=${toHex(a.bytes)}`)),
    inflight: sorted(v.inflight),
    settled: sorted(v.settled),
    ownIsolated: [...v.ownIsolated].sort((a, b) => a.seq - b.seq),
    nextSeq: v.nextSeq,
    seqKnown: v.seqKnown,
    exposure: v.exposure.snapshot(),
    shares: members.map((m) => v.escrow?.share(m, 'EUR')),
  }
}

describe('start-up from the ledger indexes [indexed start]', () => {
  let dir: string
  let ledger: Ledger
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nullmesh-indexed-'))
    ledger = createLedger({ path: join(dir, 'ledger') })
    await ledger.open()
  })
  afterEach(async () => {
    await ledger.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('builds the same view as replaying every event, pruned bodies and own isolated commits included', async () => {
    const meKey = keyPairFromSeed(new Uint8Array(32).fill(1))
    const me = new Signer(meKey)
    const b = new Signer(keyPairFromSeed(new Uint8Array(32).fill(2)))
    const c = new Signer(keyPairFromSeed(new Uint8Array(32).fill(3)))
    let i = 0
    // our own: committed (quorum, isolated), released, pending
    for (const mode of ['quorum', 'isolated', 'isolated', 'quorum'] as CommitMode[]) {
      const r = me.reservation(i++)
      await ledger.recordEvent(r, { held: true })
      await ledger.recordEvent(me.commit(r, mode), { held: true })
    }
    const released = me.reservation(i++)
    await ledger.recordEvent(released, { held: true })
    await ledger.recordEvent(me.release(released), { held: true })
    await ledger.recordEvent(me.reservation(i++), { held: true })
    // peers': acked then committed, acked then released, acked and pending, seen but not acked,
    // a Release that arrived before its Reservation, a Commit whose Reservation we never got alone
    for (const peer of [b, c]) {
      const committed = peer.reservation(i++)
      await ledger.recordEvent(committed, { held: true, ackGiven: me.ack(committed) })
      await ledger.recordEvent(peer.commit(committed), { sync: false })
      const rel = peer.reservation(i++)
      await ledger.recordEvent(rel, { held: true, ackGiven: me.ack(rel) })
      await ledger.recordEvent(peer.release(rel), { sync: false })
      const pending = peer.reservation(i++)
      await ledger.recordEvent(pending, { held: true, ackGiven: me.ack(pending) })
      await ledger.recordEvent(peer.reservation(i++), { sync: false })
      // held without an ack of ours: relearned after a lost disk (catchup.ts, heldOnRelearn)
      await ledger.recordEvent(peer.reservation(i++), { held: true, sync: false })
      const early = peer.reservation(i++)
      await ledger.recordEvent(peer.release(early), { sync: false })
      await ledger.recordEvent(peer.commit(peer.reservation(i++), 'isolated'), { sync: false })
    }
    // escrow: we gave share to b (early in our log, so its body is in the pruned range), c gave us some
    const gift = me.transfer(b, 5_000)
    await ledger.recordEvent(gift, { held: true })
    await ledger.recordEvent(c.transfer(me, 1_234), { sync: false })
    // central confirmed b's first events and our first four: their bodies are pruned
    await ledger.markConfirmed({ [b.hex]: 4, [me.hex]: 4 })
    expect((await ledger.prune()).pruned).toBeGreaterThan(0)

    const members = [me.hex, b.hex, c.hex]
    const replay = newCore(meKey, members)
    await loadByReplay(replay, ledger, me.hex)
    const fromIndexes = newCore(meKey, members)
    await loadFromIndexes(fromIndexes, ledger)
    const expected = viewOf(replay, members)
    // [escrow after restart] our debit and c's credit are applied: a forgotten debit would let us
    // approve beyond our share, and the shares' sum pass the venue cap
    const initial = fromIndexes.view.escrow!.initial(me.hex, 'EUR')
    expect(fromIndexes.view.escrow!.share(me.hex, 'EUR')).toBe(initial - 5_000 + 1_234)
    expect(expected.ownIsolated.length).toBeGreaterThan(0)
    expect(expected.acksGiven.length).toBeGreaterThan(0)
    expect(expected.inflight.length).toBeGreaterThan(0)
    expect(viewOf(fromIndexes, members)).toEqual(expected)
  })
})
