import { createHash, randomBytes } from 'node:crypto'
import {
  DEFAULT_EVENTS_LIMIT,
  DEFAULT_SECRET_OVERLAP_S,
  MAX_EVENTS_LIMIT,
  MAX_SECRET_OVERLAP_S,
  MIN_WEBHOOK_SECRET_BYTES,
  WEBHOOK_SIGNATURE_HEADER,
} from './constants.js'
import { CentralError } from './errors.js'
import type { Logger } from './logger.js'
import type { CentralStore, EventLogFilter, StoreOp } from './store.js'
import {
  type AbortOptions,
  type EventLogEntry,
  WEBHOOK_EVENT_TYPES,
  type WebhookEndpoint,
  type WebhookEvent,
  type WebhookEventType,
} from './types.js'
import {
  newWebhookSecret,
  postJson,
  signingSecrets,
  signWebhookPayload,
  testEvent,
  type WebhookDispatcher,
} from './webhooks.js'

/** An endpoint as the API shows it (never its secrets). */
export interface WebhookView {
  id: string
  url: string
  /** the event types it receives */
  events: WebhookEventType[]
  /** subscribed to every type (also types added later) */
  allEvents: boolean
  disabled: boolean
  disabledAt: number | null
  disabledReason: string | null
  createdAt: number
  /** when the secrets a rotation replaced stop signing, if any still do */
  previousSecretsExpireAt: number[]
  delivery: {
    /** deliveries waiting (including the ones of a disabled endpoint) */
    pending: number
    oldestPendingAt: number | null
    oldestPendingAgeMs: number | null
    lastSuccessAt: number | null
    lastErrorAt: number | null
    lastError: string | null
    /** the first failure since the last success */
    failingSince: number | null
  }
}

export interface WebhookRegistration {
  id: string
  url: string
  /** the signing secret: shown here and by rotate-secret only */
  secret: string
  events: WebhookEventType[]
  allEvents: boolean
  createdAt: number
}

export interface WebhookCreate {
  url: string
  /** a merchant-supplied secret, at least 32 bytes; default: generated */
  secret?: string
  /** default: every type */
  events?: string[]
}

export interface WebhookPatch {
  url?: string
  events?: string[]
  disabled?: boolean
}

export interface EventListQuery {
  /** one type, or several comma-separated */
  type?: string | string[]
  payment?: string
  createdGte?: number
  createdLt?: number
  /** 'desc' (default): newest first; 'asc': oldest first */
  order?: 'asc' | 'desc'
  limit?: number
  cursor?: string
}

export interface EventList {
  events: WebhookEvent[]
  /** pass as `cursor` (with the same filters and order) for the next page; null: this was the last */
  nextCursor: string | null
}

export type RedeliverRequestBody = { eventId: string } | { since: number; until?: number }

export interface TestDelivery {
  event: WebhookEvent
  /** the endpoint's HTTP status, or 0 when there was no answer */
  status: number
  error?: string
  durationMs: number
}

const invalid = (message: string): CentralError => new CentralError('ERR_INVALID_REQUEST', message, 400)

function notFound(id: string): CentralError {
  return new CentralError('ERR_NOT_FOUND', `webhook ${id} is not registered`, 404)
}

export function parseEventTypes(field: string, list: readonly string[]): WebhookEventType[] | undefined {
  if (list.length === 1 && list[0] === '*') return undefined
  if (list.length === 0)
    throw invalid(`${field}: name at least one event type (or omit it, or ["*"], for every type)`)
  const unknown = list.filter((t) => !(WEBHOOK_EVENT_TYPES as readonly string[]).includes(t))
  if (unknown.length > 0)
    throw invalid(
      `${field}: unknown event type${unknown.length > 1 ? 's' : ''} ${unknown.map((t) => JSON.stringify(t)).join(', ')} (known: ${WEBHOOK_EVENT_TYPES.join(', ')})`,
    )
  return [...new Set(list as WebhookEventType[])]
}

function checkUrl(text: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw invalid('url: not a valid URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid('url: must be http or https')
  return url.toString()
}

function checkSecret(secret: string): string {
  if (Buffer.byteLength(secret, 'utf8') < MIN_WEBHOOK_SECRET_BYTES)
    throw invalid(`secret: at least ${MIN_WEBHOOK_SECRET_BYTES} bytes (or omit it for a generated one)`)
  if (Buffer.byteLength(secret, 'utf8') > 256) throw invalid('secret: at most 256 bytes')
  return secret
}

function toTime(field: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined
  if (!Number.isSafeInteger(v) || v < 0) throw invalid(`${field}: ms since the epoch`)
  return v
}

interface CursorBody {
  v: 1
  list: 'events'
  /** the filters and order it was made for */
  f: string
  p: number
}

function filterKey(f: Omit<EventLogFilter, 'afterPos' | 'limit'>): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        f.types === undefined ? null : [...f.types].sort(),
        f.paymentId ?? null,
        f.createdGte ?? null,
        f.createdLt ?? null,
        f.order ?? 'desc',
      ]),
    )
    .digest('base64url')
    .slice(0, 16)
}

function encodeCursor(body: CursorBody): string {
  return Buffer.from(JSON.stringify(body)).toString('base64url')
}

function decodeCursor(text: string): CursorBody {
  let c: Partial<CursorBody> | undefined
  try {
    c = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Partial<CursorBody>
  } catch {
    c = undefined
  }
  if (
    c === undefined ||
    c === null ||
    c.v !== 1 ||
    typeof c.f !== 'string' ||
    typeof c.p !== 'number' ||
    !Number.isSafeInteger(c.p)
  )
    throw invalid('cursor: not a cursor this API gave out (pass nextCursor exactly as received)')
  if (c.list !== 'events') throw invalid(`cursor: a cursor of another list (${String(c.list)})`)
  return c as CursorBody
}

export interface WebhookAdminInit {
  store: CentralStore
  dispatcher: WebhookDispatcher
  now: () => number
  log: Logger
  /** serialised writes of this process (with ingest and settlement) */
  write: (ops: StoreOp[]) => Promise<void>
}

/** Endpoints, subscriptions, rotation, redelivery and the event log, for the service and its HTTP API. */
export class WebhookAdmin {
  constructor(private readonly init: WebhookAdminInit) {}

  private get store(): CentralStore {
    return this.init.store
  }

  async add(req: WebhookCreate, opts: AbortOptions = {}): Promise<WebhookRegistration> {
    const url = checkUrl(req.url)
    const secret = req.secret === undefined ? newWebhookSecret() : checkSecret(req.secret)
    const events = req.events === undefined ? undefined : parseEventTypes('events', req.events)
    const record: WebhookEndpoint = {
      id: `wh_${randomBytes(12).toString('hex')}`,
      url,
      secret,
      createdAt: this.init.now(),
    }
    if (events !== undefined) record.events = events
    opts.signal?.throwIfAborted()
    await this.init.write([{ op: 'putWebhook', endpoint: record }])
    this.init.log(
      'webhook %s → %s registered (%s)',
      record.id,
      record.url,
      events?.join(', ') ?? 'every type',
    )
    return {
      id: record.id,
      url: record.url,
      secret,
      events: events ?? [...WEBHOOK_EVENT_TYPES],
      allEvents: events === undefined,
      createdAt: record.createdAt,
    }
  }

  async require(id: string, opts: AbortOptions = {}): Promise<WebhookEndpoint> {
    const e = await this.store.getWebhook(id, opts)
    if (e === undefined) throw notFound(id)
    return e
  }

  async view(id: string, opts: AbortOptions = {}): Promise<WebhookView | undefined> {
    const e = await this.store.getWebhook(id, opts)
    if (e === undefined) return undefined
    const backlog = (await this.store.webhookBacklog(opts)).find((b) => b.endpointId === id)
    return this.toView(e, backlog?.pending ?? 0, backlog?.oldestPendingAt)
  }

  async list(opts: AbortOptions = {}): Promise<WebhookView[]> {
    const [endpoints, backlog] = await Promise.all([
      this.store.listWebhooks(opts),
      this.store.webhookBacklog(opts),
    ])
    const by = new Map(backlog.map((b) => [b.endpointId, b]))
    return endpoints.map((e) => this.toView(e, by.get(e.id)?.pending ?? 0, by.get(e.id)?.oldestPendingAt))
  }

  private toView(e: WebhookEndpoint, pending: number, oldest: number | undefined): WebhookView {
    const now = this.init.now()
    return {
      id: e.id,
      url: e.url,
      events: e.events ?? [...WEBHOOK_EVENT_TYPES],
      allEvents: e.events === undefined,
      disabled: e.disabled === true,
      disabledAt: e.disabledAt ?? null,
      disabledReason: e.disabledReason ?? null,
      createdAt: e.createdAt,
      previousSecretsExpireAt: (e.previousSecrets ?? [])
        .filter((p) => p.expiresAt > now)
        .map((p) => p.expiresAt),
      delivery: {
        pending,
        oldestPendingAt: oldest ?? null,
        oldestPendingAgeMs: oldest === undefined ? null : Math.max(0, now - oldest),
        lastSuccessAt: e.lastSuccessAt ?? null,
        lastErrorAt: e.lastErrorAt ?? null,
        lastError: e.lastError ?? null,
        failingSince: e.failingSince ?? null,
      },
    }
  }

  async update(id: string, patch: WebhookPatch, opts: AbortOptions = {}): Promise<WebhookView> {
    // everything is checked before anything is written
    const url = patch.url === undefined ? undefined : checkUrl(patch.url)
    const events = patch.events === undefined ? undefined : (parseEventTypes('events', patch.events) ?? null)
    const current = await this.require(id, opts)
    const now = this.init.now()
    const ops: StoreOp[] = []
    const reenable = patch.disabled === false && current.disabled === true
    // the deliveries first, then the endpoint (the order lanes lock them in)
    if (reenable) ops.push({ op: 'rescheduleOutbox', endpointId: id, at: now })
    ops.push({
      op: 'patchWebhook',
      id,
      ...(url === undefined ? {} : { url }),
      ...(events === undefined ? {} : { events }),
      ...(patch.disabled === undefined
        ? {}
        : patch.disabled
          ? current.disabled === true
            ? {}
            : { disabled: { at: now, reason: 'disabled by request' } }
          : { disabled: false as const }),
    })
    await this.init.write(ops)
    this.init.dispatcher.changed(id)
    if (reenable) {
      this.init.log('webhook %s re-enabled: its pending deliveries go out now, in order', id)
      this.init.dispatcher.kick([id])
    }
    return (await this.view(id, opts))!
  }

  async remove(id: string, opts: AbortOptions = {}): Promise<boolean> {
    if ((await this.store.getWebhook(id, opts)) === undefined) return false
    await this.init.write([{ op: 'delWebhook', id }])
    this.init.dispatcher.changed(id)
    return true
  }

  async rotateSecret(
    id: string,
    req: { overlapSeconds?: number; secret?: string },
    opts: AbortOptions = {},
  ): Promise<{ id: string; secret: string; previousSecretExpiresAt: number }> {
    const overlap = req.overlapSeconds ?? DEFAULT_SECRET_OVERLAP_S
    if (!Number.isSafeInteger(overlap) || overlap < 0 || overlap > MAX_SECRET_OVERLAP_S)
      throw invalid(`overlapSeconds: an integer from 0 to ${MAX_SECRET_OVERLAP_S} (7 days)`)
    const secret = req.secret === undefined ? newWebhookSecret() : checkSecret(req.secret)
    const current = await this.require(id, opts)
    const now = this.init.now()
    const expiresAt = now + overlap * 1000
    const previousSecrets = [
      ...(overlap > 0 ? [{ secret: current.secret, expiresAt }] : []),
      ...(current.previousSecrets ?? []).filter((p) => p.expiresAt > now),
    ]
    await this.init.write([{ op: 'patchWebhook', id, secret, previousSecrets }])
    this.init.dispatcher.changed(id)
    this.init.log('webhook %s: secret rotated, the previous one signs for %d s more', id, overlap)
    return { id, secret, previousSecretExpiresAt: expiresAt }
  }

  async redeliver(
    id: string,
    req: { eventId?: string; since?: number; until?: number },
    opts: AbortOptions = {},
  ): Promise<{ queued: number }> {
    const endpoint = await this.require(id, opts)
    const now = this.init.now()
    let queued: number
    if (req.eventId !== undefined) {
      if (req.since !== undefined || req.until !== undefined)
        throw invalid('eventId or since (with until), not both')
      if ((await this.store.getWebhookEvent(req.eventId, opts)) === undefined)
        throw new CentralError('ERR_NOT_FOUND', `event ${req.eventId} is not in the event log`, 404)
      queued = await this.store.redeliverEvents({ endpointId: id, eventIds: [req.eventId], now }, opts)
    } else {
      const since = toTime('since', req.since)
      const until = toTime('until', req.until)
      if (since === undefined)
        throw invalid('eventId (one event) or since (every event from then) is required')
      if (since > now) throw invalid(`since: ${since} is in the future (now ${now})`)
      if (until !== undefined && until <= since) throw invalid('until: must be after since')
      queued = await this.store.redeliverEvents(
        {
          endpointId: id,
          since,
          ...(until === undefined ? {} : { until }),
          ...(endpoint.events === undefined ? {} : { types: endpoint.events }),
          now,
        },
        opts,
      )
    }
    this.init.log('webhook %s: %d events queued for redelivery', id, queued)
    if (queued > 0 && endpoint.disabled !== true) this.init.dispatcher.kick([id])
    return { queued }
  }

  /** Sign and send one test event now (not through the outbox, not retried, not logged). */
  async test(id: string, type: string, opts: AbortOptions = {}): Promise<TestDelivery> {
    const t = parseEventTypes('type', [type])?.[0]
    if (t === undefined) throw invalid('type: one event type')
    const endpoint = await this.require(id, opts)
    const now = this.init.now()
    const event = testEvent(t, now)
    const body = JSON.stringify(event)
    const started = Date.now()
    try {
      const status = await postJson(endpoint.url, body, {
        [WEBHOOK_SIGNATURE_HEADER]: signWebhookPayload(body, signingSecrets(endpoint, now), now),
        timeoutMs: this.init.dispatcher.timeoutMs,
        signal: opts.signal,
      })
      return { event, status, durationMs: Date.now() - started }
    } catch (err: unknown) {
      return {
        event,
        status: 0,
        error: err instanceof Error ? err.message : String(err),
        durationMs: Date.now() - started,
      }
    }
  }

  async listEvents(q: EventListQuery, opts: AbortOptions = {}): Promise<EventList> {
    const typeList =
      q.type === undefined
        ? undefined
        : (Array.isArray(q.type) ? q.type : [q.type]).flatMap((t) => t.split(',')).map((t) => t.trim())
    const types = typeList === undefined ? undefined : parseEventTypes('type', typeList)
    const limit = q.limit ?? DEFAULT_EVENTS_LIMIT
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_EVENTS_LIMIT)
      throw invalid(`limit: 1 to ${MAX_EVENTS_LIMIT}`)
    const filter: EventLogFilter = {
      order: q.order ?? 'desc',
      limit: limit + 1,
      ...(types === undefined ? {} : { types }),
      ...(q.payment === undefined ? {} : { paymentId: q.payment }),
    }
    const gte = toTime('created_gte', q.createdGte)
    const lt = toTime('created_lt', q.createdLt)
    if (gte !== undefined) filter.createdGte = gte
    if (lt !== undefined) filter.createdLt = lt
    const key = filterKey(filter)
    if (q.cursor !== undefined) {
      const c = decodeCursor(q.cursor)
      if (c.f !== key)
        throw invalid(
          'cursor: from another list (other filters or order): pass the same filters as the page it came from, or start without a cursor',
        )
      filter.afterPos = c.p
    }
    const rows = await this.store.listWebhookEvents(filter, opts)
    const page = rows.slice(0, limit)
    const last = page[page.length - 1]
    return {
      events: page.map(parseLogged),
      nextCursor:
        rows.length > limit && last?.pos !== undefined
          ? encodeCursor({ v: 1, list: 'events', f: key, p: last.pos })
          : null,
    }
  }

  async getEvent(id: string, opts: AbortOptions = {}): Promise<WebhookEvent | undefined> {
    const e = await this.store.getWebhookEvent(id, opts)
    return e === undefined ? undefined : parseLogged(e)
  }

  /** Prometheus text: per endpoint backlog, health and this process's delivery counters. */
  async metrics(opts: AbortOptions = {}): Promise<string> {
    const [endpoints, backlog] = await Promise.all([
      this.store.listWebhooks(opts),
      this.store.webhookBacklog(opts),
    ])
    const by = new Map(backlog.map((b) => [b.endpointId, b]))
    const counters = this.init.dispatcher.counters()
    const now = this.init.now()
    const lines: string[] = []
    const metric = (
      name: string,
      type: 'gauge' | 'counter',
      help: string,
      value: (e: WebhookEndpoint) => number | undefined,
    ): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
      for (const e of endpoints) {
        const v = value(e)
        if (v !== undefined) lines.push(`${name}{endpoint="${e.id}"} ${v}`)
      }
    }
    metric(
      'nullmesh_central_webhook_pending',
      'gauge',
      'Deliveries waiting for the endpoint',
      (e) => by.get(e.id)?.pending ?? 0,
    )
    metric(
      'nullmesh_central_webhook_oldest_pending_age_seconds',
      'gauge',
      'Age of the oldest delivery waiting for the endpoint (0: none)',
      (e) => {
        const oldest = by.get(e.id)?.oldestPendingAt
        return oldest === undefined ? 0 : Math.max(0, now - oldest) / 1000
      },
    )
    metric(
      'nullmesh_central_webhook_last_success_timestamp_seconds',
      'gauge',
      'When a delivery to the endpoint last succeeded (unix seconds)',
      (e) => (e.lastSuccessAt === undefined ? undefined : e.lastSuccessAt / 1000),
    )
    metric(
      'nullmesh_central_webhook_last_error_timestamp_seconds',
      'gauge',
      'When a delivery to the endpoint last failed (unix seconds)',
      (e) => (e.lastErrorAt === undefined ? undefined : e.lastErrorAt / 1000),
    )
    metric('nullmesh_central_webhook_disabled', 'gauge', '1 while the endpoint is disabled', (e) =>
      e.disabled === true ? 1 : 0,
    )
    lines.push(
      '# HELP nullmesh_central_webhook_attempts_total Delivery attempts by this process, by result',
      '# TYPE nullmesh_central_webhook_attempts_total counter',
    )
    for (const e of endpoints) {
      const c = counters.get(e.id) ?? { delivered: 0, failed: 0 }
      lines.push(
        `nullmesh_central_webhook_attempts_total{endpoint="${e.id}",result="success"} ${c.delivered}`,
      )
      lines.push(`nullmesh_central_webhook_attempts_total{endpoint="${e.id}",result="failure"} ${c.failed}`)
    }
    return `${lines.join('\n')}\n`
  }
}

function parseLogged(e: EventLogEntry): WebhookEvent {
  return JSON.parse(e.body) as WebhookEvent
}
