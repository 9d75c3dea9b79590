import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import {
  DEFAULT_EVENT_RETENTION_MS,
  DEFAULT_WEBHOOK_LEASE_MS,
  DEFAULT_WEBHOOK_RETRY,
  DEFAULT_WEBHOOK_SCHEDULE_MS,
  DEFAULT_WEBHOOK_TOLERANCE_MS,
  WEBHOOK_SIGNATURE_HEADER,
} from './constants.js'
import type { Logger } from './logger.js'
import type { CentralStore, StoreOp } from './store.js'
import type {
  OutboxEntry,
  PaymentRecord,
  PaymentView,
  WebhookEndpoint,
  WebhookEvent,
  WebhookEventType,
} from './types.js'
import { toPaymentView } from './types.js'

export interface WebhookRetryOptions {
  /**
   * delays between attempts, ms: attempt n + 1 comes schedule[n - 1] after attempt n failed. When
   * the last fails and the endpoint has not succeeded since the event was created, the endpoint is
   * disabled. Default DEFAULT_WEBHOOK_SCHEDULE_MS: 15 attempts over about three days.
   */
  scheduleMs?: number[]
  /** the older exponential form (used when scheduleMs is not given): initialDelayMs doubling up to maxDelayMs */
  initialDelayMs?: number
  maxDelayMs?: number
  /** with initialDelayMs/maxDelayMs: attempts in the schedule (default 15) */
  maxAttempts?: number
  /** one attempt (connect, send, response) may take at most this long (default 10 s) */
  timeoutMs?: number
  /** deliveries in flight at once to one endpoint (default 4) */
  concurrency?: number
  /** how often to look for deliveries other central processes wrote (default 1 s) */
  pollMs?: number
}

/** The retry schedule these options give (delays between attempts, ms). */
export function retrySchedule(o: WebhookRetryOptions = {}): number[] {
  if (o.scheduleMs !== undefined) {
    if (o.scheduleMs.length === 0 || o.scheduleMs.some((d) => !Number.isFinite(d) || d < 0))
      throw new Error('webhookRetry.scheduleMs: one or more delays ≥ 0 ms')
    return [...o.scheduleMs]
  }
  if (o.initialDelayMs === undefined && o.maxDelayMs === undefined && o.maxAttempts === undefined)
    return [...DEFAULT_WEBHOOK_SCHEDULE_MS]
  const initial = o.initialDelayMs ?? 500
  const max = o.maxDelayMs ?? 5 * 60_000
  const attempts = Math.max(2, o.maxAttempts ?? 15)
  return Array.from({ length: attempts - 1 }, (_, i) => Math.min(max, initial * 2 ** i))
}

/**
 * `t=<unix ms>,v1=<hex HMAC-SHA256(secret, t + "." + rawBody)>`, one `v1=` per secret (during a
 * rotation: the new secret's first, then each older one still valid).
 */
export function signWebhookPayload(
  rawBody: string | Uint8Array,
  secret: string | readonly string[],
  timestampMs: number,
): string {
  const secrets = typeof secret === 'string' ? [secret] : secret
  return `t=${timestampMs},${secrets.map((s) => `v1=${hmacHex(s, timestampMs, rawBody)}`).join(',')}`
}

/** The secrets an endpoint signs with at `now`: its current one, then rotated-out ones not yet expired. */
export function signingSecrets(endpoint: WebhookEndpoint, now: number): string[] {
  return [
    endpoint.secret,
    ...(endpoint.previousSecrets ?? []).filter((p) => p.expiresAt > now).map((p) => p.secret),
  ]
}

function hmacHex(secret: string, t: number | string, rawBody: string | Uint8Array): string {
  return createHmac('sha256', secret).update(`${t}.`).update(rawBody).digest('hex')
}

export interface VerifyWebhookOptions {
  /** how old (or how far in the future) the signature's timestamp may be; default 5 minutes */
  toleranceMs?: number
  /** the receiver's clock, ms since the epoch (default Date.now()) */
  now?: number
}

/**
 * For merchants: is `header` (the nullmesh-signature header) a valid signature of exactly these
 * body bytes by `secret`, made within the tolerance? Verify the raw body before parsing it.
 */
export function verifyWebhookSignature(
  rawBody: string | Uint8Array,
  header: string | undefined | null,
  secret: string,
  opts: VerifyWebhookOptions = {},
): boolean {
  if (typeof header !== 'string' || header.length > 1024) return false
  let t: string | undefined
  const candidates: string[] = []
  for (const part of header.split(',')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const k = part.slice(0, eq).trim()
    const v = part.slice(eq + 1).trim()
    if (k === 't') t = v
    else if (k === 'v1') candidates.push(v)
  }
  if (t === undefined || !/^\d{1,16}$/.test(t) || candidates.length === 0) return false
  const tolerance = opts.toleranceMs ?? DEFAULT_WEBHOOK_TOLERANCE_MS
  const now = opts.now ?? Date.now()
  if (Math.abs(now - Number(t)) > tolerance) return false
  const expected = Buffer.from(hmacHex(secret, t, rawBody), 'hex')
  return candidates.some((c) => {
    if (!/^[0-9a-f]{64}$/i.test(c)) return false
    return timingSafeEqual(expected, Buffer.from(c, 'hex'))
  })
}

export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`
}

/** Does this endpoint receive events of this type? */
export function subscribes(endpoint: WebhookEndpoint, type: WebhookEventType): boolean {
  return endpoint.events === undefined || endpoint.events.includes(type)
}

export function webhookEventId(paymentId: string, status: string): string {
  return `evt_${createHash('sha256').update(`${paymentId}/${status}`).digest('hex').slice(0, 32)}`
}

let outboxCounter = 0

function outboxId(now: number): string {
  outboxCounter = (outboxCounter + 1) % 1_000_000
  return `${String(now).padStart(16, '0')}-${String(outboxCounter).padStart(6, '0')}-${randomBytes(4).toString('hex')}`
}

const TYPE_BY_STATUS: Partial<Record<PaymentRecord['status'], WebhookEventType>> = {
  queued: 'payment.queued',
  processing: 'payment.processing',
  completed: 'payment.completed',
  failed: 'payment.failed',
}

/**
 * The writes for a payment's transition from `previous`: its event in the event log and one outbox
 * entry per endpoint subscribed to its type (disabled ones too: they get it when re-enabled). The
 * caller puts them in the same atomic batch as the payment, so a transition is never recorded
 * without its notifications. A voided payment is a failed one to merchants (declineCode
 * 'voided'), announced only when it had announced something before (it was authorised online): one
 * never announced stays silent.
 */
export function outboxOpsFor(
  payment: PaymentRecord,
  endpoints: WebhookEndpoint[],
  now: number,
  previous?: PaymentRecord['status'],
): StoreOp[] {
  const type =
    payment.status === 'voided'
      ? previous !== undefined && TYPE_BY_STATUS[previous] !== undefined
        ? 'payment.failed'
        : undefined
      : TYPE_BY_STATUS[payment.status]
  if (type === undefined) return []
  const event: WebhookEvent = {
    id: webhookEventId(payment.paymentId, payment.status),
    type,
    createdAt: now,
    data: { payment: toPaymentView(payment) },
  }
  const body = JSON.stringify(event)
  const ops: StoreOp[] = [
    {
      op: 'putWebhookEvent',
      event: { id: event.id, type, paymentId: payment.paymentId, createdAt: now, body },
    },
  ]
  for (const endpoint of endpoints) {
    if (!subscribes(endpoint, type)) continue
    const entry: OutboxEntry = {
      id: outboxId(now),
      endpointId: endpoint.id,
      key: payment.paymentId,
      body,
      eventId: event.id,
      attempts: 0,
      nextAttemptAt: now,
      createdAt: now,
    }
    ops.push({ op: 'putOutbox', entry })
  }
  return ops
}

/** A test event (`nullmesh webhooks trigger`): a made-up payment, `test: true`, not in the event log. */
export function testEvent(type: WebhookEventType, now: number): WebhookEvent {
  const status = (
    {
      'payment.queued': 'queued',
      'payment.processing': 'processing',
      'payment.completed': 'completed',
      'payment.failed': 'failed',
    } as const
  )[type]
  const payment: PaymentView = {
    paymentId: randomBytes(32).toString('hex'),
    venue: 'test-venue',
    origin: '00'.repeat(32),
    amountMinor: 1250,
    currency: 'EUR',
    status,
    queuedAt: now - 60_000,
    mode: 'quorum',
    flags: [],
  }
  if (status === 'completed' || status === 'failed') payment.completedAt = now
  if (status === 'completed') payment.authorizationCode = 'TEST00'
  if (status === 'failed') {
    payment.declineCode = 'offline_sync_failure'
    payment.syncDeclineCode = 'insufficient_funds'
  }
  return {
    id: `evt_test_${randomBytes(12).toString('hex')}`,
    type,
    createdAt: now,
    test: true,
    data: { payment },
  }
}

export interface WebhookDispatcherInit {
  store: CentralStore
  now: () => number
  retry?: WebhookRetryOptions
  log: Logger
  /** how long a claim on a delivery holds against other processes (default 60 s) */
  leaseMs?: number
  /** the event log keeps events this long (default 30 days); 0: never pruned */
  retentionMs?: number
}

/** a lane claims this many rounds of deliveries (× its concurrency) at once */
const CLAIM_ROUNDS = 4
/** a lane re-reads its endpoint (url, secrets, disabled) at least this often */
const ENDPOINT_CACHE_MS = 500

/** One endpoint's delivery counters since this process started (for /metrics). */
export interface LaneCounters {
  delivered: number
  failed: number
}

/**
 * One endpoint's delivery lane: its own claims, at most `concurrency` deliveries in flight, its own
 * timer. A lane only ever waits for its own endpoint.
 */
class Lane {
  private inflight = new Set<Promise<void>>()
  /** claimed, not started yet (oldest first) */
  private queue: OutboxEntry[] = []
  private pumping: Promise<void> | undefined
  private again = false
  private timer: NodeJS.Timeout | undefined
  private endpoint: { value: WebhookEndpoint | undefined; at: number } | undefined
  readonly counters: LaneCounters = { delivered: 0, failed: 0 }
  /** this lane's keep-alive connections: at most `concurrency`, closed after 5 s idle */
  readonly agents: { http: HttpAgent; https: HttpsAgent }

  constructor(
    readonly endpointId: string,
    private readonly d: WebhookDispatcher,
  ) {
    const o = { keepAlive: true, maxSockets: d.concurrency, maxFreeSockets: d.concurrency, timeout: 5_000 }
    this.agents = { http: new HttpAgent(o), https: new HttpsAgent(o) }
  }

  /** The endpoint changed (url, secrets, disabled): read it again before the next delivery. */
  invalidate(): void {
    this.endpoint = undefined
  }

  private async current(): Promise<WebhookEndpoint | undefined> {
    const now = Date.now()
    if (this.endpoint === undefined || now - this.endpoint.at > ENDPOINT_CACHE_MS)
      this.endpoint = { value: await this.d.store.getWebhook(this.endpointId), at: now }
    return this.endpoint.value
  }

  kick(): void {
    if (!this.d.running) return
    if (this.pumping !== undefined) {
      this.again = true
      return
    }
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.pumping = this.pump()
      .catch((err: unknown) => this.d.log.error('webhook lane %s failed: %o', this.endpointId, err))
      .finally(() => {
        this.pumping = undefined
        if (this.again && this.d.running) {
          this.again = false
          this.kick()
        }
      })
  }

  private async pump(): Promise<void> {
    for (;;) {
      this.again = false
      if (!this.d.running) return
      const endpoint = await this.current()
      if (endpoint === undefined || endpoint.disabled === true) {
        // what was claimed and not started goes back (a disabled endpoint's lane sends nothing)
        const back = this.queue.splice(0)
        if (back.length > 0)
          await this.d.store.releaseOutbox(
            this.d.owner,
            back.map((e) => e.id),
          )
        return
      }
      let free = this.d.concurrency - this.inflight.size
      if (free <= 0) return // a delivery ending kicks the lane again
      if (this.queue.length === 0) {
        // a few rounds' worth at once: one claim for several deliveries
        this.queue = await this.d.store.claimOutbox(
          this.d.owner,
          this.d.now(),
          this.d.leaseMs,
          this.d.concurrency * CLAIM_ROUNDS,
          this.endpointId,
        )
        if (this.queue.length === 0 && !this.again) break
      }
      while (free > 0 && this.queue.length > 0) {
        const entry = this.queue.shift()!
        free--
        const p: Promise<void> = this.d
          .deliver(entry, endpoint, this.counters, this.agents)
          .catch((err: unknown) => this.d.log.error('webhook %s: %o', entry.id, err))
          .finally(() => {
            this.inflight.delete(p)
            this.kick()
          })
        this.inflight.add(p)
      }
      if (free === 0 || this.queue.length > 0) return
    }
    if (this.inflight.size > 0 || this.queue.length > 0) return // their ends kick the lane
    const due = await this.d.store.nextOutboxDue({ endpointId: this.endpointId })
    if (due === undefined || !this.d.running) return
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = setTimeout(
      () => {
        this.timer = undefined
        this.kick()
      },
      Math.max(0, Math.min(due - this.d.now(), 3_600_000)),
    )
    this.timer.unref()
  }

  /** Resolves once nothing is running in this lane. */
  async idle(): Promise<void> {
    while (this.pumping !== undefined || this.inflight.size > 0)
      await Promise.allSettled([this.pumping, ...this.inflight])
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.queue = []
  }

  /** close its connections (after its deliveries ended) */
  close(): void {
    this.agents.http.destroy()
    this.agents.https.destroy()
  }
}

/**
 * Delivers the durable outbox, at least once: one lane per endpoint, so a hung, slow or failing
 * endpoint never delays another; failed deliveries retried on the schedule; an endpoint that fails
 * for the whole schedule is disabled (nothing is dropped). Any number of central processes can run
 * one each: lanes claim rows with SELECT … FOR UPDATE SKIP LOCKED and a lease.
 */
export class WebhookDispatcher {
  readonly store: CentralStore
  readonly now: () => number
  readonly log: Logger
  readonly schedule: number[]
  readonly timeoutMs: number
  readonly concurrency: number
  readonly leaseMs: number
  private readonly pollMs: number
  private readonly retentionMs: number
  running = false
  private controller: AbortController | undefined
  private readonly lanes = new Map<string, Lane>()
  private pollTimer: NodeJS.Timeout | undefined
  private polling: Promise<void> | undefined
  private lastPrune = 0
  private readonly pending: Array<{ ops: StoreOp[]; resolve: () => void; reject: (err: unknown) => void }> =
    []
  private writing: Promise<void> | undefined
  /** this process's name on delivery claims */
  readonly owner = `webhooks-${process.pid}-${randomBytes(6).toString('hex')}`

  constructor(init: WebhookDispatcherInit) {
    this.store = init.store
    this.now = init.now
    this.log = init.log
    this.schedule = retrySchedule(init.retry)
    this.timeoutMs = init.retry?.timeoutMs ?? DEFAULT_WEBHOOK_RETRY.timeoutMs
    this.concurrency = Math.max(1, init.retry?.concurrency ?? DEFAULT_WEBHOOK_RETRY.concurrency)
    this.pollMs = init.retry?.pollMs ?? DEFAULT_WEBHOOK_RETRY.pollMs
    // a claimed delivery may wait in its lane's queue for CLAIM_ROUNDS attempts before its own
    this.leaseMs = init.leaseMs ?? Math.max(DEFAULT_WEBHOOK_LEASE_MS, this.timeoutMs * (CLAIM_ROUNDS + 2))
    this.retentionMs = init.retentionMs ?? DEFAULT_EVENT_RETENTION_MS
  }

  get signal(): AbortSignal | undefined {
    return this.controller?.signal
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.controller = new AbortController()
    // every delivery in flight listens on this one signal
    setMaxListeners(0, this.controller.signal)
    this.pollTimer = setInterval(() => this.kick(), this.pollMs)
    this.pollTimer.unref()
    this.kick()
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    if (this.pollTimer !== undefined) clearInterval(this.pollTimer)
    this.pollTimer = undefined
    this.controller?.abort()
    for (const lane of this.lanes.values()) lane.stop()
    await this.polling?.catch(() => {})
    await Promise.all([...this.lanes.values()].map((l) => l.idle()))
    for (const lane of this.lanes.values()) lane.close()
    this.lanes.clear()
    // what this process claimed and did not deliver is free for the next one at once
    await this.store.releaseOutbox(this.owner).catch(() => {})
  }

  private lane(endpointId: string): Lane {
    let lane = this.lanes.get(endpointId)
    if (lane === undefined) {
      lane = new Lane(endpointId, this)
      this.lanes.set(endpointId, lane)
    }
    return lane
  }

  /** An endpoint was changed here (url, secrets, disabled): its lane reads it again. */
  changed(endpointId: string): void {
    this.lanes.get(endpointId)?.invalidate()
  }

  /** Deliveries were written (for these endpoints, or any): deliver soon. */
  kick(endpointIds?: Iterable<string>): void {
    if (!this.running) return
    if (endpointIds !== undefined) {
      for (const id of endpointIds) this.lane(id).kick()
      return
    }
    if (this.polling !== undefined) return
    this.polling = this.poll()
      .catch((err: unknown) => this.log.error('webhook poll failed: %o', err))
      .finally(() => {
        this.polling = undefined
      })
  }

  /** Wake the lanes of endpoints with due deliveries (any process may have written them); prune. */
  private async poll(): Promise<void> {
    const now = this.now()
    for (const id of await this.store.dueEndpoints(now)) this.lane(id).kick()
    if (this.retentionMs > 0 && now - this.lastPrune >= Math.min(3_600_000, this.retentionMs / 2)) {
      this.lastPrune = now
      await this.prune()
    }
  }

  /** Prune the event log (retention), never an event still pending for an enabled endpoint. */
  async prune(): Promise<{ events: number; deliveries: number }> {
    const r = await this.store.pruneWebhookEvents(this.now() - this.retentionMs)
    if (r.events > 0 || r.deliveries > 0)
      this.log('pruned %d events and %d deliveries of disabled endpoints', r.events, r.deliveries)
    return r
  }

  /** Attempt everything due now once, and wait for it. */
  async flush(): Promise<void> {
    if (!this.running) return
    await this.polling?.catch(() => {})
    for (const id of await this.store.dueEndpoints(this.now())) this.lane(id).kick()
    await Promise.all([...this.lanes.values()].map((l) => l.idle()))
  }

  /** Counters per endpoint since this process started. */
  counters(): Map<string, LaneCounters> {
    return new Map([...this.lanes].map(([id, l]) => [id, { ...l.counters }]))
  }

  /**
   * Write a delivery's outcome. Outcomes of every lane that end together are written in one
   * transaction (group commit): one commit for many deliveries. If it fails, the claims lapse and
   * those events are delivered again (at least once).
   */
  private record(ops: StoreOp[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ ops, resolve, reject })
      if (this.writing === undefined) this.writing = this.flushOutcomes()
    })
  }

  private async flushOutcomes(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0)
      // outbox rows first, then endpoints (the order every writer locks them in); one success
      // per endpoint is enough for its health
      const rows: StoreOp[] = []
      const health = new Map<string, StoreOp>()
      const failures: StoreOp[] = []
      for (const { ops } of batch)
        for (const o of ops) {
          if (o.op === 'webhookAttempt') {
            if (o.error === undefined) health.set(o.id, o)
            else failures.push(o)
          } else rows.push(o)
        }
      rows.sort((a, b) => (a.op === b.op ? 0 : a.op === 'delOutbox' ? -1 : 1))
      try {
        await this.store.apply([...rows, ...health.values(), ...failures])
        for (const b of batch) b.resolve()
      } catch (err: unknown) {
        for (const b of batch) b.reject(err)
      }
    }
    this.writing = undefined
  }

  /** One attempt of one claimed delivery; its outcome is written with the endpoint's health. */
  async deliver(
    entry: OutboxEntry,
    endpoint: WebhookEndpoint,
    counters: LaneCounters,
    agents?: { http: HttpAgent; https: HttpsAgent },
  ): Promise<void> {
    const signal = this.signal
    const t = this.now()
    let error: string
    try {
      const status = await postJson(endpoint.url, entry.body, {
        [WEBHOOK_SIGNATURE_HEADER]: signWebhookPayload(entry.body, signingSecrets(endpoint, t), t),
        timeoutMs: this.timeoutMs,
        signal,
        ...(agents === undefined ? {} : { agents }),
      })
      error = `HTTP ${status}`
      if (status >= 200 && status < 300) error = ''
    } catch (err: unknown) {
      error = err instanceof Error ? err.message : String(err)
    }
    if (error === '') {
      // if this write fails, the claim lapses and the event is delivered again: at least once
      await this.record([
        { op: 'delOutbox', id: entry.id },
        { op: 'webhookAttempt', id: endpoint.id, at: this.now() },
      ])
      counters.delivered++
      this.log('webhook %s delivered to %s', entry.id, endpoint.url)
      return
    }
    if (signal?.aborted === true) return // stopping: the entry stays as it was
    counters.failed++
    const attempts = entry.attempts + 1
    const exhausted = attempts > this.schedule.length
    const delay = this.schedule[Math.min(attempts, this.schedule.length) - 1]!
    const at = this.now()
    await this.record([
      { op: 'retryOutbox', id: entry.id, attempts, nextAttemptAt: at + delay, lastError: error },
      {
        op: 'webhookAttempt',
        id: endpoint.id,
        at,
        error,
        ...(exhausted ? { disableIfNoSuccessSince: entry.createdAt } : {}),
      },
    ])
    if (exhausted) {
      const now = await this.store.getWebhook(endpoint.id)
      if (now?.disabled === true)
        this.log.error(
          'webhook endpoint %s (%s) disabled: failed for the whole retry schedule (%s)',
          endpoint.id,
          endpoint.url,
          error,
        )
    }
    this.log(
      'webhook %s to %s failed (%s), attempt %d, retry in %d ms',
      entry.id,
      endpoint.url,
      error,
      attempts,
      delay,
    )
  }
}

interface PostOptions {
  timeoutMs: number
  signal: AbortSignal | undefined
  /** keep-alive connections of one lane (destroyed when it stops); none: one connection per request */
  agents?: { http: HttpAgent; https: HttpsAgent }
  [header: string]: unknown
}

/** POST without keep-alive (no sockets left open after stop). Resolves with the status code. */
export function postJson(url: string, body: string, opts: PostOptions): Promise<number> {
  const { timeoutMs, signal, agents, ...headers } = opts
  return new Promise((resolve, reject) => {
    let target: URL
    try {
      target = new URL(url)
    } catch {
      reject(new Error('invalid URL'))
      return
    }
    const request = target.protocol === 'https:' ? httpsRequest : httpRequest
    const req = request(
      target,
      {
        method: 'POST',
        agent: agents === undefined ? false : target.protocol === 'https:' ? agents.https : agents.http,
        headers: {
          ...(headers as Record<string, string>),
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'user-agent': 'nullmesh-central',
          ...(agents === undefined ? { connection: 'close' } : {}),
        },
        timeout: timeoutMs,
        signal,
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end(body)
  })
}
