import { setMaxListeners } from 'node:events'
import type { Connection } from '@libp2p/interface'
import { AdaptiveTimeout } from '@libp2p/utils'
import debug from 'debug'
import { LIVENESS_TICK_MS, PING_INTERVAL_MS, PING_TIMEOUT_MAX_MS, PING_TIMEOUT_MIN_MS } from './constants.js'

const log = debug('nullmesh:mesh:liveness')

/**
 * Connection liveness (docs/protocol.md, "Noticing a dead peer"). A connection on which nothing has
 * arrived from the peer for `intervalMs − tickMs` is pinged with a Yamux ping frame (12 bytes on the
 * connection's control channel, answered by the peer's muxer as it reads it) and aborted if no
 * answer comes within the timeout, which adapts to the measured round trips between `minTimeoutMs`
 * and `maxTimeoutMs`. Any bytes from the peer (a ping of its own, our ping's answer, barrier or
 * gossip traffic) prove it alive as well as a ping would, so a connection in use is never pinged and
 * an idle one is pinged by whichever end finds it quiet first: about one ping per interval per
 * connection instead of one from each end. A silent peer is aborted at most intervalMs + the timeout
 * after the last bytes it sent, as with libp2p's connection monitor, which this replaces: it pinged
 * every connection from both ends over a new stream each time (a Yamux stream opened and closed,
 * multistream-select, 32 bytes each way) and was most of an idle terminal's CPU.
 */
export interface LivenessInit {
  /** the connections to watch (libp2p's, read at each tick) */
  connections: () => Connection[]
  /** a connection quiet this long (less one tick) is pinged */
  intervalMs?: number
  tickMs?: number
  minTimeoutMs?: number
  maxTimeoutMs?: number
}

export interface Liveness {
  start(): void
  stop(): void
  /** one round now (tests): resolves when every ping it sent was answered or failed */
  tick(): Promise<void>
  /** pings sent since creation */
  pings(): number
}

/** The muxer's own ping, if the connection has one (Yamux has; libp2p's Connection does not type it). */
type PingingMuxer = { ping?: (options?: { signal?: AbortSignal }) => Promise<number> }
/** The connection's transport stream (libp2p's Connection holds it as `maConn`; not typed either). */
type Transport = { addEventListener?: EventTarget['addEventListener'] }

interface Watched {
  /** when bytes from the peer last arrived (performance.now()) */
  heard: number
  pinging: boolean
}

export function createLiveness(init: LivenessInit): Liveness {
  const intervalMs = init.intervalMs ?? PING_INTERVAL_MS
  const tickMs = Math.min(init.tickMs ?? LIVENESS_TICK_MS, intervalMs)
  const quietMs = intervalMs - tickMs
  const timeout = new AdaptiveTimeout({
    minTimeout: init.minTimeoutMs ?? PING_TIMEOUT_MIN_MS,
    maxTimeout: init.maxTimeoutMs ?? PING_TIMEOUT_MAX_MS,
  })
  const watched = new WeakMap<Connection, Watched>()
  let timer: NodeJS.Timeout | undefined
  let stopping: AbortController | undefined
  let sent = 0
  let warned = false

  /** first sight of a connection: note every chunk the transport delivers (a timestamp, nothing more) */
  function watch(conn: Connection): Watched {
    let w = watched.get(conn)
    if (w !== undefined) return w
    const entry: Watched = { heard: performance.now(), pinging: false }
    w = entry
    watched.set(conn, w)
    const transport = (conn as unknown as { maConn?: Transport }).maConn
    // without it nothing counts but our own pings' answers: the connection is pinged every interval
    transport?.addEventListener?.('message', () => {
      entry.heard = performance.now()
    })
    return w
  }

  async function pingOne(conn: Connection, w: Watched, signal: AbortSignal): Promise<void> {
    const muxer = (conn as unknown as { muxer?: PingingMuxer }).muxer
    if (typeof muxer?.ping !== 'function') {
      // not a muxer we know: nothing to ping it with (never the case with our Yamux)
      if (!warned) log('connection to %s has no muxer ping: not watched', conn.remotePeer.toString())
      warned = true
      return
    }
    w.pinging = true
    sent++
    const t = timeout.getTimeoutSignal({ signal })
    try {
      conn.rtt = await muxer.ping({ signal: t })
      w.heard = Math.max(w.heard, performance.now())
    } catch (err: unknown) {
      // stopping is not a failure of the peer
      if (signal.aborted) return
      log(
        'ping to %s failed, aborting the connection: %s',
        conn.remotePeer.toString(),
        (err as Error).message,
      )
      conn.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      timeout.cleanUp(t)
      w.pinging = false
    }
  }

  async function tick(): Promise<void> {
    const signal = stopping?.signal ?? new AbortController().signal
    const now = performance.now()
    const pings: Promise<void>[] = []
    for (const c of init.connections()) {
      if (c.status !== 'open') continue
      const w = watch(c)
      if (!w.pinging && now - w.heard >= quietMs) pings.push(pingOne(c, w, signal))
    }
    await Promise.all(pings)
  }

  return {
    start() {
      if (timer !== undefined) return
      stopping = new AbortController()
      // one listener per ping in flight: as many as connections
      setMaxListeners(Number.POSITIVE_INFINITY, stopping.signal)
      timer = setInterval(() => void tick(), tickMs)
      timer.unref()
    },
    stop() {
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
      stopping?.abort()
      stopping = undefined
    },
    tick,
    pings: () => sent,
  }
}
