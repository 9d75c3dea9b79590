// Regression for the simulator's finding "a crash while relearning after a lost disk" (seed 42 at
// 5000 steps, seq-signed-twice; docs/protocol.md, "Lost disks"): real nodes on 127.0.0.1, real
// LevelDB ledgers. A terminal whose disk was lost starts refilling its store from its peers, the
// refill is cut by a crash part-way, and the next start must not take the partial store for an
// intact one (it would sign a Release at the seq of its own certified Commit).

import { rm } from 'node:fs/promises'
import { createLedger } from '@nullmesh/ledger'
import { afterEach, describe, expect, it } from 'vitest'
import { candidate, makeVenue, startNode, waitFor } from './helpers.js'

type Started = Awaited<ReturnType<typeof startNode>>

describe('restart after a lost disk: the relearning mark', () => {
  let cleanup: (() => Promise<void>) | undefined
  afterEach(async () => {
    await cleanup?.()
    cleanup = undefined
  })

  it('a crash while refilling leaves the mark: the next start learns again and signs no used seq', async () => {
    const { dir, bundle } = await makeVenue(3)
    const running = new Set<Started>()
    cleanup = async () => {
      for (const n of running) {
        await n.node.stop().catch(() => {})
        await n.ledger.close().catch(() => {})
      }
      await rm(dir, { recursive: true, force: true })
    }
    const start = async (id: string, peers: string[] = []) => {
      const n = await startNode(bundle, dir, id, peers)
      running.add(n)
      return n
    }
    const stop = async (n: Started) => {
      await n.node.stop()
      await n.ledger.close()
      running.delete(n)
    }

    const t1 = await start('T1')
    const t2 = await start('T2', t1.node.multiaddrs())
    const t3 = await start('T3', [...t1.node.multiaddrs(), ...t2.node.multiaddrs()])
    const a = t1.node.publicKeyHex
    await waitFor(() => t1.node.status().peers >= 2, 15_000, 'T1 sees both peers')
    // T1's history: two approvals, each a Reservation and its Commit (seq 1..4)
    for (const [card, idem] of [
      ['card-a', 'a'],
      ['card-b', 'b'],
    ] as const) {
      const d = await t1.node.authorize(candidate(bundle, card, 500, { idem }))
      expect(d.approved).toBe(true)
    }
    for (const peer of [t2, t3])
      await waitFor(async () => (await peer.ledger.nextSeq(a)) === 5, 15_000, 'peers hold T1 up to seq 4')
    const commit2 = await t2.ledger.getEventAt(a, 2)
    expect(commit2?.event.type).toBe('commit')

    // T1's disk is lost (same key); its peers are down while it boots
    await stop(t1)
    await rm(t1.dataDir, { recursive: true, force: true })
    const reservation1 = (await t2.ledger.getEventAt(a, 1))!
    await stop(t2)
    await stop(t3)
    const wiped = await start('T1')
    expect(await wiped.ledger.relearning()).toBe(true)

    // the refill is cut by a crash: its first page (T1's Reservation at seq 1, without the Commit
    // at seq 2 that certifies it) reached the disk, the rest did not
    await stop(wiped)
    const raw = createLedger({ path: wiped.dataDir })
    await raw.open()
    await raw.recordEvents([reservation1], { sync: false })
    await raw.close()

    // the next start finds a store that is neither empty nor intact: the mark says so
    const again = await start('T1')
    expect(await again.ledger.relearning()).toBe(true)
    // nothing signed: no Release of the learned-back Reservation at seq 2, the certified Commit's seq
    expect(await again.ledger.nextSeq(a)).toBe(2)
    const early = await again.node.authorize(candidate(bundle, 'card-c', 500, { idem: 'c0' }))
    expect(early.approved).toBe(false)
    expect(await again.ledger.nextSeq(a)).toBe(2)

    // its peers come back: it learns its history from a quorum, the mark is cleared, and it
    // signs past everything it ever signed
    const b2 = await start('T2', again.node.multiaddrs())
    const b3 = await start('T3', [...again.node.multiaddrs(), ...b2.node.multiaddrs()])
    await waitFor(async () => !(await again.ledger.relearning()), 15_000, 'the mark cleared')
    expect(await again.ledger.nextSeq(a)).toBe(5)
    const d = await again.node.authorize(candidate(bundle, 'card-c', 500, { idem: 'c' }))
    expect(d.approved).toBe(true)
    // its Reservation at seq 5, its Commit at seq 6
    expect((await again.ledger.getEventAt(a, 5))?.idHex).toBe(d.reservationId)
    expect(d.seq).toBe(6)
    for (const peer of [b2, b3]) expect((await peer.ledger.getEventAt(a, 2))?.idHex).toBe(commit2!.idHex)
  }, 90_000)
})
