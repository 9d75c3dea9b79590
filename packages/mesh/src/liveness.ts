import { setMaxListeners } from 'node:events'
import type { Connection } from '@libp2p/interface'
import { AdaptiveTimeout } from '@libp2p/utils'
import debug from 'debug'
import { PING_INTERVAL_MS, PING_TIMEOUT_MAX_MS, PING_TIMEOUT_MIN_MS } from './constants.js'

const log = debug('nullmesh:mesh:liveness')

/**
 * Connection liveness (docs/protocol.md, "Liveness"): every `intervalMs` each open connection is
 * pinged with a Yamux ping frame (12 bytes on the connection's control channel, answered by the
 * peer's muxer as it reads it) and aborted if no answer comes within the timeout, which adapts to
 * the measured round trips between `minTimeoutMs` and `maxTimeoutMs`. It replaces libp2p's
 * connection monitor, which pinged over a new stream each time (a Yamux stream opened and closed,
 * multistream-select, 32 bytes each way, an AbortSignal and loggers per ping): same interval, same
 * timeout bounds, same action on failure, so a silent peer is noticed as before.
 */
export interface LivenessInit {
  /** the connections to watch (libp2p's, read at each tick) */
  connections: () => Connection[]
  intervalMs?: number
  minTimeoutMs?: number
  maxTimeoutMs?: number
}

export interface Liveness {
  start(): void
  stop(): void
  /** ping every open connection now (tests); resolves when every ping answered or failed */
  tick(): Promise<void>
}

/** The muxer's own ping, if the connection has one (Yamux has; libp2p's Connection does not type it). */
type PingingMuxer = { ping?: (options?: { signal?: AbortSignal }) => Promise<number> }

export function createLiveness(init: LivenessInit): Liveness {
  const intervalMs = init.intervalMs ?? PING_INTERVAL_MS
  const timeout = new AdaptiveTimeout({
    minTimeout: init.minTimeoutMs ?? PING_TIMEOUT_MIN_MS,
    maxTimeout: init.maxTimeoutMs ?? PING_TIMEOUT_MAX_MS,
  })
  let timer: NodeJS.Timeout | undefined
  let stopping: AbortController | undefined
  /** connections with a ping in flight: a slow one is not pinged twice at once */
  const inFlight = new WeakSet<Connection>()
  let warned = false

  async function pingOne(conn: Connection, signal: AbortSignal): Promise<void> {
    const muxer = (conn as unknown as { muxer?: PingingMuxer }).muxer
    if (typeof muxer?.ping !== 'function') {
      // not a muxer we know: nothing to ping it with (never the case with our Yamux)
      if (!warned) log('connection to %s has no muxer ping: not watched', conn.remotePeer.toString())
      warned = true
      return
    }
    if (inFlight.has(conn)) return
    inFlight.add(conn)
    const t = timeout.getTimeoutSignal({ signal })
    try {
      conn.rtt = await muxer.ping({ signal: t })
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
      inFlight.delete(conn)
    }
  }

  async function tick(): Promise<void> {
    const signal = stopping?.signal ?? new AbortController().signal
    await Promise.all(init.connections().map((c) => (c.status === 'open' ? pingOne(c, signal) : undefined)))
  }

  return {
    start() {
      if (timer !== undefined) return
      stopping = new AbortController()
      // one listener per ping in flight: as many as connections
      setMaxListeners(Number.POSITIVE_INFINITY, stopping.signal)
      timer = setInterval(() => void tick(), intervalMs)
      timer.unref()
    },
    stop() {
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
      stopping?.abort()
      stopping = undefined
    },
    tick,
  }
}
