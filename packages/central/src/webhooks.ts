import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import {
  DEFAULT_WEBHOOK_LEASE_MS,
  DEFAULT_WEBHOOK_RETRY,
  DEFAULT_WEBHOOK_TOLERANCE_MS,
  WEBHOOK_SIGNATURE_HEADER,
} from './constants.js'
import type { Logger } from './logger.js'
import type { CentralStore, StoreOp } from './store.js'
import type { OutboxEntry, PaymentRecord, WebhookEndpoint, WebhookEvent, WebhookEventType } from './types.js'
import { toPaymentView } from './types.js'

export interface WebhookRetryOptions {
  initialDelayMs?: number
  maxDelayMs?: number
  maxAttempts?: number
  timeoutMs?: number
}

/** `t=<unix ms>,v1=<hex HMAC-SHA256(secret, t + "." + rawBody)>` */
export function signWebhookPayload(
  rawBody: string | Uint8Array,
  secret: string,
  timestampMs: number,
): string {
  return `t=${timestampMs},v1=${hmacHex(secret, timestampMs, rawBody)}`
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
  return `whsec_${randomBytes(24).toString('base64url')}`
}

const TYPE_BY_STATUS: Partial<Record<PaymentRecord['status'], WebhookEventType>> = {
  queued: 'payment.queued',
  processing: 'payment.processing',
  completed: 'payment.completed',
  failed: 'payment.failed',
}

let outboxCounter = 0

/**
 * The outbox writes for a payment's transition from `previous`, one per endpoint: the caller puts
 * them in the same atomic batch as the payment, so a transition is never recorded without its
 * notifications. A voided payment is a failed one to merchants (declineCode 'voided'), announced
 * only when it had announced something before (it was authorised online): one never announced
 * stays silent.
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
  if (type === undefined || endpoints.length === 0) return []
  const event: WebhookEvent = {
    id: `evt_${createHash('sha256').update(`${payment.paymentId}/${payment.status}`).digest('hex').slice(0, 32)}`,
    type,
    createdAt: now,
    data: { payment: toPaymentView(payment) },
  }
  const body = JSON.stringify(event)
  return endpoints.map((endpoint) => {
    outboxCounter = (outboxCounter + 1) % 1_000_000
    const entry: OutboxEntry = {
      id: `${String(now).padStart(16, '0')}-${String(outboxCounter).padStart(6, '0')}-${randomBytes(4).toString('hex')}`,
      endpointId: endpoint.id,
      key: payment.paymentId,
      body,
      attempts: 0,
      nextAttemptAt: now,
      createdAt: now,
    }
    return { op: 'putOutbox', entry } satisfies StoreOp
  })
}

export interface WebhookDispatcherInit {
  store: CentralStore
  /** serialised writes to the store */
  write: (ops: StoreOp[]) => Promise<void>
  now: () => number
  retry?: WebhookRetryOptions
  log: Logger
  /** how long a claim on a delivery holds against other processes (default 60 s) */
  leaseMs?: number
}

/** deliveries claimed at once */
const CLAIM_BATCH = 32

/** Delivers the durable outbox: at least once, retried with exponential backoff, dead-lettered at the end. */
export class WebhookDispatcher {
  private readonly store: CentralStore
  private readonly write: (ops: StoreOp[]) => Promise<void>
  private readonly now: () => number
  private readonly retry: Required<WebhookRetryOptions>
  private readonly log: Logger
  private running = false
  private controller: AbortController | undefined
  private timer: NodeJS.Timeout | undefined
  private pass: Promise<void> | undefined
  private again = false
  private readonly leaseMs: number
  /** this process's name on delivery claims */
  private readonly owner = `webhooks-${process.pid}-${randomBytes(6).toString('hex')}`

  constructor(init: WebhookDispatcherInit) {
    this.store = init.store
    this.write = init.write
    this.now = init.now
    this.retry = { ...DEFAULT_WEBHOOK_RETRY, ...init.retry }
    this.log = init.log
    this.leaseMs = init.leaseMs ?? DEFAULT_WEBHOOK_LEASE_MS
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.controller = new AbortController()
    this.kick()
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.controller?.abort()
    await this.pass?.catch(() => {})
    // what this process claimed and did not deliver is free for the next one at once
    await this.store.releaseOutbox(this.owner).catch(() => {})
  }

  /** Something was written to the outbox: deliver soon. */
  kick(): void {
    if (!this.running) return
    if (this.pass !== undefined) {
      this.again = true
      return
    }
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.pass = this.runPass()
      .catch((err: unknown) => this.log.error('webhook pass failed: %o', err))
      .finally(() => {
        this.pass = undefined
        if (this.again && this.running) {
          this.again = false
          this.kick()
        }
      })
  }

  /** Wait for the current pass and one more (everything due now has been attempted once). */
  async flush(): Promise<void> {
    await this.pass?.catch(() => {})
    this.kick()
    await this.pass?.catch(() => {})
  }

  private async runPass(): Promise<void> {
    const signal = this.controller?.signal
    // claim what is due, deliver it, repeat: each claim holds only the oldest undelivered entry of
    // each (endpoint, payment), so one payment's notifications go out in order, from any process
    for (;;) {
      if (signal?.aborted === true || !this.running) return
      const claimed = await this.store.claimOutbox(this.owner, this.now(), this.leaseMs, CLAIM_BATCH)
      if (claimed.length === 0) break
      const byEndpoint = new Map<string, OutboxEntry[]>()
      for (const e of claimed) {
        const list = byEndpoint.get(e.endpointId) ?? []
        list.push(e)
        byEndpoint.set(e.endpointId, list)
      }
      // endpoints in parallel, each endpoint's deliveries one at a time, oldest first
      await Promise.all(
        [...byEndpoint].map(async ([endpointId, list]) => {
          const endpoint = await this.store.getWebhook(endpointId)
          for (const entry of list) {
            if (signal?.aborted === true || !this.running) break
            await this.deliver(entry, endpoint, signal)
          }
        }),
      )
    }
    const nextDue = await this.store.nextOutboxDue()
    if (this.running && nextDue !== undefined && !this.again) this.schedule(nextDue - this.now())
  }

  private schedule(delayMs: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = setTimeout(
      () => {
        this.timer = undefined
        this.kick()
      },
      Math.max(0, Math.min(delayMs, this.retry.maxDelayMs)),
    )
    this.timer.unref()
  }

  /** @returns when to retry, if it failed and will be retried */
  private async deliver(
    entry: OutboxEntry,
    endpoint: WebhookEndpoint | undefined,
    signal: AbortSignal | undefined,
  ): Promise<number | undefined> {
    if (endpoint === undefined) {
      await this.write([{ op: 'delOutbox', id: entry.id }])
      return undefined
    }
    const t = this.now()
    let error: string | undefined
    try {
      const status = await postJson(endpoint.url, entry.body, {
        [WEBHOOK_SIGNATURE_HEADER]: signWebhookPayload(entry.body, endpoint.secret, t),
        timeoutMs: this.retry.timeoutMs,
        signal,
      })
      if (status >= 200 && status < 300) {
        await this.write([{ op: 'delOutbox', id: entry.id }])
        this.log('webhook %s delivered to %s', entry.id, endpoint.url)
        return undefined
      }
      error = `HTTP ${status}`
    } catch (err: unknown) {
      error = err instanceof Error ? err.message : String(err)
    }
    if (signal?.aborted === true) return undefined // stopping: the entry stays as it was
    const attempts = entry.attempts + 1
    if (attempts >= this.retry.maxAttempts) {
      const dead = { ...entry, attempts, lastError: error }
      await this.write([
        { op: 'delOutbox', id: entry.id },
        { op: 'putDeadLetter', entry: dead },
      ])
      this.log.error(
        'webhook %s to %s dead-lettered after %d attempts: %s',
        entry.id,
        endpoint.url,
        attempts,
        error,
      )
      return undefined
    }
    const backoff = Math.min(this.retry.maxDelayMs, this.retry.initialDelayMs * 2 ** (attempts - 1))
    const nextAttemptAt = this.now() + backoff
    await this.write([{ op: 'putOutbox', entry: { ...entry, attempts, nextAttemptAt, lastError: error } }])
    this.log(
      'webhook %s to %s failed (%s), attempt %d, retry in %d ms',
      entry.id,
      endpoint.url,
      error,
      attempts,
      backoff,
    )
    return nextAttemptAt
  }
}

interface PostOptions {
  timeoutMs: number
  signal: AbortSignal | undefined
  [header: string]: unknown
}

/** POST without keep-alive (no sockets left open after stop). Resolves with the status code. */
function postJson(url: string, body: string, opts: PostOptions): Promise<number> {
  const { timeoutMs, signal, ...headers } = opts
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
        agent: false,
        headers: {
          ...(headers as Record<string, string>),
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'user-agent': 'nullmesh-central',
          connection: 'close',
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
