// The last known addresses of enrolled peers, persisted in the ledger and redialled (issue 15), so
// that losing mDNS alone never isolates a terminal: after a pulled cable, a restart, or on a LAN
// where multicast is unreliable, the terminal keeps dialling the peers it knew, and they keep
// dialling it. Addresses come from identify (the peer's own listen addresses), from our outbound
// connections and from mDNS sightings; only enrolled peers are kept, at most MAX_ADDRS each, most
// recently seen first. Stored as one JSON cursor value (cursors need no fsync: losing the last
// update only means an older address list).
import type { Ledger } from '@nullmesh/ledger'
import debug from 'debug'

const log = debug('nullmesh:mesh:addrbook')

export const ADDRESS_BOOK_CURSOR = 'mesh/address-book/v1'
/** How often peers we are not connected to are redialled at their last known addresses. */
export const ADDRESS_REDIAL_MS = 1000
/** Addresses kept per peer (most recent first). */
export const MAX_ADDRS = 6
/** Peers kept (a roster is small; this bounds a corrupted or hostile cursor). */
export const MAX_PEERS = 1024
/** Debounce of the persisted copy after a change. */
export const SAVE_DELAY_MS = 500

export interface AddressBookInit {
  /** the node's open ledger: only its cursors are used */
  ledger: Pick<Ledger, 'getCursor' | 'setCursor'>
  /** our own peer id (never remembered or dialled) */
  self: string
  /** is this peer id an enrolled terminal now? Others are neither remembered nor dialled. */
  isMember: (peerId: string) => boolean
  /** is there a connection to this peer already? */
  isConnected: (peerId: string) => boolean
  /** dial a peer at these addresses (each ends in /p2p/<peerId>); rejects or resolves when done */
  dial: (peerId: string, addrs: string[]) => Promise<unknown>
  /** while true, nothing is dialled (e.g. a simulated partition) */
  paused?: () => boolean
  redialMs?: number
  cursorName?: string
  now?: () => number
}

export interface AddressBookEntry {
  peerId: string
  /** multiaddrs without /p2p, most recently seen first */
  addrs: string[]
  /** when an address of this peer was last seen (ms since the epoch) */
  seen: number
}

export interface AddressBook {
  /** load the persisted book and start redialling */
  start(): Promise<void>
  /** stop redialling and persist the book */
  stop(): Promise<void>
  /** addresses seen for a peer (any multiaddr form; /p2p/... is stripped; non-members ignored) */
  remember(peerId: string, addrs: readonly string[]): void
  /** dial every remembered peer we are not connected to, now */
  redialNow(): void
  entries(): AddressBookEntry[]
  /** persist now (also done a moment after every change) */
  flush(): Promise<void>
}

interface Stored {
  v: 1
  peers: Record<string, { a: string[]; t: number }>
}

/** A dialable TCP multiaddr without the /p2p suffix, or undefined. */
export function normaliseAddr(addr: string): string | undefined {
  const base = addr.replace(/\/p2p\/[^/]+$/, '')
  // /ip4|ip6|dns*/host/tcp/port — nothing else is dialable by this node (TCP transport only)
  if (!/^\/(ip4|ip6|dns|dns4|dns6)\/[^/]+\/tcp\/\d{1,5}$/.test(base)) return undefined
  // an unspecified address is never a peer's address
  if (/^\/ip4\/0\.0\.0\.0\/|^\/ip6\/::\//.test(base)) return undefined
  return base
}

export function createAddressBook(init: AddressBookInit): AddressBook {
  const now = init.now ?? Date.now
  const name = init.cursorName ?? ADDRESS_BOOK_CURSOR
  const book = new Map<string, { addrs: string[]; seen: number }>()
  const dialing = new Set<string>()
  let timer: NodeJS.Timeout | undefined
  let saveTimer: NodeJS.Timeout | undefined
  let dirty = false
  let saving: Promise<void> = Promise.resolve()
  let started = false

  function scheduleSave(): void {
    dirty = true
    if (saveTimer !== undefined || !started) return
    saveTimer = setTimeout(() => {
      saveTimer = undefined
      void flush()
    }, SAVE_DELAY_MS)
    saveTimer.unref()
  }

  function flush(): Promise<void> {
    if (!dirty) return saving
    dirty = false
    const value: Stored = { v: 1, peers: {} }
    for (const [id, e] of book) value.peers[id] = { a: e.addrs, t: e.seen }
    const json = JSON.stringify(value)
    saving = saving
      .then(() => init.ledger.setCursor(name, json))
      .catch((err: unknown) => log('saving the address book failed: %s', (err as Error).message))
    return saving
  }

  function remember(peerId: string, addrs: readonly string[]): void {
    if (peerId === init.self || !init.isMember(peerId)) return
    const fresh = addrs.map(normaliseAddr).filter((a): a is string => a !== undefined)
    if (fresh.length === 0) return
    const entry = book.get(peerId)
    const merged = [...new Set([...fresh, ...(entry?.addrs ?? [])])].slice(0, MAX_ADDRS)
    const changed = entry === undefined || merged.join(' ') !== entry.addrs.join(' ')
    if (entry === undefined && book.size >= MAX_PEERS) return
    book.set(peerId, { addrs: merged, seen: now() })
    if (changed) {
      log('%s at %s', peerId.slice(-8), merged.join(' '))
      scheduleSave()
    }
  }

  function redialNow(): void {
    if (!started || init.paused?.() === true) return
    for (const [peerId, e] of book) {
      if (dialing.has(peerId) || !init.isMember(peerId) || init.isConnected(peerId)) continue
      dialing.add(peerId)
      init
        .dial(
          peerId,
          e.addrs.map((a) => `${a}/p2p/${peerId}`),
        )
        .catch((err: unknown) => log('redial %s failed: %s', peerId.slice(-8), (err as Error).message))
        .finally(() => dialing.delete(peerId))
    }
  }

  async function load(): Promise<void> {
    let raw: string | undefined
    try {
      raw = await init.ledger.getCursor(name)
    } catch (err) {
      log('reading the address book failed: %s', (err as Error).message)
      return
    }
    if (raw === undefined) return
    try {
      const stored = JSON.parse(raw) as Stored
      if (stored?.v !== 1 || typeof stored.peers !== 'object' || stored.peers === null) return
      for (const [peerId, e] of Object.entries(stored.peers).slice(0, MAX_PEERS)) {
        if (peerId === init.self || !init.isMember(peerId) || !Array.isArray(e?.a)) continue
        const addrs = e.a
          .filter((a): a is string => typeof a === 'string')
          .map(normaliseAddr)
          .filter((a): a is string => a !== undefined)
          .slice(0, MAX_ADDRS)
        if (addrs.length > 0) book.set(peerId, { addrs, seen: typeof e.t === 'number' ? e.t : 0 })
      }
      log('loaded %d peers', book.size)
    } catch (err) {
      log('ignoring an unreadable address book: %s', (err as Error).message)
    }
  }

  return {
    async start() {
      if (started) return
      await load()
      started = true
      if (dirty) scheduleSave()
      timer = setInterval(redialNow, init.redialMs ?? ADDRESS_REDIAL_MS)
      timer.unref()
      redialNow()
    },
    async stop() {
      if (!started) return
      started = false
      if (timer !== undefined) clearInterval(timer)
      if (saveTimer !== undefined) clearTimeout(saveTimer)
      timer = undefined
      saveTimer = undefined
      await flush()
    },
    remember,
    redialNow,
    entries: () => [...book].map(([peerId, e]) => ({ peerId, addrs: [...e.addrs], seen: e.seen })),
    flush,
  }
}
