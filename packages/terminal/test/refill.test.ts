import { rm } from 'node:fs/promises'
import type { CentralService } from '@nullmesh/central'
import { createTerminal } from '@nullmesh/terminal'
import { afterEach, describe, expect, test } from 'vitest'
import { FAST, freePort, payment, startCentral, startVenue, type TestVenue, waitFor } from './helpers.js'

let venue: TestVenue | undefined
let central: CentralService | undefined
afterEach(async () => {
  await venue?.cleanup()
  await central?.stop()
  venue = undefined
  central = undefined
})

/**
 * A terminal that lost its disk takes its own events back from central before it signs again
 * (docs/protocol.md, "Lost disks"). Its peers cannot give back an isolated approval that reached
 * central and no peer: without the refill the wiped terminal signs that approval's seqs again,
 * central refuses the new events (ERR_SEQ_CONFLICT) and what it approves on them never settles.
 * Real terminals (libp2p, LevelDB, the HTTP API), a real central over HTTP.
 */
describe('lost disk: own events from central [central refill]', () => {
  // retried: freePort() then listen is a race with other test files taking ports (EADDRINUSE seen
  // once in a clean-clone CI run); the afterEach cleanup runs after each attempt
  test('an isolated approval only central held: the wiped terminal signs past it and its next payment settles', {
    retry: 2,
  }, async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    venue = await startVenue(3, { init: () => ({ centralUrl: url, ...FAST }) })
    central = await startCentral(venue, port)
    const t1 = venue.terminals[0]!
    await waitFor(() => t1.online, 10_000)
    const first = await t1.pay(payment({ amountMinor: 800, offlineBehavior: 'force_offline' }))
    expect(first.status).toBe('approved_offline')

    // cut T1 off from its peers (not from central): an isolated approval that no peer holds
    await t1.mesh.setPartitioned(true)
    await waitFor(() => t1.status().mesh.mode === 'isolated', 10_000)
    const isolated = await t1.pay(payment({ amountMinor: 900, offlineBehavior: 'force_offline' }))
    expect(isolated.status).toBe('approved_offline')
    expect(isolated.mode).toBe('isolated')
    await waitFor(async () => (await central!.getPayment(isolated.paymentId))?.status === 'completed', 15_000)
    const seqOf = async (id: string) => (await central!.store.getEventById(id))!.seq
    const isoSeq = await seqOf(isolated.paymentId)
    // no peer holds it
    for (const peer of venue.terminals.slice(1))
      expect(peer.mesh.status().events).toBeLessThan(t1.mesh.status().events)

    // the disk is lost (same key); T1 restarts among its peers, which never saw the isolated approval
    await t1.stop()
    await rm(venue.inits[0]!.dataDir, { recursive: true, force: true })
    const peers = venue.terminals.slice(1).flatMap((t) => t.multiaddrs())
    const init = { ...venue.inits[0]!, discovery: { mdns: false, peers } }
    const fresh = createTerminal(init)
    await fresh.start()
    venue.terminals[0] = fresh
    venue.inits[0] = init
    await waitFor(() => fresh.status().mesh.mode === 'quorum' && fresh.status().mesh.historyKnown, 20_000)

    const next = await fresh.pay(payment({ amountMinor: 700, offlineBehavior: 'force_offline' }))
    expect(next.status).toBe('approved_offline')
    // settled: central took the new events (a reused seq is refused as ERR_SEQ_CONFLICT)
    await waitFor(async () => (await central!.getPayment(next.paymentId))?.status === 'completed', 15_000)
    // past the isolated approval's Commit (isoSeq + 1)
    expect(await seqOf(next.paymentId)).toBeGreaterThan(isoSeq + 1)
    expect(fresh.status().mesh.centralRefill).toBe('done')
  })
})
