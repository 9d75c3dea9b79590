import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'

/** A batch is split into chunks of at least this many events, one per worker. */
export const DEFAULT_VERIFY_MIN_CHUNK = 32

/** What a pool user logs through (a debug logger with an error channel). */
export interface VerifyPoolLogger {
  (formatter: string, ...args: unknown[]): void
  error(formatter: string, ...args: unknown[]): void
}

/**
 * A chunk of wire events packed into one transferred buffer: event i is buf[offsets[i], offsets[i+1]).
 * `want`: per-event validity flags (central's ingest), or the digests of every valid signature
 * check (`signatureDigest`, for `withPreverified`: a terminal's catch-up).
 */
export interface VerifyRequest {
  id: number
  buf: ArrayBuffer
  offsets: Uint32Array
  want: 'flags' | 'digests'
}

export type VerifyResponse =
  | { id: number; flags: Uint8Array }
  | { id: number; digests: string[] }
  | { id: number; error: string }

export interface VerifyPoolInit {
  /** worker threads (default: the cores available to this process) */
  size?: number
  /** a batch is split into chunks of at least this many events, one per worker (default 32) */
  minChunk?: number
  log?: VerifyPoolLogger
}

interface Pending {
  resolve: (res: Uint8Array | string[]) => void
  reject: (err: Error) => void
  events: number
}

interface Slot {
  worker: Worker
  pending: Map<number, Pending>
  /** events sent to it and not answered yet: a chunk goes to the least loaded worker */
  load: number
}

/**
 * Per event of a batch: the validity of each signature it carries, in the engine's order (own
 * signature; for a Commit then the embedded reservation's and each ack's), or undefined when it
 * does not decode (the engine rejects it itself).
 */
export type SignatureChecks = Array<boolean[] | undefined>

/**
 * Ed25519 verification of sync batches on worker threads: the main thread keeps serving HTTP and
 * the store while every core verifies. Answers are pure (key, message, signature) → valid, so the
 * engine using them instead of verifying inline changes no outcome. start/stop are idempotent;
 * stop terminates every thread and fails what was still in flight.
 */
export class VerifyPool {
  private readonly size: number
  private readonly minChunk: number
  private readonly log: VerifyPoolLogger | undefined
  private slots: Slot[] = []
  private nextId = 1

  constructor(init: VerifyPoolInit = {}) {
    this.size = Math.max(1, init.size ?? availableParallelism())
    this.minChunk = Math.max(1, init.minChunk ?? DEFAULT_VERIFY_MIN_CHUNK)
    this.log = init.log
  }

  get running(): boolean {
    return this.slots.length > 0
  }

  /** worker threads alive now */
  get threads(): number {
    return this.slots.length
  }

  start(): void {
    if (this.slots.length > 0) return
    for (let i = 0; i < this.size; i++) this.slots.push(this.spawn())
    this.log?.('verification pool started: %d worker threads', this.size)
  }

  async stop(): Promise<void> {
    const slots = this.slots
    if (slots.length === 0) return
    this.slots = []
    await Promise.all(
      slots.map(async (s) => {
        this.failAll(s, new Error('verification pool stopped'))
        await s.worker.terminate()
      }),
    )
    this.log?.('verification pool stopped')
  }

  /** Check every signature of every event of the batch on the worker threads. */
  async check(events: Uint8Array[]): Promise<SignatureChecks> {
    if (this.slots.length === 0) throw new Error('verification pool not started')
    if (events.length === 0) return []
    const chunks = Math.max(1, Math.min(this.slots.length, Math.floor(events.length / this.minChunk)))
    const per = Math.ceil(events.length / chunks)
    const parts: Promise<Uint8Array>[] = []
    for (let i = 0; i < events.length; i += per)
      parts.push(this.send(events.slice(i, i + per), 'flags') as Promise<Uint8Array>)
    const out: SignatureChecks = []
    for (const flags of await Promise.all(parts)) {
      let at = 0
      while (at < flags.length) {
        const k = flags[at++] ?? 0
        if (k === 0) out.push(undefined)
        else out.push(Array.from(flags.subarray(at, at + k), (f) => f === 1))
        at += k
      }
    }
    if (out.length !== events.length) throw new Error('verification worker answered a different batch')
    return out
  }

  /**
   * Verify every signature of every event on the worker threads; the digests of the valid ones,
   * for `withPreverified` around the synchronous code that validates these events.
   */
  async digests(events: Uint8Array[]): Promise<string[]> {
    if (this.slots.length === 0) throw new Error('verification pool not started')
    if (events.length === 0) return []
    const chunks = Math.max(1, Math.min(this.slots.length, Math.floor(events.length / this.minChunk)))
    const per = Math.ceil(events.length / chunks)
    const parts: Promise<string[]>[] = []
    for (let i = 0; i < events.length; i += per)
      parts.push(this.send(events.slice(i, i + per), 'digests') as Promise<string[]>)
    return (await Promise.all(parts)).flat()
  }

  private send(events: Uint8Array[], want: VerifyRequest['want']): Promise<Uint8Array | string[]> {
    const slot = this.slots.reduce((a, b) => (b.load < a.load ? b : a))
    const offsets = new Uint32Array(events.length + 1)
    let total = 0
    for (let i = 0; i < events.length; i++) {
      offsets[i] = total
      total += events[i]?.byteLength ?? 0
    }
    offsets[events.length] = total
    const packed = new Uint8Array(total)
    for (let i = 0; i < events.length; i++) packed.set(events[i] as Uint8Array, offsets[i])
    const id = this.nextId++
    const req: VerifyRequest = { id, buf: packed.buffer, offsets, want }
    return new Promise<Uint8Array | string[]>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject, events: events.length })
      slot.load += events.length
      slot.worker.postMessage(req, [packed.buffer, offsets.buffer])
    })
  }

  private spawn(): Slot {
    const worker = new Worker(new URL('./verify-worker.js', import.meta.url))
    const slot: Slot = { worker, pending: new Map(), load: 0 }
    worker.on('message', (res: VerifyResponse) => {
      const p = slot.pending.get(res.id)
      if (p === undefined) return
      slot.pending.delete(res.id)
      slot.load -= p.events
      if ('error' in res) p.reject(new Error(`verification worker: ${res.error}`))
      else p.resolve('flags' in res ? res.flags : res.digests)
    })
    const lost = (err: Error): void => {
      this.failAll(slot, err)
      // a thread that died is replaced while the pool runs; what it held was failed above
      const i = this.slots.indexOf(slot)
      if (i >= 0) {
        this.log?.error('verification worker lost (%s), replacing it', err.message)
        this.slots[i] = this.spawn()
      }
    }
    worker.on('error', lost)
    worker.on('exit', (code) => lost(new Error(`verification worker exited with code ${code}`)))
    return slot
  }

  private failAll(slot: Slot, err: Error): void {
    for (const p of slot.pending.values()) p.reject(err)
    slot.pending.clear()
    slot.load = 0
  }
}
