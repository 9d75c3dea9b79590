import '@nullmesh/protocol/shim'
import { createServer, type Server, type Socket } from 'node:net'
import { noise } from '@chainsafe/libp2p-noise'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generateKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { preSharedKey } from '@nullmesh/mesh'
import { createLibp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import { createDialer, type Dialer } from '../dist/dialer.js'

// The dialer (docs/protocol.md, "Connections") on real libp2p nodes over loopback TCP: what it
// does at its limits. Bare libp2p nodes (no mesh): the dialer alone decides what is dialled and
// what is closed.

const nodes: Libp2p[] = []
const dialers: Dialer[] = []
const servers: Server[] = []
const sockets: Socket[] = []
afterEach(async () => {
  for (const d of dialers.splice(0)) await d.stop()
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
  for (const s of sockets.splice(0)) s.destroy()
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))))
})

async function node(psk?: Uint8Array): Promise<Libp2p> {
  const n = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(psk === undefined ? {} : { connectionProtector: preSharedKey({ psk }) }),
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

describe('[dialer] a slow peer is not a down peer', () => {
  it('a dial that times out after the host accepted TCP is inconclusive ("refused"); a closed port is "unreachable"', async () => {
    const psk = new Uint8Array(95)
    generateKey(psk)
    const hub = await node(psk)
    // a host that is up but whose terminal never answers (a starved or stuck event loop): the
    // kernel accepts the connection, the pre-shared-key nonce never comes back
    const silent = createServer((socket) => sockets.push(socket))
    servers.push(silent)
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
    const silentPort = (silent.address() as { port: number }).port
    // a port nothing listens on: the host refuses the connection (its terminal is down)
    const closed = createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    const closedPort = (closed.address() as { port: number }).port
    await new Promise((r) => closed.close(r))
    const slowId = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const downId = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    await hub.peerStore.merge(slowId, { multiaddrs: [multiaddr(`/ip4/127.0.0.1/tcp/${silentPort}`)] })
    await hub.peerStore.merge(downId, { multiaddrs: [multiaddr(`/ip4/127.0.0.1/tcp/${closedPort}`)] })
    const dialer = createDialer({
      libp2p: hub,
      isMember: () => true,
      maxConnections: 10,
      targetConnections: 1,
    })
    dialers.push(dialer)
    dialer.start()
    // without the distinction both count as "unreachable": evidence for the isolated rules
    expect(await dialer.dialOnDemand(slowId.toString(), { signal: AbortSignal.timeout(500) })).toBe('refused')
    expect(await dialer.dialOnDemand(downId.toString(), { signal: AbortSignal.timeout(500) })).toBe(
      'unreachable',
    )
  })
})
