import { noise } from '@chainsafe/libp2p-noise'
import type { Libp2p } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { createLibp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import { createDialer, type Dialer } from '../dist/dialer.js'

// The dialer (docs/protocol.md, "Connections") on real libp2p nodes over loopback TCP: what it
// does at its limits. Bare libp2p nodes (no mesh): the dialer alone decides what is dialled and
// what is closed.

const nodes: Libp2p[] = []
const dialers: Dialer[] = []
afterEach(async () => {
  for (const d of dialers.splice(0)) await d.stop()
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
})

async function node(): Promise<Libp2p> {
  const n = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  })
  nodes.push(n)
  return n
}

/** `hub` knows the others' addresses (peer store) but dials none of them by itself */
async function hubAndPeers(peers: number) {
  const hub = await node()
  const others = await Promise.all(Array.from({ length: peers }, () => node()))
  for (const o of others) await hub.peerStore.merge(o.peerId, { multiaddrs: o.getMultiaddrs() })
  return { hub, others, ids: others.map((o) => o.peerId.toString()) }
}

const connectedTo = (hub: Libp2p) => new Set(hub.getConnections().map((c) => c.remotePeer.toString()))

describe('[dialer] on-demand dials at once', () => {
  it('beyond onDemandAtOnce a dial is answered "refused" untried (never "unreachable"); its turn comes after', async () => {
    const { hub, ids } = await hubAndPeers(4)
    const dialer = createDialer({
      libp2p: hub,
      isMember: () => true,
      maxConnections: 10,
      targetConnections: 1,
      onDemandAtOnce: 2,
    })
    dialers.push(dialer)
    dialer.start()
    const results = await Promise.all(
      ids.map((id) => dialer.dialOnDemand(id, { signal: AbortSignal.timeout(10_000) })),
    )
    // without the bound all four are dialled at once and connect
    expect(results.filter((r) => r === 'connected')).toHaveLength(2)
    expect(results.filter((r) => r === 'refused')).toHaveLength(2)
    expect(connectedTo(hub).size).toBe(2)
    // the ones turned away are dialled when asked again
    const again = await Promise.all(
      ids
        .filter((_, i) => results[i] === 'refused')
        .map((id) => dialer.dialOnDemand(id, { signal: AbortSignal.timeout(10_000) })),
    )
    expect(again).toEqual(['connected', 'connected'])
    expect(connectedTo(hub)).toEqual(new Set(ids))
  })
})

describe('[dialer] a connection being greeted is not idle', () => {
  it('at the limit, a busy connection never gives way to an on-demand dial; once not busy, an idle one does', async () => {
    const { hub, ids } = await hubAndPeers(2)
    const [b, c] = ids as [string, string]
    const busy = new Set<string>()
    const dialer = createDialer({
      libp2p: hub,
      isMember: () => true,
      maxConnections: 1,
      targetConnections: 1,
      // any connection is old enough to give way: only `busy` protects it
      evictIdleMs: 0,
      busy: (id) => busy.has(id),
    })
    dialers.push(dialer)
    dialer.start()
    expect(await dialer.dialOnDemand(b, { signal: AbortSignal.timeout(10_000) })).toBe('connected')
    busy.add(b)
    // without `busy` the connection to B is closed for C's dial, B's greeting with it
    expect(await dialer.dialOnDemand(c, { signal: AbortSignal.timeout(10_000) })).toBe('refused')
    expect(connectedTo(hub)).toEqual(new Set([b]))
    busy.delete(b)
    expect(await dialer.dialOnDemand(c, { signal: AbortSignal.timeout(10_000) })).toBe('connected')
    expect(connectedTo(hub)).toEqual(new Set([c]))
  })
})
