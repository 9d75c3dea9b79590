import '@nullmesh/protocol/shim'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { noise } from '@chainsafe/libp2p-noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import { createLiveness, type Liveness } from '../src/liveness.js'
import { waitFor } from './helpers.js'

/**
 * A TCP relay between two real libp2p nodes that can go silent: it stops forwarding in both
 * directions but keeps both sockets open — no FIN, no RST, as a pulled cable or a frozen host
 * looks to the other end. Only a ping that goes unanswered can tell.
 */
async function silentRelay(
  targetPort: number,
): Promise<{ port: number; silence(): void; close(): Promise<void> }> {
  const sockets: Socket[] = []
  const server: Server = createServer((inbound) => {
    const outbound = connect(targetPort, '127.0.0.1')
    sockets.push(inbound, outbound)
    inbound.pipe(outbound)
    outbound.pipe(inbound)
    inbound.on('error', () => {})
    outbound.on('error', () => {})
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as { port: number }).port,
    silence() {
      for (const s of sockets) {
        s.unpipe()
        s.pause()
      }
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

const portOf = (n: Libp2p): number => Number(/\/tcp\/(\d+)/.exec(n.getMultiaddrs()[0]!.toString())![1])

describe('[liveness] connection pings without a stream per ping', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  const node = async (): Promise<Libp2p> => {
    const n = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux({ enableKeepAlive: false })],
      // liveness.ts replaces libp2p's monitor in the mesh: only ours runs here
      connectionMonitor: { enabled: false },
    })
    cleanups.push(() => n.stop())
    return n
  }

  it('answered pings keep a connection open; once the link goes silent (no FIN, no RST) the connection is aborted', async () => {
    const a = await node()
    const b = await node()
    const relay = await silentRelay(portOf(b))
    cleanups.push(() => relay.close())
    const conn = await a.dial(multiaddr(`/ip4/127.0.0.1/tcp/${relay.port}/p2p/${b.peerId}`))
    const live: Liveness = createLiveness({
      connections: () => a.getConnections(),
      intervalMs: 100,
      tickMs: 25,
      minTimeoutMs: 300,
      maxTimeoutMs: 600,
    })
    cleanups.push(() => live.stop())
    live.start()

    // several pings answered: the connection stays, with a measured round trip
    await waitFor(() => live.pings() >= 3, 15_000, 'three pings')
    expect(conn.status).toBe('open')
    expect(conn.rtt).toBeTypeOf('number')
    // no stream was opened for any of them (libp2p's monitor opened one per ping)
    expect(conn.streams.length).toBe(0)

    relay.silence()
    await waitFor(() => conn.status !== 'open', 15_000, 'the silent connection aborted')
    expect(a.getConnections(b.peerId)).toHaveLength(0)
  })

  it("bytes from the peer count as liveness: an end that keeps hearing the other's pings sends none", async () => {
    const a = await node()
    const b = await node()
    await a.dial(multiaddr(`/ip4/127.0.0.1/tcp/${portOf(b)}/p2p/${b.peerId}`))
    // a pings a connection quiet for 75 ms; b only one quiet for 750 ms — and a's pings reach b
    const fast = createLiveness({ connections: () => a.getConnections(), intervalMs: 100, tickMs: 25 })
    const slow = createLiveness({ connections: () => b.getConnections(), intervalMs: 1_000, tickMs: 250 })
    cleanups.push(
      () => fast.stop(),
      () => slow.stop(),
    )
    fast.start()
    slow.start()
    await waitFor(() => fast.pings() >= 40, 30_000, 'forty pings from a')
    // without counting a's pings as liveness b would ping every second too (≥ 3 by now)
    expect(slow.pings()).toBeLessThanOrEqual(1)
    expect(a.getConnections(b.peerId)).toHaveLength(1)
  })
})
