import debug from 'debug'
import { CONNECTIVITY_DEFAULTS, LOG_NAMESPACE } from './constants.js'

const log = debug(`${LOG_NAMESPACE}:connectivity`)

export interface BackoffOptions {
  initialDelayMs: number
  maxDelayMs: number
  factor: number
  /** 0..1: each delay is multiplied by (1 − jitter × random) */
  jitter: number
}

export interface ConnectivityOptions extends BackoffOptions {
  probeIntervalMs: number
  probeTimeoutMs: number
}

/**
 * Delay before retry number `attempt` (0-based): exponential, capped, with "equal-ish" jitter
 * so that terminals that lost the link together do not all come back in the same millisecond.
 * Attempt 0 is at most `initialDelayMs`.
 */
export function backoffDelay(
  attempt: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const base = Math.min(opts.maxDelayMs, opts.initialDelayMs * opts.factor ** Math.max(0, attempt))
  return Math.max(1, Math.round(base * (1 - opts.jitter * random())))
}

export interface ConnectivityChange {
  online: boolean
  /** ms since the epoch */
  at: number
}

export interface ConnectivityEvents {
  change: CustomEvent<ConnectivityChange>
}

/**
 * Watches the central link: probes it (health check) every `probeIntervalMs` while online; after
 * a failure probes again with exponential backoff and jitter (first retry within ~100 ms, capped
 * at 5 s). Any caller that sees the link fail or succeed reports it, so a failed authorisation
 * flips the state at once. Emits `change` on every transition.
 */
export class ConnectivityMonitor extends EventTarget {
  readonly #probe: (opts: { signal: AbortSignal }) => Promise<void>
  readonly #opts: ConnectivityOptions
  #online = false
  #attempt = 0
  #timer: NodeJS.Timeout | undefined
  #dueAt = Number.POSITIVE_INFINITY
  #running = false
  #probing: Promise<void> | undefined
  #controller: AbortController | undefined

  constructor(
    probe: (opts: { signal: AbortSignal }) => Promise<void>,
    opts: Partial<ConnectivityOptions> = {},
  ) {
    super()
    this.#probe = probe
    this.#opts = { ...CONNECTIVITY_DEFAULTS, ...opts }
  }

  get online(): boolean {
    return this.#online
  }

  /** Idempotent. Probes at once. */
  start(): void {
    if (this.#running) return
    this.#running = true
    this.#controller = new AbortController()
    this.#schedule(0)
  }

  /** Idempotent. Waits for a probe in flight to end (it is aborted). */
  async stop(_opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (!this.#running) return
    this.#running = false
    this.#clear()
    this.#controller?.abort()
    await this.#probing
    this.#controller = undefined
  }

  /** Central answered a request: online. */
  reportSuccess(): void {
    if (!this.#running) return
    this.#attempt = 0
    this.#set(true)
    if (this.#timer === undefined && this.#probing === undefined) this.#schedule(this.#opts.probeIntervalMs)
  }

  /** A request to central failed: offline now, and probe again with backoff. */
  reportFailure(reason?: unknown): void {
    if (!this.#running) return
    if (this.#online)
      log('central link lost: %s', reason instanceof Error ? reason.message : String(reason ?? ''))
    this.#set(false)
    if (this.#probing === undefined) this.#schedule(backoffDelay(this.#attempt, this.#opts))
  }

  /** Resolves when online (at once if already), rejects with the signal's reason. */
  async waitOnline(opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#online) return
    opts.signal?.throwIfAborted()
    await new Promise<void>((resolve, reject) => {
      const onChange = (): void => {
        if (!this.#online) return
        cleanup()
        resolve()
      }
      const onAbort = (): void => {
        cleanup()
        reject(opts.signal?.reason)
      }
      const cleanup = (): void => {
        this.removeEventListener('change', onChange)
        opts.signal?.removeEventListener('abort', onAbort)
      }
      this.addEventListener('change', onChange)
      opts.signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  #set(online: boolean): void {
    if (online === this.#online) return
    this.#online = online
    log('central link %s', online ? 'online' : 'offline')
    this.dispatchEvent(new CustomEvent<ConnectivityChange>('change', { detail: { online, at: Date.now() } }))
  }

  #clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#dueAt = Number.POSITIVE_INFINITY
  }

  /** Probe in `ms`, unless one is already due sooner. */
  #schedule(ms: number): void {
    if (!this.#running) return
    const due = Date.now() + ms
    if (this.#timer !== undefined && this.#dueAt <= due) return
    this.#clear()
    this.#dueAt = due
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#dueAt = Number.POSITIVE_INFINITY
      this.#probing = this.#runProbe().finally(() => {
        this.#probing = undefined
      })
    }, ms)
  }

  async #runProbe(): Promise<void> {
    const controller = this.#controller
    if (controller === undefined) return
    const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(this.#opts.probeTimeoutMs)])
    let ok = false
    let failure: unknown
    try {
      await this.#probe({ signal })
      ok = true
    } catch (err: unknown) {
      failure = err
    }
    if (!this.#running) return
    if (ok) {
      this.#attempt = 0
      this.#set(true)
      this.#schedule(this.#opts.probeIntervalMs)
    } else {
      if (this.#online)
        log('central probe failed: %s', failure instanceof Error ? failure.message : String(failure))
      this.#set(false)
      this.#schedule(backoffDelay(this.#attempt++, this.#opts))
    }
  }
}
