// Issue 15: the persisted address book and the interface watch behind a terminal's rejoin after a
// pulled cable (packages/mesh/src/{address-book,interface-watch,rejoin}.ts). Units with fakes, then
// real nodes on 127.0.0.1: a node restarted with no peer list at all redials what it remembered.

import { rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import type { NetworkInterfaceInfo } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  ADDRESS_BOOK_CURSOR,
  createAddressBook,
  createInterfaceWatch,
  interfaceKeys,
  normaliseAddr,
} from '@nullmesh/mesh'
import { describe, expect, it } from 'vitest'
import { makeVenue, startNode } from './helpers.js'

function fakeLedger() {
  const cursors = new Map<string, string>()
  return {
    cursors,
    getCursor: async (name: string) => cursors.get(name),
    setCursor: async (name: string, value: string) => {
      cursors.set(name, value)
    },
  }
}

const A = '12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
const B = '12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB'
const SELF = '12D3KooWSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS'
const STRANGER = '12D3KooWXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX'

describe('address book', () => {
  it('keeps dialable addresses of enrolled peers only, persists them and loads them back', async () => {
    const ledger = fakeLedger()
    const init = {
      ledger,
      self: SELF,
      isMember: (id: string) => id === A || id === B || id === SELF,
      isConnected: () => true,
      dial: async () => {},
      redialMs: 60_000,
    }
    const book = createAddressBook(init)
    await book.start()
    book.remember(A, [
      '/ip4/10.77.10.11/tcp/4001',
      `/ip4/10.77.10.11/tcp/4001/p2p/${A}`,
      '/ip4/0.0.0.0/tcp/4001',
    ])
    book.remember(A, ['/ip4/10.77.10.11/udp/4001/quic-v1', '/ip4/127.0.0.1/tcp/4001'])
    book.remember(STRANGER, ['/ip4/10.77.10.66/tcp/4001'])
    book.remember(SELF, ['/ip4/10.77.10.13/tcp/4001'])
    book.remember(B, ['/dns4/terminal2/tcp/4001'])
    await book.stop()
    expect(book.entries().map((e) => [e.peerId, e.addrs])).toEqual([
      [A, ['/ip4/127.0.0.1/tcp/4001', '/ip4/10.77.10.11/tcp/4001']],
      [B, ['/dns4/terminal2/tcp/4001']],
    ])
    expect(JSON.parse(ledger.cursors.get(ADDRESS_BOOK_CURSOR)!).peers[A].a).toHaveLength(2)

    // a new run of the node: the book comes back from the ledger; a peer no longer enrolled is dropped
    const again = createAddressBook({ ...init, isMember: (id: string) => id === A })
    await again.start()
    expect(again.entries().map((e) => e.peerId)).toEqual([A])
    await again.stop()
  })

  it('redials remembered peers it is not connected to, one dial at a time each, not while paused', async () => {
    const ledger = fakeLedger()
    const dials: [string, string[]][] = []
    let connected = new Set<string>()
    let paused = false
    let release: () => void = () => {}
    const book = createAddressBook({
      ledger,
      self: SELF,
      isMember: () => true,
      isConnected: (id) => connected.has(id),
      paused: () => paused,
      redialMs: 20,
      dial: (id, addrs) => {
        dials.push([id, addrs])
        return new Promise<void>((r) => {
          release = r
        })
      },
    })
    book.remember(A, ['/ip4/10.0.0.1/tcp/4001'])
    await book.start()
    await sleep(100)
    // one dial in flight: not repeated until it settles
    expect(dials).toEqual([[A, [`/ip4/10.0.0.1/tcp/4001/p2p/${A}`]]])
    release()
    await sleep(60)
    expect(dials.length).toBeGreaterThanOrEqual(2)
    release()
    connected = new Set([A])
    await sleep(60)
    const n = dials.length
    await sleep(100)
    expect(dials.length).toBe(n)
    connected = new Set()
    paused = true
    await sleep(100)
    expect(dials.length).toBe(n)
    await book.stop()
    release()
  })

  it('normalises multiaddrs', () => {
    expect(normaliseAddr(`/ip4/1.2.3.4/tcp/1/p2p/${A}`)).toBe('/ip4/1.2.3.4/tcp/1')
    expect(normaliseAddr('/ip4/1.2.3.4/udp/1')).toBeUndefined()
    expect(normaliseAddr('/ip4/0.0.0.0/tcp/1')).toBeUndefined()
    expect(normaliseAddr('garbage')).toBeUndefined()
  })
})

describe('interface watch', () => {
  const info = (address: string, mac: string, internal = false): NetworkInterfaceInfo =>
    ({
      address,
      mac,
      internal,
      family: 'IPv4',
      netmask: '255.255.255.0',
      cidr: `${address}/24`,
    }) as NetworkInterfaceInfo

  it('reports an interface that returns under a new name with the same address', async () => {
    let table: NodeJS.Dict<NetworkInterfaceInfo[]> = {
      lo: [info('127.0.0.1', '00:00:00:00:00:00', true)],
      eth0: [info('10.77.10.13', '02:42:0a:4d:0a:0d')],
    }
    const appeared: string[][] = []
    const removed: string[][] = []
    const watch = createInterfaceWatch({
      interfaces: () => table,
      ifindex: () => undefined,
      intervalMs: 60_000,
      onAppear: (c) => {
        appeared.push(c.added)
      },
      onRemove: (c) => {
        removed.push(c.removed)
      },
    })
    watch.start()
    expect(watch.current()).toEqual(['eth0/10.77.10.13/02:42:0a:4d:0a:0d/'])
    await watch.check()
    expect(appeared).toEqual([])
    // cable pulled: eth0 gone
    table = { lo: table.lo! }
    await watch.check()
    expect(removed).toEqual([['eth0/10.77.10.13/02:42:0a:4d:0a:0d/']])
    // plugged back: eth1, same address and MAC
    table = { ...table, eth1: [info('10.77.10.13', '02:42:0a:4d:0a:0d')] }
    await watch.check()
    expect(appeared).toEqual([['eth1/10.77.10.13/02:42:0a:4d:0a:0d/']])
    await watch.stop()
  })

  it('a same-name interface recreated between two polls is told apart by its index', () => {
    const t = { eth0: [info('10.0.0.2', 'aa:bb:cc:dd:ee:ff')] }
    expect(interfaceKeys(t, () => '7')).not.toEqual(interfaceKeys(t, () => '9'))
  })
})

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

describe('rejoin on real nodes (127.0.0.1)', () => {
  it('restarted with no peer list and no mDNS, a node redials the peer it remembered', async () => {
    const { dir, bundle } = await makeVenue(2)
    const port = await freePort()
    const started: Awaited<ReturnType<typeof startNode>>[] = []
    try {
      const t1 = await startNode(bundle, dir, 'T1', [], { port })
      started.push(t1)
      const t1Addr = `/ip4/127.0.0.1/tcp/${port}/p2p/${t1.node.peerId}`
      // first run of T2: it knows T1 from its peer list
      let t2 = await startNode(bundle, dir, 'T2', [t1Addr])
      started.push(t2)
      await waitUntil(() => t2.node.status().peers === 1, 10_000)
      await t2.node.stop()
      await t2.ledger.close()
      started.pop()
      // second run: no peer list, no mDNS — only what it remembered
      t2 = await startNode(bundle, dir, 'T2', [])
      started.push(t2)
      const t0 = Date.now()
      await waitUntil(() => t2.node.status().peers === 1 && t1.node.status().peers === 1, 10_000)
      console.log(`[rejoin] T2 redialled T1 from its persisted address book in ${Date.now() - t0} ms`)
    } finally {
      for (const s of started.reverse()) {
        await s.node.stop()
        await s.ledger.close()
      }
      await rm(dir, { recursive: true, force: true })
    }
  }, 30_000)
})

async function waitUntil(pred: () => boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now()
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`)
    await sleep(50)
  }
}
