import { rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { createLedger, type Ledger } from '@nullmesh/ledger'
import { createMeshNode, type MeshNode, type OfflineDecision } from '@nullmesh/mesh'
import { loadTerminalKey } from '@nullmesh/policy'
import { CustodianGroups, computeCardKey, fromHex } from '@nullmesh/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { candidate, makeVenue, waitFor } from './helpers.js'

// Issue 12, "Connections": no full mesh. Real libp2p nodes on 127.0.0.1 (static addresses, no
// mDNS), a connection limit well below N − 1: group members are dialled on demand.
const N = 10
const MAX_CONNECTIONS = 5
const TARGET_CONNECTIONS = 2

interface Libp2pInternals {
  libp2p?: { getConnections(): { remotePeer: { toString(): string } }[] }
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

let cleanup: (() => Promise<void>) | undefined
afterEach(async () => {
  await cleanup?.()
  cleanup = undefined
})

describe('[connections] no full mesh: a connection limit, group members dialled on demand (127.0.0.1)', () => {
  it('connections stay within the limit; cards whose group is not connected get a quorum, never the isolated rules; commits reach every ledger', async () => {
    const { dir, bundle } = await makeVenue(N, { tapBudgetMs: 10_000 })
    const nodes: { id: string; node: MeshNode; ledger: Ledger; peerId: string }[] = []
    let sampler: NodeJS.Timeout | undefined
    cleanup = async () => {
      if (sampler !== undefined) clearInterval(sampler)
      for (const n of nodes) {
        await n.node.stop().catch(() => {})
        await n.ledger.close().catch(() => {})
      }
      await rm(dir, { recursive: true, force: true })
    }
    // every node knows every address up front (as mDNS would tell it): the limit, not ignorance,
    // is what keeps them from a full mesh
    const peerIds = bundle.roster.map((r) =>
      peerIdFromPublicKey(publicKeyFromRaw(fromHex(r.publicKeyHex))).toString(),
    )
    const ports: number[] = []
    for (let i = 0; i < N; i++) ports.push(await freePort())
    const addrs = ports.map((p, i) => `/ip4/127.0.0.1/tcp/${p}/p2p/${peerIds[i]}`)
    for (let i = 0; i < N; i++) {
      const r = bundle.roster[i]!
      const ledger = createLedger({ path: join(dir, `data-${r.id}`) })
      await ledger.open()
      const node = createMeshNode({
        bundle,
        key: await loadTerminalKey(bundle.dir, r.id),
        ledger,
        listen: [`/ip4/127.0.0.1/tcp/${ports[i]}`],
        discovery: { peers: addrs.filter((_, j) => j !== i) },
        connections: { maxConnections: MAX_CONNECTIONS, targetConnections: TARGET_CONNECTIONS },
      })
      nodes.push({ id: r.id, node, ledger, peerId: peerIds[i]! })
      await node.start()
    }
    expect(nodes[0]!.node.status()).toMatchObject({ maxConnections: MAX_CONNECTIONS, roster: N, quorum: 3 })
    // the largest connection count each node ever had, sampled throughout
    const most = new Array<number>(N).fill(0)
    const connectedTo = (i: number) =>
      new Set(
        ((nodes[i]!.node as unknown as Libp2pInternals).libp2p?.getConnections() ?? []).map((c) =>
          c.remotePeer.toString(),
        ),
      )
    const sample = () => {
      for (let i = 0; i < N; i++) {
        const count = (nodes[i]!.node as unknown as Libp2pInternals).libp2p?.getConnections().length ?? 0
        most[i] = Math.max(most[i]!, count)
      }
    }
    sampler = setInterval(sample, 10)
    // formed: every node in quorum mode and knowing its own history (a node that has not learned
    // it yet acks nothing: it parks requests, then refuses `catching_up`)
    await waitFor(
      () => nodes.every((n) => n.node.status().mode === 'quorum' && n.node.status().historyKnown),
      60_000,
      `every node in quorum mode with its history known (${nodes.map((n) => n.node.status().peers).join(',')})`,
    )

    const groups = new CustodianGroups(
      bundle.roster.map((r) => r.publicKeyHex),
      5,
    )
    // per origin, a card whose group members it is mostly not connected to right now
    const decisions: { origin: number; d: OfflineDecision; notConnected: number }[] = []
    let pan = 0
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < N; i++) {
        let card = ''
        let notConnected = 0
        for (let k = 0; k < 2000 && card === ''; k++) {
          const c = `4000000${String(1_000_000 + pan++)}`
          const group = groups.of(computeCardKey(bundle.hashingKey, c))
          const others = group.members.filter((m) => m !== bundle.roster[i]!.publicKeyHex)
          const conn = connectedTo(i)
          const missing = others.filter(
            (m) => !conn.has(peerIds[bundle.roster.findIndex((r) => r.publicKeyHex === m)]!),
          )
          // fewer connected members than the quorum needs: only dialling can certify it
          if (others.length - missing.length < (group.has(bundle.roster[i]!.publicKeyHex) ? 2 : 3)) {
            card = c
            notConnected = missing.length
          }
        }
        expect(card).not.toBe('')
        const d = await nodes[i]!.node.authorize(
          candidate(bundle, card, 500, { atc: 1, idem: `c-${round}-${i}` }),
        )
        decisions.push({ origin: i, d, notConnected })
        sample()
      }
    }
    const isolated = decisions.filter(
      (x) => x.d.mode === 'isolated' || x.d.decision === 'approved_offline_isolated',
    )
    expect(isolated).toEqual([])
    const declined = decisions
      .filter((x) => !x.d.approved)
      .map((x) => `${x.origin}: ${x.d.declineCode} ${x.d.message ?? ''}`)
    expect(declined).toEqual([])
    expect(decisions.every((x) => x.notConnected > 0)).toBe(true)
    // every commit reaches every ledger (gossip over the sparse graph, pushes to the group, catch-up)
    await waitFor(
      async () => {
        for (const n of nodes)
          for (const x of decisions)
            if ((await n.ledger.reservationState(x.d.reservationId!)) !== 'committed') return false
        return true
      },
      60_000,
      'every commit in every ledger',
    )
    sample()
    // never a full mesh, and never above the limit
    expect(Math.max(...most)).toBeLessThanOrEqual(MAX_CONNECTIONS)
    const dials = nodes.reduce((s, n) => s + n.node.counters().onDemandDials, 0)
    expect(dials).toBeGreaterThan(0)

    // the isolated rules still apply when a group majority is really down: dials to stopped
    // terminals fail as unreachable (connection refused), not as "refused by a live peer"
    const keyOf = (i: number) => bundle.roster[i]!.publicKeyHex
    let downCard = ''
    let stop: number[] = []
    for (let k = 0; k < 5000 && downCard === ''; k++) {
      const c = `4111111${String(1_000_000 + k)}`
      const group = groups.of(computeCardKey(bundle.hashingKey, c))
      const members = [5, 6, 7, 8, 9].filter((i) => group.has(keyOf(i)))
      if (!group.has(keyOf(0)) && members.length >= 3) {
        downCard = c
        stop = members.slice(0, 3)
      }
    }
    expect(downCard).not.toBe('')
    for (const i of stop) await nodes[i]!.node.stop()
    const iso = await nodes[0]!.node.authorize(candidate(bundle, downCard, 500, { atc: 1, idem: 'iso' }))
    expect(iso.mode).toBe('isolated')
    expect(iso.decision).toBe('approved_offline_isolated')
    // a card whose group majority is still up keeps its quorum
    let upCard = ''
    for (let k = 0; k < 5000 && upCard === ''; k++) {
      const c = `4222222${String(1_000_000 + k)}`
      const group = groups.of(computeCardKey(bundle.hashingKey, c))
      if (group.members.filter((m) => !stop.some((i) => keyOf(i) === m)).length >= 4) upCard = c
    }
    const up = await nodes[0]!.node.authorize(candidate(bundle, upCard, 500, { atc: 1, idem: 'up' }))
    expect(up.mode).toBe('quorum')
    expect(up.approved).toBe(true)
  }, 240_000)
})
