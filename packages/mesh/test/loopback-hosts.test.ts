import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { createLedger, type Ledger } from '@nullmesh/ledger'
import {
  createMeshNode,
  INBOUND_CONNECTIONS_PER_HOST_PER_SECOND,
  loopbackDialSource,
  type MeshNode,
} from '@nullmesh/mesh'
import { loadTerminalKey } from '@nullmesh/policy'
import { afterEach, describe, expect, it } from 'vitest'
import { makeVenue, waitFor } from './helpers.js'

// Harnesses that run a venue on one machine (the sim, the `scale` bench figure) give each terminal
// its own loopback address, as a LAN gives each terminal its own host. The kernel would still pick
// 127.0.0.1 as the source of every loopback connection; a node listening on one loopback host dials
// from it, so that per-host limits (libp2p's inbound connection rate) see distinct hosts.

interface Internals {
  libp2p: {
    dial(ma: unknown): Promise<unknown>
    getConnections(): { remoteAddr: { toString(): string } }[]
  }
}

describe('loopbackDialSource', () => {
  it('binds dials to a single loopback host, and only then', () => {
    expect(loopbackDialSource(['/ip4/127.0.3.7/tcp/0'])).toBe('127.0.3.7')
    expect(loopbackDialSource(['/ip4/127.0.3.7/tcp/0', '/ip4/127.0.3.7/tcp/4001'])).toBe('127.0.3.7')
    expect(loopbackDialSource(['/ip4/127.0.0.1/tcp/0'])).toBe('127.0.0.1')
    expect(loopbackDialSource(['/ip4/127.0.3.7/tcp/0', '/ip4/127.0.3.8/tcp/0'])).toBeUndefined()
    expect(loopbackDialSource(['/ip4/0.0.0.0/tcp/0'])).toBeUndefined()
    expect(loopbackDialSource(['/ip4/192.168.1.10/tcp/0'])).toBeUndefined()
    expect(loopbackDialSource(['/ip4/127.0.3.7/tcp/0', '/ip4/192.168.1.10/tcp/0'])).toBeUndefined()
    expect(loopbackDialSource([])).toBeUndefined()
  })
})

let cleanup: (() => Promise<void>) | undefined
afterEach(async () => {
  await cleanup?.()
  cleanup = undefined
})

describe('[loopback hosts] terminals on distinct loopback addresses are distinct hosts', () => {
  it('more terminals than the per-host inbound rate dial one at once: every one gets in, each from its own address', async () => {
    const spokes = INBOUND_CONNECTIONS_PER_HOST_PER_SECOND + 3
    const { dir, bundle } = await makeVenue(spokes + 1)
    const nodes: { node: MeshNode; ledger: Ledger }[] = []
    cleanup = async () => {
      for (const n of nodes) {
        await n.node.stop().catch(() => {})
        await n.ledger.close().catch(() => {})
      }
      await rm(dir, { recursive: true, force: true })
    }
    const host = (i: number) => `127.0.42.${i + 1}`
    for (let i = 0; i <= spokes; i++) {
      const r = bundle.roster[i]!
      const ledger = createLedger({ path: join(dir, `data-${r.id}`) })
      await ledger.open()
      // no static peers: the hub (index 0) is dialled by every spoke below, at once
      const node = createMeshNode({
        bundle,
        key: await loadTerminalKey(bundle.dir, r.id),
        ledger,
        listen: [`/ip4/${host(i)}/tcp/0`],
      })
      nodes.push({ node, ledger })
      await node.start()
    }
    const hub = nodes[0]!.node
    const hubAddr = hub.multiaddrs().find((a) => a.startsWith(`/ip4/${host(0)}/`))!
    const target = multiaddr(hubAddr.includes('/p2p/') ? hubAddr : `${hubAddr}/p2p/${hub.peerId}`)
    const results = await Promise.allSettled(
      nodes.slice(1).map((n) => (n.node as unknown as Internals).libp2p.dial(target)),
    )
    // from one host (all 127.0.0.1), libp2p refuses the dials past its per-host rate
    expect(results.filter((r) => r.status === 'rejected').map((r) => String(r.reason))).toEqual([])
    const remoteHosts = () =>
      new Set(
        (hub as unknown as Internals).libp2p
          .getConnections()
          .map((c) => c.remoteAddr.toString().split('/')[2]),
      )
    await waitFor(() => remoteHosts().size === spokes, 10_000, 'a connection from every spoke')
    expect([...remoteHosts()].sort()).toEqual(Array.from({ length: spokes }, (_, i) => host(i + 1)).sort())
  })
})
