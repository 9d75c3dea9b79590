import { join } from 'node:path'
import { createLedger } from '@nullmesh/ledger'
import { type SignedEvent, toHex } from '@nullmesh/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { candidate, startNode, startVenue, type TestVenue, waitFor } from './helpers.js'

let venue: TestVenue | undefined
afterEach(async () => {
  await venue?.cleanup()
  venue = undefined
})

/**
 * Real libp2p sockets and LevelDB: a terminal that missed a few events states, in its catch-up
 * request, the seqs it holds past each gap, and its peers send it those few events, not every event
 * after its first gap (docs/protocol.md, "Catch-up (anti-entropy)").
 */
describe('catch-up over libp2p sends what the asker misses [catch-up held ranges]', () => {
  it('a terminal missing one event per origin is sent those, not the rest of each log', async () => {
    venue = await startVenue(3, {}, 2)
    const [a, b] = venue.nodes as [TestVenue['nodes'][number], TestVenue['nodes'][number]]
    await waitFor(() => a.node.status().mode === 'quorum', 15_000, 'quorum of two')
    for (let i = 0; i < 40; i++) {
      const d = await (i % 2 ? a : b).node.authorize(
        candidate(venue.bundle, `4100${String(i).padStart(12, '0')}`, 100, { idem: `held-${i}` }),
      )
      expect(d.approved).toBe(true)
    }
    const all = async (n: typeof a): Promise<SignedEvent[]> => {
      const out: SignedEvent[] = []
      for await (const e of n.ledger.events()) out.push(e)
      return out
    }
    await waitFor(
      async () => (await a.ledger.stats()).events === (await b.ledger.stats()).events,
      10_000,
      'a and b hold the same events',
    )
    const events = await all(a)
    // T3 comes back holding all of it but seq 2 of each origin (a push it missed)
    const missing = events.filter((e) => e.event.seq === 2)
    const origins = new Set(events.map((e) => toHex(e.event.origin)))
    expect(missing.length).toBe(origins.size)
    const dataDir = join(venue.dir, 'data-T3')
    const prefill = createLedger({ path: dataDir })
    await prefill.open()
    await prefill.recordEvents(events.filter((e) => e.event.seq !== 2))
    await prefill.close()
    const servedBefore = a.node.counters().catchupEventsServed + b.node.counters().catchupEventsServed
    const late = await startNode(venue.bundle, venue.dir, 'T3', [
      ...a.node.multiaddrs(),
      ...b.node.multiaddrs(),
    ])
    venue.nodes.push(late)
    await waitFor(
      async () => (await late.ledger.stats()).events >= events.length,
      20_000,
      'T3 holds every event',
    )
    await waitFor(() => late.node.status().mode === 'quorum', 10_000, 'T3 in quorum')
    for (const e of missing) expect((await late.ledger.getEvent(e.idHex))?.idHex).toBe(e.idHex)
    // both peers answered its initial catch-up (and anti-entropy asks again): each answer carries
    // the missed events only. Before the held ranges each carried every event past seq 1.
    const served =
      a.node.counters().catchupEventsServed + b.node.counters().catchupEventsServed - servedBefore
    expect(served).toBeGreaterThanOrEqual(missing.length)
    expect(served).toBeLessThanOrEqual(2 * missing.length)
    expect(events.length).toBeGreaterThan(4 * missing.length)
  }, 60_000)
})
