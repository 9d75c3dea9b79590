import { availableParallelism } from 'node:os'
import { VerifyPool } from '@nullmesh/protocol'
import debug from 'debug'
import {
  CATCHUP_VERIFY_IDLE_MS,
  CATCHUP_VERIFY_MIN_EVENTS,
  DEFAULT_CATCHUP_VERIFY_THREADS,
} from './constants.js'

const log = Object.assign(debug('nullmesh:mesh:verify'), { error: debug('nullmesh:mesh:verify:error') })

export interface CatchupVerifierInit {
  /** worker threads (default: one fewer than the cores, at least one); 0: verify inline */
  threads?: number
  idleMs?: number
  minEvents?: number
}

/**
 * Verifies catch-up frames' signatures on worker threads, ahead of the core: the adapter asks for a
 * frame's digests as it arrives and hands them to `withPreverified` around the core's synchronous
 * validation of that frame, so verification of frame k+1 overlaps the validation, apply and write
 * of frame k. The answers are pure (key, message, signature) → valid; anything the worker did not
 * vouch for is verified inline as before, so no outcome changes. The pool starts on first use and
 * stops when idle.
 */
export class CatchupVerifier {
  private readonly threads: number
  private readonly idleMs: number
  private readonly minEvents: number
  private pool: VerifyPool | undefined
  private idle: ReturnType<typeof setTimeout> | undefined
  private inflight = 0
  private stopped = false

  constructor(init: CatchupVerifierInit = {}) {
    const t = init.threads ?? DEFAULT_CATCHUP_VERIFY_THREADS
    this.threads = t < 0 ? Math.max(1, availableParallelism() - 1) : t
    this.idleMs = init.idleMs ?? CATCHUP_VERIFY_IDLE_MS
    this.minEvents = init.minEvents ?? CATCHUP_VERIFY_MIN_EVENTS
  }

  /** Digests of the frame's valid signatures; [] (verify inline) when off, small, or on any failure. */
  async digests(frame: Uint8Array[]): Promise<string[]> {
    if (this.threads === 0 || this.stopped || frame.length < this.minEvents) return []
    if (this.idle !== undefined) clearTimeout(this.idle)
    this.idle = undefined
    if (this.pool === undefined) {
      this.pool = new VerifyPool({ size: this.threads, minChunk: this.minEvents, log })
      this.pool.start()
    }
    const pool = this.pool
    this.inflight++
    try {
      return await pool.digests(frame)
    } catch (err: unknown) {
      log.error('catch-up frame verified inline: %s', (err as Error).message)
      return []
    } finally {
      this.inflight--
      if (this.inflight === 0 && !this.stopped) {
        this.idle = setTimeout(() => void this.release(), this.idleMs)
        this.idle.unref?.()
      }
    }
  }

  private async release(): Promise<void> {
    this.idle = undefined
    if (this.inflight > 0) return
    const pool = this.pool
    this.pool = undefined
    await pool?.stop()
  }

  /** idempotent; frames asked for after this are verified inline */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.idle !== undefined) clearTimeout(this.idle)
    this.idle = undefined
    const pool = this.pool
    this.pool = undefined
    await pool?.stop()
  }
}
