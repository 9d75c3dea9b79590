import { createHash, timingSafeEqual } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import swagger from '@fastify/swagger'
import { DASHBOARD_PATH, isPublicDashboardPath } from '@nullmesh/dashboard'
import { Type } from '@sinclair/typebox'
import debug from 'debug'
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify'
import { clientErrorHandler } from './client-error.js'
import {
  API_BODY_LIMIT_BYTES,
  LOG_NAMESPACE,
  SSE_KEEPALIVE_MS,
  SSE_RETRY_MS,
  TAP_AT_HEADER,
} from './constants.js'
import { createDashboardAuth, registerTerminalDashboard } from './dashboard.js'
import { TerminalError } from './errors.js'
import {
  ErrorSchema,
  PaymentParamsSchema,
  PaymentRequestSchema,
  PaymentResponseSchema,
  PaymentSchema,
  parsePaymentRequest,
  StatusSchema,
} from './schemas.js'
import type { NullmeshTerminal, TerminalEvent } from './terminal.js'

const log = debug(`${LOG_NAMESPACE}:api`)

/** A slow SSE reader is dropped once this much is buffered for it. */
const SSE_MAX_BUFFERED_BYTES = 1 << 20
const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/openapi.json'])

export interface ApiServerInit {
  host: string
  port: number
  token: string
  /**
   * when a request read now may have arrived (the terminal's loop-lag clock: a request read after
   * a busy stretch of the event loop may have waited through it); default: now
   */
  arrival?: (now: number) => number
  /**
   * the tap's time on this process's performance clock, from a POS-claimed tap time (epoch ms,
   * `nullmesh-tap-at`) and the arrival: never after the arrival, never earlier than the terminal
   * allows (terminal.ts); default: the arrival
   */
  tappedAt?: (arrival: number, claimedEpochMs: number) => number
}

export interface ApiServer {
  readonly url: string
  readonly app: FastifyInstance
  close(): Promise<void>
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

function sendError(reply: FastifyReply, err: TerminalError): FastifyReply {
  return reply.code(err.status).send(err.toJSON())
}

/** Map anything thrown in a route to `{ code, message, field? }` with a stable code. */
function toTerminalError(err: FastifyError | Error): TerminalError {
  if (err instanceof TerminalError) return err
  const e = err as FastifyError
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || e.statusCode === 413) {
    return new TerminalError('payload_too_large', `the body is larger than ${API_BODY_LIMIT_BYTES} bytes`, {
      field: 'body',
    })
  }
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || e.statusCode === 415) {
    return new TerminalError('unsupported_media_type', 'the body must be application/json', { field: 'body' })
  }
  if (e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
    return new TerminalError('invalid_request', 'body must be a JSON object', { field: 'body' })
  }
  if (typeof e.code === 'string' && e.code.startsWith('FST_ERR_CTP') && e.statusCode === 400) {
    return new TerminalError('invalid_json', `the body is not valid JSON: ${e.message}`, { field: 'body' })
  }
  if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
    return new TerminalError('invalid_request', e.message)
  }
  if (e.name === 'AbortError') return new TerminalError('not_ready', 'the terminal is stopping')
  return new TerminalError('internal', 'internal error')
}

/** The local HTTP API of one terminal. Every route but /openapi.json needs the bearer token. */
export async function startApiServer(terminal: NullmeshTerminal, init: ApiServerInit): Promise<ApiServer> {
  const expected = digest(init.token)
  // browsers: the same token, also as the dashboard's login cookie (GET and HEAD only)
  const browser = createDashboardAuth(init.token)
  const app = Fastify({
    logger: false,
    bodyLimit: API_BODY_LIMIT_BYTES,
    forceCloseConnections: true,
    return503OnClosing: true,
    // a path parameter of any length reaches the route (→ 400 invalid_request), not the router's 414
    routerOptions: { maxParamLength: 65_536 },
    // what the HTTP parser refuses is answered { code, message } too
    clientErrorHandler,
  })
  // One validation path for HTTP and in-process callers: the route handlers call the terminal's
  // own TypeBox check (no ajv type coercion, no silent removal of unknown fields). Responses are
  // plain JSON.stringify: the schemas document them, they never reshape them.
  app.setValidatorCompiler(() => () => true)
  app.setSerializerCompiler(() => (data) => JSON.stringify(data))
  // JSON only: any other body is 415 (Fastify would parse text/plain as a string)
  app.removeContentTypeParser('text/plain')

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'nullmesh terminal API',
        version: '1',
        description:
          'Local payment API of a nullmesh terminal. Bound to 127.0.0.1 by default; every route except this document requires `Authorization: Bearer <token>`. Errors are `{ code, message, field? }`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  })

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const mapped = toTerminalError(err)
    if (mapped.code === 'internal') log('%s %s failed: %o', req.method, req.url, err)
    return sendError(reply, mapped)
  })
  app.setNotFoundHandler((req, reply) => {
    sendError(reply, new TerminalError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`))
  })

  // when each request reached us: a payment's tap budget counts from there (parsing and validation
  // under load are part of what the customer waits for, and so is a busy loop that read it late)
  const arrivals = new WeakMap<object, number>()
  const arrival = init.arrival ?? ((now: number) => now)
  const tappedAt = init.tappedAt ?? ((a: number) => a)
  const arrivedAt = (req: FastifyRequest): number => arrivals.get(req.raw) ?? performance.now()
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    let at = arrival(performance.now())
    const claimed = req.headers[TAP_AT_HEADER]
    if (claimed !== undefined) {
      const ms = typeof claimed === 'string' && /^[0-9]{1,16}$/.test(claimed) ? Number(claimed) : Number.NaN
      if (!Number.isSafeInteger(ms))
        return sendError(
          reply,
          new TerminalError(
            'invalid_request',
            `${TAP_AT_HEADER} must be the tap time in ms since the epoch`,
            {
              field: TAP_AT_HEADER,
            },
          ),
        )
      at = tappedAt(at, ms)
    }
    arrivals.set(req.raw, at)
    const path = req.url.split('?')[0]!
    if (PUBLIC_ROUTES.has(path) || path === DASHBOARD_PATH || isPublicDashboardPath(path)) return
    const token = browser.token(req)
    if (token === undefined || !timingSafeEqual(digest(token), expected)) {
      reply.header('www-authenticate', 'Bearer')
      return sendError(
        reply,
        new TerminalError('unauthorized', 'a valid bearer token is required (Authorization: Bearer <token>)'),
      )
    }
  })

  const errors = { 400: ErrorSchema, 401: ErrorSchema, 503: ErrorSchema }

  app.post(
    '/v1/payments',
    {
      schema: {
        summary: 'Decide a payment',
        description:
          "Online with central when reachable and allowed by offlineBehavior, otherwise offline (policy, nullifier, barrier). The answer comes within the tap budget, counted from the request's arrival; the payment is recorded before it (or, if the budget runs out first, the key stays in flight until it is, and a retry gets the same answer). The same idempotencyKey with the same amount, currency, method and card returns the first decision; with other ones it is refused 409 idempotency_key_reused.",
        tags: ['payments'],
        body: PaymentRequestSchema,
        response: { 200: PaymentResponseSchema, 403: ErrorSchema, 409: ErrorSchema, ...errors },
      },
    },
    async (req) => {
      // a client that hangs up does not abort the decision: it is recorded, and a retry with the
      // same idempotency key gets it
      return terminal.payValidated(parsePaymentRequest(req.body), { receivedAt: arrivedAt(req) })
    },
  )

  app.get(
    '/v1/payments/:id',
    {
      schema: {
        summary: 'A payment: the decision as first answered and its settlement state',
        tags: ['payments'],
        params: PaymentParamsSchema,
        response: { 200: PaymentSchema, 404: ErrorSchema, ...errors },
      },
    },
    async (req) => {
      const { id } = req.params as { id: string }
      if (typeof id !== 'string' || id.length === 0 || id.length > 128) {
        throw new TerminalError('invalid_request', 'id must be a payment id', { field: 'id' })
      }
      const payment = await terminal.payment(id)
      if (payment === undefined)
        throw new TerminalError('payment_not_found', `no payment ${id}`, { field: 'id' })
      return payment
    },
  )

  app.get(
    '/v1/status',
    {
      schema: {
        summary: 'Connectivity, mesh mode, the offline queue and the exposure bound',
        tags: ['status'],
        response: { 200: StatusSchema, ...errors },
      },
    },
    async () => terminal.status(),
  )

  const streams = new Set<() => void>()
  app.get(
    '/v1/events',
    {
      schema: {
        summary: 'Server-Sent Events',
        description:
          'Event names: connectivity, mesh.mode, payment.decided, payment.queued, payment.forwarded, payment.completed, payment.failed. `data` is JSON; payment events carry `{ payment, at }` with the payment as GET /v1/payments/:id shows it.',
        tags: ['status'],
        response: { 200: Type.String({ description: 'text/event-stream' }), ...errors },
      },
    },
    (_req, reply) => {
      reply.hijack()
      const res = reply.raw
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      })
      const write = (chunk: string): void => {
        if (res.destroyed || res.writableEnded) return
        if (res.writableLength > SSE_MAX_BUFFERED_BYTES) {
          log('dropping a slow event stream reader')
          close()
          return
        }
        res.write(chunk)
      }
      const send = (e: Pick<TerminalEvent, 'type' | 'data'> & { id?: string }): void => {
        write(
          `${e.id === undefined ? '' : `id: ${e.id}\n`}event: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`,
        )
      }
      const listener = (evt: CustomEvent<TerminalEvent>): void => send(evt.detail)
      const keepalive = setInterval(() => write(': keepalive\n\n'), SSE_KEEPALIVE_MS)
      keepalive.unref()
      let closed = false
      const close = (): void => {
        if (closed) return
        closed = true
        clearInterval(keepalive)
        terminal.removeEventListener('event', listener)
        streams.delete(close)
        if (!res.writableEnded) res.end()
      }
      streams.add(close)
      terminal.addEventListener('event', listener)
      res.on('close', close)
      write(`retry: ${SSE_RETRY_MS}\n\n`)
      // the current state first, so a dashboard needs no extra request
      const now = Date.now()
      const status = terminal.status()
      send({ type: 'connectivity', data: { online: status.online, at: now } })
      send({ type: 'mesh.mode', data: { mode: status.mesh.mode, peers: status.mesh.peers, at: now } })
    },
  )

  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics',
        tags: ['status'],
        response: { 200: Type.String(), ...errors },
      },
    },
    async (_req, reply) => {
      const text = await terminal.metrics()
      return reply
        .type(terminal.metricsContentType)
        .serializer((s: unknown) => s as string)
        .send(text)
    },
  )

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  // the venue dashboard (dashboard.ts): GET /dashboard, /v1/dashboard, /v1/dashboard/stream
  await registerTerminalDashboard(app, terminal, init.token)

  await app.listen({ host: init.host, port: init.port })
  const address = app.server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${host}:${address.port}`

  return {
    url,
    app,
    async close(): Promise<void> {
      for (const close of [...streams]) close()
      await app.close()
    },
  }
}
