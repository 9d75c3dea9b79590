import '@nullmesh/protocol/shim'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { noise } from '@chainsafe/libp2p-noise'
import { ping } from '@libp2p/ping'
import { generateKey, preSharedKey as libp2pPreSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { decodeSwarmKey, preSharedKey, XSalsa20Stream } from '@nullmesh/mesh'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'

// The `xsalsa20` package that @libp2p/pnet uses: the reference for the keystream (wire compatibility).
const reference = createRequire(import.meta.resolve('@libp2p/pnet'))('xsalsa20') as (
  nonce: Uint8Array,
  key: Uint8Array,
) => { update(input: Uint8Array): Uint8Array }

const key = () => new Uint8Array(randomBytes(32))
const nonce = () => new Uint8Array(randomBytes(24))

/** `data` cut into chunks of 1..max bytes, a different cut per seed */
function chunks(data: Uint8Array, max: number, seed: number): Uint8Array[] {
  const out: Uint8Array[] = []
  let s = seed
  for (let i = 0; i < data.length; ) {
    s = (s * 1103515245 + 12345) >>> 0
    const n = 1 + (s % max)
    out.push(data.subarray(i, i + n))
    i += n
  }
  return out
}

describe('[pnet] the venue private network cipher', () => {
  it('any chunking gives the keystream of @libp2p/pnet (wire compatible)', () => {
    for (const [max, seed] of [
      [1, 1],
      [63, 2],
      [64, 3],
      [200, 4],
      [5000, 5],
    ] as const) {
      const k = key()
      const n = nonce()
      const data = new Uint8Array(randomBytes(20_000))
      const ours = new XSalsa20Stream(k, n)
      const theirs = reference(n, k)
      for (const c of chunks(data, max, seed)) expect(ours.update(c)).toEqual(theirs.update(c))
    }
  })

  it('many ciphers in one process survive a chunk larger than the old shared wasm memory', () => {
    // @libp2p/pnet's xsalsa20 dies here with RangeError: WebAssembly.Memory.grow() after ~1,000 chunks
    const k = key()
    const pairs = Array.from({ length: 20 }, () => {
      const n = nonce()
      return { enc: new XSalsa20Stream(k, n), dec: new XSalsa20Stream(k, n) }
    })
    const big = new Uint8Array(randomBytes(1024 * 1024))
    expect(pairs[0]!.dec.update(pairs[0]!.enc.update(big))).toEqual(big)
    const small = randomBytes(100)
    let wrong = 0
    for (let i = 0; i < 5_000; i++) {
      const p = pairs[i % pairs.length]!
      if (!Buffer.from(p.dec.update(p.enc.update(small))).equals(small)) wrong++
    }
    expect(wrong).toBe(0)
  })

  it('reads the swarm.key file that generateKey writes, and refuses anything else', () => {
    const file = new Uint8Array(95)
    generateKey(file)
    const hex = new TextDecoder().decode(file).split('\n')[2]!
    expect(Buffer.from(decodeSwarmKey(file)).toString('hex')).toBe(hex.toLowerCase())
    expect(() => decodeSwarmKey(new TextEncoder().encode('/key/swarm/psk/1.0.0/\n/base16/\nabcd'))).toThrow(
      /invalid swarm key/,
    )
  })
})

describe('[pnet] over real libp2p sockets', () => {
  const nodes: Libp2p[] = []
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()))
  })

  const start = async (protector: ReturnType<typeof preSharedKey>) => {
    const node = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionProtector: protector,
      services: { ping: ping() },
    })
    nodes.push(node)
    return node
  }

  it('a terminal talks to a stock @libp2p/pnet peer with the same key, and not to one with another key', async () => {
    const psk = new Uint8Array(95)
    generateKey(psk)
    const other = new Uint8Array(95)
    generateKey(other)
    const ours = await start(preSharedKey({ psk }))
    const stock = await start(libp2pPreSharedKey({ psk }))
    const stranger = await start(preSharedKey({ psk: other }))
    const rtt = await ours.services.ping.ping(stock.getMultiaddrs()[0]!)
    expect(rtt).toBeGreaterThanOrEqual(0)
    await expect(
      ours.services.ping.ping(stranger.getMultiaddrs()[0]!, { signal: AbortSignal.timeout(3_000) }),
    ).rejects.toThrow()
  })
})
