import { DEFAULT_ISSUER_RETRY_MS, DEFAULT_SETTLE_BATCH, DEFAULT_SETTLE_CONCURRENCY } from './constants.js'
import type { Engine, SettleOutcome } from './engine.js'
import type { Logger } from './logger.js'
import type { CentralStore } from './store.js'
import type { AbortOptions } from './types.js'

export interface SettleSummary {
  /** payments that reached completed / failed during this call */
  completed: number
  failed: number
  /** still queued or processing afterwards (issuer unreachable, retry pending) */
  pending: number
}

export interface SettlerInit {
  engine: Engine
  store: CentralStore
  now: () => number
  intervalMs: number
  log: Logger
  /** issuer calls in flight at once */
  concurrency?: number
  issuerRetryMs?: number
  /** payments moved per transition batch (one fsync each) */
  batchSize?: number
}

/** The settlement loop: drives every queued or processing payment to completed or failed. */
export class Settler {
  private readonly engine: Engine
  private readonly store: CentralStore
  private readonly now: () => number
  private readonly intervalMs: number
  private readonly log: Logger
  private readonly concurrency: number
  private readonly retryMs: number
  private readonly batchSize: number
  /** paymentId → not before (after an issuer failure) */
  private readonly backoff = new Map<string, number>()
  private readonly inflight = new Set<string>()
  private controller: AbortController | undefined
  private timer: NodeJS.Timeout | undefined
  private pass: Promise<SettleSummary> | undefined
  /** every pass in flight (the loop's and drain()'s), for stop() */
  private readonly passes = new Set<Promise<unknown>>()
  private again = false
  private running = false

  constructor(init: SettlerInit) {
    this.engine = init.engine
    this.store = init.store
    this.now = init.now
    this.intervalMs = init.intervalMs
    this.log = init.log
    this.concurrency = init.concurrency ?? DEFAULT_SETTLE_CONCURRENCY
    this.retryMs = init.issuerRetryMs ?? DEFAULT_ISSUER_RETRY_MS
    this.batchSize = init.batchSize ?? DEFAULT_SETTLE_BATCH
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.controller = new AbortController()
    if (this.intervalMs > 0) {
      this.timer = setInterval(() => this.kick(), this.intervalMs)
      this.timer.unref()
    }
    // re-drive whatever a previous run left queued or processing
    this.kick()
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    this.controller?.abort()
    await Promise.allSettled([...this.passes])
  }

  kick(): void {
    // intervalMs 0: manual mode, settlement only runs in drain() (settleNow)
    if (!this.running || this.intervalMs <= 0) return
    if (this.pass !== undefined) {
      this.again = true
      return
    }
    this.pass = this.runPass(this.controller?.signal, false)
    this.pass
      .catch((err: unknown) => {
        this.log.error('settlement pass failed: %o', err)
      })
      .finally(() => {
        this.pass = undefined
        if (this.again && this.running) {
          this.again = false
          this.kick()
        }
      })
  }

  /** Settle everything settleable now (ignoring retry backoff) and report what happened. */
  async drain(opts: AbortOptions = {}): Promise<SettleSummary> {
    const total: SettleSummary = { completed: 0, failed: 0, pending: 0 }
    for (;;) {
      await this.pass?.catch(() => {})
      opts.signal?.throwIfAborted()
      const signal =
        this.controller === undefined || opts.signal === undefined
          ? (opts.signal ?? this.controller?.signal)
          : AbortSignal.any([opts.signal, this.controller.signal])
      const pass = this.runPass(signal, true)
      this.pass = pass
      let s: SettleSummary
      try {
        s = await pass
      } finally {
        if (this.pass === pass) this.pass = undefined
      }
      total.completed += s.completed
      total.failed += s.failed
      total.pending = s.pending
      if (s.completed + s.failed === 0) return total
    }
  }

  private runPass(signal: AbortSignal | undefined, ignoreBackoff: boolean): Promise<SettleSummary> {
    const pass = this.settlePass(signal, ignoreBackoff)
    this.passes.add(pass)
    const untrack = (): void => {
      this.passes.delete(pass)
    }
    pass.then(untrack, untrack)
    return pass
  }

  private async settlePass(signal: AbortSignal | undefined, ignoreBackoff: boolean): Promise<SettleSummary> {
    const summary: SettleSummary = { completed: 0, failed: 0, pending: 0 }
    const ids = await this.store.listActivePayments()
    const now = this.now()
    const todo = ids.filter(
      (id) => !this.inflight.has(id) && (ignoreBackoff || (this.backoff.get(id) ?? 0) <= now),
    )
    summary.pending = ids.length - todo.length
    for (let i = 0; i < todo.length && signal?.aborted !== true; i += this.batchSize) {
      const chunk = todo.slice(i, i + this.batchSize)
      for (const id of chunk) this.inflight.add(id)
      let outcomes: Map<string, SettleOutcome>
      try {
        outcomes = await this.engine.settleMany(chunk, {
          concurrency: this.concurrency,
          ...(signal === undefined ? {} : { signal }),
        })
      } catch (err: unknown) {
        this.log.error('settling %d payments failed: %o', chunk.length, err)
        outcomes = new Map(chunk.map((id) => [id, 'pending' as const]))
      } finally {
        for (const id of chunk) this.inflight.delete(id)
      }
      for (const [id, outcome] of outcomes) {
        if (outcome === 'pending') {
          this.backoff.set(id, this.now() + this.retryMs)
          summary.pending++
        } else {
          this.backoff.delete(id)
          if (outcome === 'completed') summary.completed++
          else if (outcome === 'failed') summary.failed++
        }
      }
    }
    if (summary.completed + summary.failed > 0)
      this.log('settled %d completed, %d failed', summary.completed, summary.failed)
    return summary
  }
}
