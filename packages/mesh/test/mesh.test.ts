import { join } from 'node:path'
import { createLedger } from '@nullmesh/ledger'
import { createMeshNode } from '@nullmesh/mesh'
import { createVenueBundle, loadTerminalKey } from '@nullmesh/policy'
import { type Commit, type SignedEvent, signEvent, toHex, verifyProof } from '@nullmesh/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { candidate, makeVenue, startNode, startVenue, type TestVenue, waitFor } from './helpers.js'

let venue: TestVenue | undefined
afterEach(async () => {
  await venue?.cleanup()
  venue = undefined
})

const ready = (v: TestVenue) =>
  waitFor(
    () =>
      v.nodes.every((n) => n.node.status().mode === 'quorum' && n.node.status().peers === v.nodes.length - 1),
    20_000,
    'quorum mode everywhere',
  )

async function committedEverywhere(v: TestVenue) {
  // union of all ledgers: nullifier → commit count, card → committed total
  const commits = new Map<string, SignedEvent<Commit>>()
  for (const n of v.nodes) {
    for await (const e of n.ledger.events())
      if (e.event.type === 'commit') commits.set(e.idHex, e as SignedEvent<Commit>)
  }
  const byNullifier = new Map<string, number>()
  const byCard = new Map<string, number>()
  for (const c of commits.values()) {
    const r = c.event.reservation.event
    byNullifier.set(toHex(r.nullifier), (byNullifier.get(toHex(r.nullifier)) ?? 0) + 1)
    byCard.set(toHex(r.cardKey), (byCard.get(toHex(r.cardKey)) ?? 0) + r.amountMinor)
  }
  return { commits, byNullifier, byCard }
}

describe('mesh on real libp2p sockets (127.0.0.1, static discovery)', () => {
  it('approves through the barrier with a verifiable proof and propagates the commit', async () => {
    venue = await startVenue(3)
    await ready(venue)
    const [a, b, c] = venue.nodes
    const cand = candidate(venue.bundle, '4111111111111111', 1200, { idem: 'p1' })
    const d = await a!.node.authorize(cand)
    expect(d.approved).toBe(true)
    expect(d.mode).toBe('quorum')
    expect(d.barrier.acks).toBeGreaterThanOrEqual(2)
    expect(d.proof.byteLength).toBeLessThanOrEqual(90)
    expect(verifyProof(d.proof, cand.nullifier, venue.bundle.roster[0]!.publicKey).ok).toBe(true)
    // the commit reaches the peers by gossip, and they hold the reservation durably
    await waitFor(
      async () =>
        (await b!.ledger.reservationState(d.reservationId!)) === 'committed' &&
        (await c!.ledger.reservationState(d.reservationId!)) === 'committed',
      10_000,
      'commit on peers',
    )
    // replaying the same credential use elsewhere is refused
    const replay = await c!.node.authorize(cand)
    expect(replay.approved).toBe(false)
    expect(replay.declineCode).toBe('nullifier_seen')
  })

  it('double taps of one card at every terminal at once: never over cap, never a duplicate nullifier', async () => {
    // card cap 3000: at most two payments of 1500 may ever commit for a card
    venue = await startVenue(5, {
      currencies: {
        EUR: {
          floorLimitMinor: 5000,
          cardCapMinor: 3000,
          deviceCapMinor: 1_000_000,
          venueCapMinor: 10_000_000,
          isolatedFloorLimitMinor: 1000,
          isolatedDeviceCapMinor: 5000,
        },
      },
      // contention, not latency, is under test: a budget that a loaded 2-core machine cannot miss
      tapBudgetMs: 10_000,
    })
    await ready(venue)
    const cards = ['5500000000000004', '4000000000000002', '340000000000009', '6011000000000004']
    const results = await Promise.all(
      cards.flatMap((card, ci) =>
        venue!.nodes.flatMap((n, ti) => [
          // same credential (same ATC) at every terminal: at most one may commit
          n.node.authorize(candidate(venue!.bundle, card, 1500, { atc: 7, idem: `dt-${ci}-${ti}` })),
          // different credential uses of the same card: the card cap must hold
          n.node.authorize(candidate(venue!.bundle, card, 1500, { atc: 100 + ti, idem: `cap-${ci}-${ti}` })),
        ]),
      ),
    )
    await new Promise((r) => setTimeout(r, 1000))
    const { byNullifier, byCard } = await committedEverywhere(venue)
    for (const count of byNullifier.values()) expect(count).toBe(1)
    for (const total of byCard.values()) expect(total).toBeLessThanOrEqual(3000)
    // contention costs retries, not availability: cards still get approvals
    expect(results.some((r) => r.approved)).toBe(true)
    expect(byCard.size).toBeGreaterThanOrEqual(1)
  })

  it('non-conflicting payments approve', async () => {
    venue = await startVenue(3)
    await ready(venue)
    const results = await Promise.all(
      venue.nodes.flatMap((n, ti) =>
        Array.from({ length: 10 }, (_, i) =>
          n.node.authorize(
            candidate(venue!.bundle, `41111111111${ti}${String(i).padStart(4, '0')}`, 500, {
              idem: `n-${ti}-${i}`,
            }),
          ),
        ),
      ),
    )
    expect(results.filter((r) => r.approved).length).toBe(30)
  })

  it('a node that joins after 1,000 events catches up', async () => {
    venue = await startVenue(3, { deviceMaxQueued: 1000 }, 2)
    const [a, b] = venue.nodes
    // two of three: a majority, so quorum mode
    await waitFor(() => a!.node.status().mode === 'quorum', 15_000, 'quorum of two')
    let approved = 0
    for (let i = 0; i < 500; i++) {
      const d = await (i % 2 ? a! : b!).node.authorize(
        candidate(venue.bundle, `4000${String(i).padStart(12, '0')}`, 100, { idem: `late-${i}` }),
      )
      if (d.approved) approved++
    }
    expect(approved).toBe(500)
    const total = (await a!.ledger.stats()).events
    expect(total).toBeGreaterThanOrEqual(1000)
    const late = await startNode(venue.bundle, venue.dir, 'T3', [
      ...a!.node.multiaddrs(),
      ...b!.node.multiaddrs(),
    ])
    venue.nodes.push(late)
    await waitFor(async () => (await late.ledger.stats()).events >= total, 20_000, 'late joiner caught up')
    await waitFor(() => late.node.status().mode === 'quorum', 10_000, 'late joiner in quorum')
    // its signatures were verified on a worker thread, ahead of the core (catchup-verifier.ts)
    expect(late.node.counters().catchupSignaturesOnWorkers).toBeGreaterThan(0)
    // both peers sent it the same events at once; each signature went to the workers once at most
    // [catch-up verified once] (twice over without the dedup in node.ts, preverify)
    let signatures = 0
    for await (const e of late.ledger.events())
      signatures += 1 + (e.event.type === 'commit' ? 1 + (e.event as { acks: unknown[] }).acks.length : 0) // a Commit carries its reservation
    expect(late.node.counters().catchupSignaturesOnWorkers).toBeLessThanOrEqual(signatures)
    expect(late.node.counters().catchupDuplicatesSkipped).toBeGreaterThan(0)
  })

  it('a node stopped and restarted with its data directory rejoins, and its unanswered reservation is released', async () => {
    venue = await startVenue(3)
    await ready(venue)
    const [a, b, c] = venue.nodes
    const before = await c!.node.authorize(candidate(venue.bundle, '4242424242424242', 700, { idem: 'r1' }))
    expect(before.approved).toBe(true)
    const cAddrs = c!.node.multiaddrs()
    await c!.node.stop()
    await c!.ledger.close()
    await waitFor(() => a!.node.status().peers === 1, 10_000, 'cut noticed')
    // approvals continue with 2 of 3
    expect(
      (await a!.node.authorize(candidate(venue.bundle, '4242424242424243', 700, { idem: 'r2' }))).approved,
    ).toBe(true)
    const port = Number(cAddrs[0]!.split('/')[4])
    const restarted = await startNode(
      venue.bundle,
      venue.dir,
      'T3',
      [...a!.node.multiaddrs(), ...b!.node.multiaddrs()],
      { port },
    )
    venue.nodes[2] = restarted
    await ready(venue)
    // it caught up with what it missed
    await waitFor(
      async () => (await restarted.ledger.stats()).events >= (await a!.ledger.stats()).events,
      10_000,
      'restarted node caught up',
    )
  })

  it('a node with the wrong venue key cannot connect', async () => {
    venue = await startVenue(2)
    await ready(venue)
    const other = await makeVenue(2, {}, 'test-venue')
    const ledger = createLedger({ path: join(other.dir, 'x') })
    await ledger.open()
    const intruder = createMeshNode({
      bundle: other.bundle,
      key: await loadTerminalKey(other.bundle.dir, 'T1'),
      ledger,
      discovery: { peers: venue.nodes.flatMap((n) => n.node.multiaddrs()) },
    })
    try {
      await intruder.start()
      await new Promise((r) => setTimeout(r, 3000))
      expect(intruder.status().connections).toBe(0)
      expect(venue.nodes.every((n) => n.node.status().connections === 1)).toBe(true)
    } finally {
      await intruder.stop()
      await ledger.close()
      const { rm } = await import('node:fs/promises')
      await rm(other.dir, { recursive: true, force: true })
    }
  })

  it('events from a non-enrolled origin and forged signatures are rejected by the network', async () => {
    venue = await startVenue(3)
    await ready(venue)
    const [a, b] = venue.nodes
    // a terminal of another venue (same venue id, other operator) cannot have its events accepted
    const stranger = await createVenueBundle({
      outDir: join(venue.dir, 'stranger'),
      terminals: 1,
      venueId: 'test-venue',
    })
    const strangerKey = await loadTerminalKey(stranger.dir, 'T1')
    const cand = candidate(venue.bundle, '4111111111119999', 100, { idem: 'x' })
    const alien = signEvent(strangerKey, {
      type: 'reservation',
      venue: 'test-venue',
      origin: strangerKey.publicKey,
      seq: 1,
      ts: Date.now(),
      ...cand,
      policyVersion: 1,
    })
    // forged: T1's identity, signed with the stranger's key
    const t1 = await loadTerminalKey(venue.bundle.dir, 'T1')
    const forged = signEvent(strangerKey, {
      type: 'reservation',
      venue: 'test-venue',
      origin: t1.publicKey,
      seq: 999,
      ts: Date.now(),
      ...cand,
      policyVersion: 1,
    })
    const d = await a!.node.authorize(candidate(venue.bundle, '4111111111118888', 100, { idem: 'y' }))
    expect(d.approved).toBe(true)
    // inject through the gossip validator of a real node (the path a relayed message takes)
    const { validateEventBytes } = await import('@nullmesh/mesh')
    void validateEventBytes
    const statusBefore = (await b!.ledger.stats()).events
    const inject = (
      b!.node as unknown as {
        libp2p: {
          services: {
            pubsub: { topicValidators: Map<string, (p: unknown, m: unknown) => Promise<string> | string> }
          }
        }
      }
    ).libp2p.services.pubsub.topicValidators
    const validator = [...inject.values()][0]!
    expect(await validator(undefined, { type: 'unsigned', topic: '', data: alien.bytes })).toBe('reject')
    expect(await validator(undefined, { type: 'unsigned', topic: '', data: forged.bytes })).toBe('reject')
    expect((await b!.ledger.stats()).events).toBe(statusBefore)
    expect(await b!.ledger.getEvent(alien.idHex)).toBeUndefined()
  })

  it('[policy] a compromised terminal’s isolated 99,999.99 commit is rejected and the venue keeps approving', async () => {
    // T3 is enrolled but in hostile hands (not running a node): it signs what it likes
    venue = await startVenue(3, {}, 2)
    await waitFor(
      () => venue!.nodes.every((n) => n.node.status().mode === 'quorum'),
      20_000,
      'quorum with 2 of 3',
    )
    const [a] = venue.nodes
    const t3 = await loadTerminalKey(venue.bundle.dir, 'T3')
    const reservation = signEvent(t3, {
      type: 'reservation',
      venue: 'test-venue',
      origin: t3.publicKey,
      seq: 1,
      ts: Date.now(),
      ...candidate(venue.bundle, '4111111111117777', 9_999_999, { idem: 'big' }),
      policyVersion: venue.bundle.policy.version,
    })
    const commit = signEvent(t3, {
      type: 'commit',
      venue: 'test-venue',
      origin: t3.publicKey,
      seq: 2,
      ts: Date.now(),
      reservation,
      mode: 'isolated',
      acks: [],
    })
    const validators = (
      a!.node as unknown as {
        libp2p: {
          services: {
            pubsub: { topicValidators: Map<string, (p: unknown, m: unknown) => Promise<string> | string> }
          }
        }
      }
    ).libp2p.services.pubsub.topicValidators
    const validator = [...validators.values()][0]!
    expect(await validator(undefined, { type: 'unsigned', topic: '', data: commit.bytes })).toBe('reject')
    expect(await a!.ledger.getEvent(commit.idHex)).toBeUndefined()
    // the venue's offline exposure was not used up: ordinary payments still approve
    for (let i = 0; i < 3; i++) {
      const d = await a!.node.authorize(
        candidate(venue.bundle, `41111111111160${i}0`, 1_000, { idem: `ok-${i}` }),
      )
      expect(d.approved).toBe(true)
    }
  })
})
