// Connections without a full mesh (issue 12, docs/protocol.md "Connections"). A terminal keeps
// `targetConnections` connections for the gossip mesh, dials a card's custodian-group members on
// demand, and closes idle connections above the target so that the members who need it can still
// connect. Every dial of the node goes through here: static peers, mDNS sightings, the address
// book (rejoin.ts) and the core's on-demand dials. libp2p's connection manager refuses inbound
// connections at `maxConnections`; the dialer keeps its own dials within the same limit.
import type { Connection, Libp2p, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import debug from 'debug'
import { CONNECTION_IDLE_MS, CONNECTION_TICK_MS, DIAL_TIMEOUT_MS } from './constants.js'
import type { DialResult } from './core/reachability.js'
import { PNET_NONCE_EXCHANGE } from './pnet.js'

const log = debug('nullmesh:mesh:dialer')

export interface DialerInit {
  /** a started libp2p node */
  libp2p: Libp2p
  /** is this peer id an enrolled terminal now? Others are never dialled. */
  isMember: (peerId: string) => boolean
  /** the connection limit (also libp2p's connectionManager.maxConnections) */
  maxConnections: number
  /** connections kept for the gossip mesh; idle ones above it are closed */
  targetConnections: number
  /** static peers: multiaddrs ending in /p2p/<peer id> */
  peers?: string[]
  /**
   * peers dialled first and never closed as idle: our neighbours on a ring over the roster, so
   * that the gossip graph stays connected however the other connections come and go
   */
  neighbours?: string[]
  /**
   * a peer being greeted (hello and the initial catch-up): its connection is never closed as idle.
   * Under load a greeting can outlast the eviction grace, and closing it then wastes the handshake,
   * the hello and the catch-up, and leaves the peer to be dialled again (a venue that churns).
   */
  busy?: (peerId: string) => boolean
  /**
   * on-demand dials in flight at once (default: no bound). Beyond it a dial is answered `refused`
   * without trying (inconclusive: the core waits and asks again, it never counts the peer as
   * unreachable). A terminal with an empty ledger asks for every roster member it has not learned
   * its history from (N − q + 1 of them: 25 at 50 terminals) on each anti-entropy turn; at a
   * venue's first start every terminal does, and the storm of dials, most of them beyond the
   * connection limit, is what kept a 50-terminal venue from forming on a loaded host.
   */
  onDemandAtOnce?: number | (() => number)
  /** while true nothing is dialled (a simulated partition) */
  paused?: () => boolean
  /** a connection without barrier traffic for this long may be closed above `closeIdleAbove` */
  idleMs?: number
  /**
   * idle connections are closed only above this many (default: halfway between the target and the
   * limit). Dialling up to the target and closing down to the same number churned an idle venue:
   * a peer's inbound connection put it over the target, it closed its least recently used one,
   * whose other end fell under the target and dialled someone else, and so on — every new
   * connection a handshake, a hello and a catch-up (docs/benchmarks.md, "Idle cost of a terminal").
   * Between the two the count is left alone; at the limit an idle connection still gives way.
   */
  closeIdleAbove?: number
  /** an idle connection may give way to an on-demand dial after this long (default idleMs) */
  evictIdleMs?: number
  tickMs?: number
}

export interface Dialer {
  start(): void
  stop(): Promise<void>
  /** addresses of an enrolled peer (static, mDNS, address book); dialled if under the target */
  discovered(peerId: string, addrs: readonly (Multiaddr | string)[]): Promise<void>
  /** connect to a group member now, within `signal`; never throws */
  dialOnDemand(peerId: string, opts: { signal: AbortSignal }): Promise<DialResult>
  /** barrier traffic with this peer: its connection is in use */
  touch(peerId: string): void
  /** may an inbound connection be accepted now (counting our own dials in flight)? */
  acceptInbound(): boolean
  /** dial toward the target and close idle connections above it, now */
  maintain(): void
  /** distinct peers connected */
  connected(): number
}

/** Dial errors that say the peer is down or cut off; anything else means a live host said no. */
const UNREACHABLE =
  /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EHOSTDOWN|ENETDOWN|EADDRNOTAVAIL|ETIMEDOUT|timed? ?out|aborted|NoValidAddresses|no valid addresses|DialDenied/i

export function classifyDialError(err: unknown): 'unreachable' | 'refused' {
  const parts: string[] = []
  const walk = (e: unknown, depth: number): void => {
    if (e === null || e === undefined || depth > 4) return
    const x = e as { name?: string; code?: string; message?: string; errors?: unknown[]; cause?: unknown }
    parts.push(`${x.name ?? ''} ${x.code ?? ''} ${x.message ?? ''}`)
    for (const inner of x.errors ?? []) walk(inner, depth + 1)
    walk(x.cause, depth + 1)
  }
  walk(err, 0)
  return UNREACHABLE.test(parts.join(' | ')) ? 'unreachable' : 'refused'
}

export function createDialer(init: DialerInit): Dialer {
  const node = init.libp2p
  const self = node.peerId.toString()
  const idleMs = init.idleMs ?? CONNECTION_IDLE_MS
  const evictIdleMs = init.evictIdleMs ?? idleMs
  const closeAbove = Math.max(
    init.targetConnections,
    init.closeIdleAbove ?? Math.floor((init.targetConnections + init.maxConnections) / 2),
  )
  /** addresses known per peer id (besides the peer store, which identify fills) */
  const known = new Map<string, Multiaddr[]>()
  /** last barrier traffic per peer id (ms) */
  const lastUsed = new Map<string, number>()
  /** peers being dialled (any reason): each holds one slot under the limit */
  const dialing = new Map<string, Promise<DialResult>>()
  /** the ones of them dialled on demand (bounded by onDemandAtOnce) */
  const onDemand = new Set<string>()
  /**
   * inbound connections accepted but not open yet (libp2p counts only open ones: concurrent
   * upgrades would pass its limit together), each expiring after a dial's time
   */
  const inboundPending: number[] = []
  const pendingInbound = (): number => {
    const now = Date.now()
    while (inboundPending.length > 0 && inboundPending[0]! < now - DIAL_TIMEOUT_MS) inboundPending.shift()
    return inboundPending.length
  }
  /** connections open or on their way: what the limit bounds */
  const slotsUsed = () => node.getConnections().length + dialing.size + pendingInbound()
  let timer: NodeJS.Timeout | undefined
  let started = false
  const keep_ = new Set(init.neighbours ?? [])

  for (const addr of init.peers ?? []) {
    const ma = multiaddr(addr)
    const id = ma.getComponents().find((c) => c.name === 'p2p')?.value
    if (id !== undefined) known.set(id, [...(known.get(id) ?? []), ma])
  }

  const peersConnected = (): Set<string> => new Set(node.getConnections().map((c) => c.remotePeer.toString()))
  const isConnected = (id: string) => node.getConnections(peerIdOf(id)).length > 0
  /** parsed once: the address book asks about every peer it knows each second (rejoin.ts) */
  const parsedIds = new Map<string, PeerId>()
  const peerIdOf = (id: string): PeerId => {
    let p = parsedIds.get(id)
    if (p === undefined) {
      p = peerIdFromString(id)
      if (parsedIds.size < 4096) parsedIds.set(id, p)
    }
    return p
  }
  /** the last address list each peer was `discovered` with: the same list again merges nothing new */
  const lastDiscovered = new Map<string, string>()
  const used = (c: Connection) => Math.max(lastUsed.get(c.remotePeer.toString()) ?? 0, c.timeline.open)

  async function addressesOf(id: string): Promise<Multiaddr[]> {
    const out = [...(known.get(id) ?? [])]
    try {
      const peer = await node.peerStore.get(peerIdOf(id))
      for (const a of peer.addresses) out.push(a.multiaddr.encapsulate(`/p2p/${id}`))
    } catch {
      // not in the peer store: only what we were told
    }
    const seen = new Set<string>()
    return out.filter((a) => {
      const k = a.toString()
      if (seen.has(k)) return false
      seen.add(k)
      return true
    })
  }

  /**
   * Close connections idle for at least `minIdle`, least recently used peer first, until at most
   * `keep` connections remain (the limit counts connections, not peers). A ring neighbour keeps
   * one connection: only its duplicates (two peers dialling each other at once) are closed.
   * `atOnce`: abort them (the slot is free at once) rather than close them gracefully.
   */
  function closeIdle(keep: number, minIdle: number, except?: string, atOnce = false): number {
    const conns = node.getConnections()
    let excess = conns.length - keep
    if (excess <= 0) return 0
    const now = Date.now()
    const byPeer = new Map<string, Connection[]>()
    for (const c of conns) {
      const id = c.remotePeer.toString()
      byPeer.set(id, [...(byPeer.get(id) ?? []), c])
    }
    const units: { id: string; cs: Connection[]; last: number }[] = []
    for (const [id, cs] of byPeer) {
      if (
        id === except ||
        dialing.has(id) ||
        init.busy?.(id) === true ||
        cs.some((c) => now - used(c) < minIdle)
      )
        continue
      const last = Math.max(...cs.map(used))
      if (!keep_.has(id)) units.push({ id, cs, last })
      else if (cs.length > 1)
        units.push({ id, cs: [...cs].sort((a, b) => a.timeline.open - b.timeline.open).slice(1), last })
    }
    units.sort((a, b) => a.last - b.last)
    let closed = 0
    for (const u of units) {
      if (excess <= 0) break
      excess -= u.cs.length
      closed += u.cs.length
      log('closing %d idle connection(s) to %s', u.cs.length, u.id.slice(-8))
      for (const c of u.cs)
        if (atOnce) c.abort(new Error('connection limit: idle connection closed for another'))
        else c.close().catch((err: unknown) => c.abort(err as Error))
    }
    return closed
  }

  /** one slot under the limit for a new outbound connection, making room if we may */
  function haveSlot(minIdle: number): boolean {
    if (slotsUsed() < init.maxConnections) return true
    const keep = init.maxConnections - 1 - dialing.size - pendingInbound()
    return closeIdle(Math.max(0, keep), minIdle, undefined, true) > 0
  }

  function dial(id: string, signal: AbortSignal): Promise<DialResult> {
    const running = dialing.get(id)
    if (running !== undefined) return running
    const p = (async (): Promise<DialResult> => {
      const addrs = await addressesOf(id)
      if (addrs.length === 0) return 'unreachable'
      // the peer's host accepted a TCP connection (our protector's first step): it is up
      let answered = false
      const onProgress = (evt: Event) => {
        if (evt.type === PNET_NONCE_EXCHANGE) answered = true
      }
      try {
        await node.dial(addrs as never, { signal, onProgress } as never)
        return 'connected'
      } catch (err) {
        let result = classifyDialError(err)
        // a dial that timed out after the host accepted TCP met a slow peer (a loaded event loop),
        // not a down one: inconclusive, never evidence for the isolated rules
        if (result === 'unreachable' && answered) result = 'refused'
        log(
          'dial %s failed (%s%s): %s',
          id.slice(-8),
          result,
          answered ? ', host answered' : '',
          (err as Error).message,
        )
        return result
      }
    })().finally(() => dialing.delete(id))
    dialing.set(id, p)
    return p
  }

  function maintain(): void {
    if (!started || init.paused?.() === true) return
    const connected = peersConnected()
    if (connected.size > closeAbove) closeIdle(closeAbove, idleMs)
    let want = init.targetConnections - connected.size - dialing.size
    if (want <= 0 && [...keep_].every((id) => connected.has(id) || dialing.has(id) || !known.has(id))) return
    // the ring neighbours first, then the others in random order (every terminal picks others)
    const candidates = [...known.keys()].filter(
      (id) => id !== self && !keep_.has(id) && !connected.has(id) && !dialing.has(id) && init.isMember(id),
    )
    for (let i = candidates.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      ;[candidates[i], candidates[j]] = [candidates[j]!, candidates[i]!]
    }
    const ring = [...keep_].filter(
      (id) => known.has(id) && !connected.has(id) && !dialing.has(id) && init.isMember(id),
    )
    for (const id of ring) {
      if (!haveSlot(idleMs)) break
      want--
      void dial(id, AbortSignal.timeout(DIAL_TIMEOUT_MS))
    }
    for (const id of candidates) {
      if (want <= 0 || !haveSlot(idleMs)) break
      want--
      void dial(id, AbortSignal.timeout(DIAL_TIMEOUT_MS))
    }
  }

  const onOpen = (evt: CustomEvent<Connection>) => {
    const c = evt.detail
    const id = c.remotePeer.toString()
    if (c.direction === 'inbound') inboundPending.shift()
    // a connection raced others past the limit (a safety net: the slots above should prevent it):
    // make room at once, or refuse this one
    if (node.getConnections().length > init.maxConnections) {
      const others = node.getConnections(c.remotePeer).filter((x) => x !== c)
      if (others.length > 0 || closeIdle(init.maxConnections, evictIdleMs, id) === 0) {
        log('over the limit: closing the new connection to %s', id.slice(-8))
        c.close().catch((err: unknown) => c.abort(err as Error))
      }
    }
  }

  return {
    start() {
      if (started) return
      started = true
      node.addEventListener('connection:open', onOpen)
      timer = setInterval(maintain, init.tickMs ?? CONNECTION_TICK_MS)
      timer.unref()
      maintain()
    },
    async stop() {
      if (!started) return
      started = false
      node.removeEventListener('connection:open', onOpen)
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
      await Promise.allSettled([...dialing.values()])
    },
    async discovered(peerId, addrs) {
      if (peerId === self || !init.isMember(peerId)) return
      const heard = addrs.map(String).join(' ')
      if (lastDiscovered.get(peerId) !== heard) {
        const list = addrs.map((a) => (typeof a === 'string' ? multiaddr(a) : a))
        const merged = new Map<string, Multiaddr>()
        for (const a of [...list, ...(known.get(peerId) ?? [])]) {
          const full = a.getComponents().some((c) => c.name === 'p2p') ? a : a.encapsulate(`/p2p/${peerId}`)
          merged.set(full.toString(), full)
        }
        known.set(peerId, [...merged.values()].slice(0, 8))
        lastDiscovered.set(peerId, heard)
      }
      if (!started || init.paused?.() === true || isConnected(peerId) || dialing.has(peerId)) return
      const full = peersConnected().size + dialing.size >= init.targetConnections
      if ((full && !keep_.has(peerId)) || !haveSlot(idleMs)) return
      await dial(peerId, AbortSignal.timeout(DIAL_TIMEOUT_MS))
    },
    async dialOnDemand(peerId, opts) {
      if (!started || init.paused?.() === true) return 'unreachable'
      if (peerId === self || !init.isMember(peerId)) return 'unreachable'
      if (isConnected(peerId)) return 'connected'
      if (!dialing.has(peerId)) {
        // enough on-demand dials under way: this one waits for its turn (never "unreachable")
        const atOnce = typeof init.onDemandAtOnce === 'function' ? init.onDemandAtOnce() : init.onDemandAtOnce
        if (onDemand.size >= (atOnce ?? Number.POSITIVE_INFINITY)) return 'refused'
        // no room, and nothing idle long enough to give way: we cannot tell whether the peer is up
        if (!haveSlot(evictIdleMs)) return 'refused'
      }
      onDemand.add(peerId)
      try {
        return await dial(peerId, opts.signal)
      } finally {
        onDemand.delete(peerId)
      }
    },
    touch(peerId) {
      lastUsed.set(peerId, Date.now())
    },
    acceptInbound() {
      // at the limit, an idle connection gives way: a group member dialling us on demand must get
      // in (a refusal leaves its card undecided: declined, never isolated, but not approved)
      if (!haveSlot(evictIdleMs)) return false
      inboundPending.push(Date.now())
      return true
    },
    maintain,
    connected: () => peersConnected().size,
  }
}

/**
 * Our two neighbours on a ring of the roster's peer ids (sorted): each terminal keeps its
 * successor and its predecessor connected, so the gossip graph is connected while every
 * terminal runs, whatever else the connection limit closes.
 */
export function ringNeighbours(self: string, roster: readonly (string | undefined)[]): string[] {
  const ids = [...new Set(roster.filter((id): id is string => id !== undefined))].sort()
  const i = ids.indexOf(self)
  if (i < 0 || ids.length < 2) return []
  return [...new Set([ids[(i + 1) % ids.length]!, ids[(i - 1 + ids.length) % ids.length]!])]
}

/**
 * The address a node's outbound TCP connections start from, or undefined for the kernel's choice.
 * Linux routes all of 127.0.0.0/8 to loopback but picks 127.0.0.1 as the source of every loopback
 * connection, so terminals that listen on distinct loopback addresses (one host each, as in the
 * sim and the `scale` bench figure) would still all look like one host to each other — and
 * libp2p's inbound rate limit, counted per remote host, would throttle the whole venue as one. A
 * node whose listen addresses are all one loopback IPv4 host dials from that host; any other
 * listen configuration (a LAN address, a wildcard, several hosts) leaves the source to the kernel.
 */
export function loopbackDialSource(listen: readonly string[]): string | undefined {
  const hosts = new Set<string>()
  for (const a of listen) {
    const m = /^\/ip4\/(127\.\d{1,3}\.\d{1,3}\.\d{1,3})\/tcp\//.exec(a)
    if (m === null) return undefined
    hosts.add(m[1]!)
  }
  return hosts.size === 1 ? [...hosts][0] : undefined
}
