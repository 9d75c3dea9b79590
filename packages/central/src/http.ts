import { createHash, timingSafeEqual } from 'node:crypto'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { fromBase64url, toBase64url } from '@nullmesh/protocol'
import { Type } from '@sinclair/typebox'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import {
  MAX_BODY_BYTES,
  MAX_EVENT_BASE64_LENGTH,
  MAX_EVENTS_LIMIT,
  MAX_ORIGIN_EVENTS_PAGE,
  MAX_PARAM_LENGTH,
  MAX_PAYMENTS_LIMIT,
  MAX_STATUS_IDS,
  MAX_SYNC_EVENTS,
} from './constants.js'
import { registerCentralDashboard } from './dashboard.js'
import { CentralError } from './errors.js'
import { jsonClientErrorHandler, strictValidatorCompiler } from './http-validation.js'
import type { Logger } from './logger.js'
import type { CentralService } from './service.js'
import { PAYMENT_STATUSES } from './types.js'

export interface HttpAppInit {
  service: CentralService
  adminToken: string | undefined
  log: Logger
  /** the venues served (the dashboard lists them) */
  venueIds?: () => string[]
}

const Base64url = Type.String({
  pattern: '^[A-Za-z0-9_-]+$',
  minLength: 2,
  maxLength: MAX_EVENT_BASE64_LENGTH,
})
const VenueParams = Type.Object({ id: Type.String({ pattern: '^[a-zA-Z0-9._-]{1,64}$' }) })

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

interface JsonSchema {
  properties?: Record<string, unknown>
  required?: string[]
}

interface RouteDoc {
  method: string
  url: string
  schema: { body?: unknown; params?: JsonSchema; querystring?: JsonSchema }
  admin: boolean
}

/** A minimal OpenAPI 3.1 document built from the routes' own validation schemas. */
function openApi(routes: RouteDoc[]): unknown {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const r of routes) {
    const path = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
    const parameters: unknown[] = []
    for (const [where, schema] of [
      ['path', r.schema.params],
      ['query', r.schema.querystring],
    ] as const) {
      for (const [name, s] of Object.entries(schema?.properties ?? {})) {
        parameters.push({
          name,
          in: where,
          required: where === 'path' || (schema?.required ?? []).includes(name),
          schema: s,
        })
      }
    }
    const op: Record<string, unknown> = {
      responses: { default: { description: 'JSON; errors are { code, message }' } },
    }
    if (parameters.length > 0) op.parameters = parameters
    if (r.schema.body !== undefined)
      op.requestBody = { required: true, content: { 'application/json': { schema: r.schema.body } } }
    if (r.admin) op.security = [{ admin: [] }]
    paths[path] ??= {}
    paths[path][r.method] = op
  }
  return {
    openapi: '3.1.0',
    info: { title: 'nullmesh central', version: '1' },
    components: { securitySchemes: { admin: { type: 'http', scheme: 'bearer' } } },
    paths,
  }
}

/** The HTTP API. Bad input → 4xx `{ code, message }` naming the field; nothing is recorded then. */
export function buildHttpApp(init: HttpAppInit): FastifyInstance {
  const { service, log } = init
  const app = Fastify({
    logger: false,
    bodyLimit: MAX_BODY_BYTES,
    forceCloseConnections: true,
    // a path parameter of any length reaches its schema (→ 400 { code, message }), not the router's 414
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    clientErrorHandler: jsonClientErrorHandler({
      invalid: 'ERR_INVALID_REQUEST',
      timeout: 'ERR_REQUEST_TIMEOUT',
      headers: 'ERR_HEADERS_TOO_LARGE',
    }),
  }).withTypeProvider<TypeBoxTypeProvider>()
  // exact types, no coercion, unknown fields refused (issue 17, item 4)
  app.setValidatorCompiler(strictValidatorCompiler)
  const admin = init.adminToken === undefined ? undefined : hashToken(init.adminToken)

  app.setErrorHandler(
    (err: Error & { statusCode?: number; code?: string; validation?: unknown }, _req, reply) => {
      if (err instanceof CentralError)
        return reply.code(err.status).send({ code: err.code, message: err.message })
      if (err.validation !== undefined)
        return reply.code(400).send({ code: 'ERR_INVALID_REQUEST', message: err.message })
      if (err.name === 'AbortError')
        return reply.code(503).send({ code: 'ERR_ABORTED', message: 'the service is stopping' })
      if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
        return reply
          .code(err.statusCode)
          .send({ code: err.code ?? 'ERR_INVALID_REQUEST', message: err.message })
      }
      log.error('request failed: %o', err)
      return reply.code(500).send({ code: 'ERR_INTERNAL', message: 'internal error' })
    },
  )
  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .send({ code: 'ERR_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` })
  })

  const requireAdmin = async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    if (admin === undefined) throw new CentralError('ERR_ADMIN_DISABLED', 'no admin token is configured', 403)
    const header = req.headers.authorization
    const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : undefined
    if (token === undefined || !timingSafeEqual(hashToken(token), admin)) {
      throw new CentralError('ERR_UNAUTHORIZED', 'authorization: a valid admin bearer token is required', 401)
    }
  }

  const routes: RouteDoc[] = []
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    for (const method of methods) {
      if (method === 'HEAD' || route.url === '/openapi.json') continue
      if ((route.schema as { hide?: boolean } | undefined)?.hide === true) continue
      routes.push({
        method: method.toLowerCase(),
        url: route.url,
        schema: (route.schema ?? {}) as RouteDoc['schema'],
        admin: route.preHandler !== undefined,
      })
    }
  })
  app.get('/openapi.json', async () => openApi(routes))

  app.get('/healthz', async () => ({ ok: true }))

  app.post(
    '/v1/sync',
    { schema: { body: Type.Object({ events: Type.Array(Base64url, { maxItems: MAX_SYNC_EVENTS }) }) } },
    async (req) => service.ingest(req.body.events.map(fromBase64url)),
  )

  app.post('/v1/authorize', { schema: { body: Type.Object({ reservation: Base64url }) } }, async (req) =>
    service.authorize(fromBase64url(req.body.reservation)),
  )

  app.post('/v1/authorize/void', { schema: { body: Type.Object({ reservation: Base64url }) } }, async (req) =>
    service.void(fromBase64url(req.body.reservation)),
  )

  app.get('/v1/venues/:id/policy', { schema: { params: VenueParams } }, async (req) => {
    const bundle = service.venue(req.params.id)
    if (bundle === undefined)
      throw new CentralError('ERR_UNKNOWN_VENUE', `venue ${req.params.id} is not served here`, 404)
    return bundle.policyDocument
  })

  app.get('/v1/venues/:id/roster', { schema: { params: VenueParams } }, async (req) => {
    const bundle = service.venue(req.params.id)
    if (bundle === undefined)
      throw new CentralError('ERR_UNKNOWN_VENUE', `venue ${req.params.id} is not served here`, 404)
    return {
      venueId: bundle.venueId,
      operatorPublicKey: Buffer.from(bundle.operatorPublicKey).toString('hex'),
      terminals: bundle.roster.map((r) => ({
        id: r.id,
        publicKey: r.publicKeyHex,
        certificate: toBase64url(r.certificate),
      })),
    }
  })

  app.get('/v1/venues/:id/denylist', { schema: { params: VenueParams } }, async (req) =>
    service.getDenylist(req.params.id),
  )

  app.post(
    '/v1/venues/:id/denylist',
    {
      preHandler: requireAdmin,
      schema: {
        params: VenueParams,
        body: Type.Object(
          {
            blockedBins: Type.Optional(
              Type.Array(Type.String({ pattern: '^[0-9]{1,8}$' }), { maxItems: 10_000 }),
            ),
            denylistCardKeys: Type.Optional(
              Type.Array(Type.String({ pattern: '^[0-9a-f]{32}$' }), { maxItems: 100_000 }),
            ),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => service.updateDenylist(req.params.id, req.body),
  )

  // issue 17, item 2: operator-signed revocations. Publishing needs no admin token: the document
  // carries the operator's signature, checked against the venue's operator key.
  const SignedDoc = Type.Object(
    {
      payload: Type.Object({}, { additionalProperties: true }),
      signer: Type.String({ pattern: '^[0-9a-f]{64}$' }),
      signature: Type.String({ pattern: '^[A-Za-z0-9_-]{1,200}$' }),
    },
    { additionalProperties: false },
  )
  app.get('/v1/venues/:id/revocations', { schema: { params: VenueParams } }, async (req) =>
    service.listRevocations(req.params.id),
  )
  app.post('/v1/venues/:id/revocations', { schema: { params: VenueParams, body: SignedDoc } }, async (req) =>
    service.publishRevocation(req.params.id, req.body),
  )
  // issue 17, item 5: terminals' sync checkpoints (terminal-signed) and the abandonment list
  app.post('/v1/sync/checkpoint', { schema: { body: SignedDoc } }, async (req) =>
    service.checkpoint(req.body),
  )
  app.get('/v1/venues/:id/abandoned', { schema: { params: VenueParams } }, async (req) =>
    service.abandonedList(req.params.id),
  )

  app.get('/v1/venues/:id/summary', { schema: { params: VenueParams } }, async (req) =>
    service.summary(req.params.id),
  )

  app.get(
    '/v1/payments',
    {
      schema: {
        querystring: Type.Object({
          venue: Type.Optional(Type.String({ pattern: '^[a-zA-Z0-9._-]{1,64}$' })),
          status: Type.Optional(Type.Union(PAYMENT_STATUSES.map((s) => Type.Literal(s)))),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAYMENTS_LIMIT })),
        }),
      },
    },
    async (req) => {
      const { venue, status, limit } = req.query
      return {
        payments: await service.listPayments({
          ...(venue === undefined ? {} : { venue }),
          ...(status === undefined ? {} : { status }),
          ...(limit === undefined ? {} : { limit }),
        }),
      }
    },
  )

  // many payments' states in one request (a terminal polls its unsettled ones; one GET each made the
  // polls most of central's requests when a venue's links came back)
  app.post(
    '/v1/payments/status',
    {
      schema: {
        body: Type.Object({
          ids: Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }), {
            minItems: 1,
            maxItems: MAX_STATUS_IDS,
          }),
        }),
      },
    },
    async (req) => ({ payments: await service.getPayments(req.body.ids) }),
  )

  // one terminal's own events, for the terminal that lost its disk (docs/protocol.md, "Lost disks");
  // open like the other read routes: every terminal of the venue holds the same signed events
  app.get(
    '/v1/terminals/:key/events',
    {
      schema: {
        params: Type.Object({ key: Type.String({ pattern: '^[0-9a-f]{64}$' }) }),
        querystring: Type.Object({
          after: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_ORIGIN_EVENTS_PAGE })),
        }),
      },
    },
    async (req) =>
      service.originEvents(req.params.key, req.query.after ?? 0, req.query.limit ?? MAX_ORIGIN_EVENTS_PAGE),
  )

  app.get(
    '/v1/payments/:id',
    { schema: { params: Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{64}$' }) }) } },
    async (req) => {
      const p = await service.getPayment(req.params.id)
      if (p === undefined)
        throw new CentralError('ERR_NOT_FOUND', `payment ${req.params.id} is not known`, 404)
      return p
    },
  )

  /**
   * Validation drops unknown body fields (Fastify's default): for the webhook routes a field we do not
   * know is a 400 instead (a typo such as `enabled` must not answer 200 having changed nothing).
   */
  const onlyFields =
    (...allowed: string[]) =>
    async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
      await requireAdmin(req, reply)
      const body = req.body
      if (body === null || typeof body !== 'object' || Array.isArray(body)) return
      const unknown = Object.keys(body).filter((k) => !allowed.includes(k))
      if (unknown.length > 0)
        throw new CentralError(
          'ERR_INVALID_REQUEST',
          `${unknown.join(', ')}: unknown field${unknown.length > 1 ? 's' : ''} (known: ${allowed.join(', ')})`,
        )
    }
  const WebhookParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })
  const EventTypes = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 32 })
  const notRegistered = (id: string): CentralError =>
    new CentralError('ERR_NOT_FOUND', `webhook ${id} is not registered`, 404)

  app.post(
    '/v1/webhooks',
    {
      preValidation: onlyFields('url', 'secret', 'events'),
      preHandler: requireAdmin,
      schema: {
        body: Type.Object(
          {
            url: Type.String({ minLength: 1, maxLength: 2048 }),
            secret: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
            events: Type.Optional(EventTypes),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => reply.code(201).send(await service.addWebhook(req.body)),
  )

  app.get('/v1/webhooks', { preHandler: requireAdmin }, async () => ({
    webhooks: await service.listWebhooks(),
  }))

  app.get(
    '/v1/webhooks/:id',
    { preHandler: requireAdmin, schema: { params: WebhookParams } },
    async (req) => {
      const w = await service.getWebhook(req.params.id)
      if (w === undefined) throw notRegistered(req.params.id)
      return w
    },
  )

  app.patch(
    '/v1/webhooks/:id',
    {
      preValidation: onlyFields('url', 'events', 'disabled'),
      preHandler: requireAdmin,
      schema: {
        params: WebhookParams,
        body: Type.Object(
          {
            url: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
            events: Type.Optional(EventTypes),
            disabled: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => service.updateWebhook(req.params.id, req.body),
  )

  app.delete(
    '/v1/webhooks/:id',
    { preHandler: requireAdmin, schema: { params: WebhookParams } },
    async (req, reply) => {
      if (!(await service.removeWebhook(req.params.id))) throw notRegistered(req.params.id)
      return reply.code(204).send()
    },
  )

  app.post(
    '/v1/webhooks/:id/rotate-secret',
    {
      preValidation: onlyFields('overlapSeconds', 'secret'),
      preHandler: requireAdmin,
      schema: {
        params: WebhookParams,
        body: Type.Optional(
          Type.Object(
            {
              overlapSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 24 * 3600 })),
              secret: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
            },
            { additionalProperties: false },
          ),
        ),
      },
    },
    async (req) => service.rotateWebhookSecret(req.params.id, req.body ?? {}),
  )

  app.post(
    '/v1/webhooks/:id/redeliver',
    {
      preValidation: onlyFields('eventId', 'since', 'until'),
      preHandler: requireAdmin,
      schema: {
        params: WebhookParams,
        body: Type.Object(
          {
            eventId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
            since: Type.Optional(Type.Integer({ minimum: 0 })),
            until: Type.Optional(Type.Integer({ minimum: 0 })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => reply.code(202).send(await service.redeliverWebhook(req.params.id, req.body)),
  )

  app.post(
    '/v1/webhooks/:id/test',
    {
      preValidation: onlyFields('type'),
      preHandler: requireAdmin,
      schema: {
        params: WebhookParams,
        body: Type.Object(
          { type: Type.String({ minLength: 1, maxLength: 64 }) },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => service.testWebhook(req.params.id, req.body.type),
  )

  app.get(
    '/v1/events',
    {
      preHandler: requireAdmin,
      schema: {
        querystring: Type.Object(
          {
            type: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
            payment: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
            created_gte: Type.Optional(Type.Integer({ minimum: 0 })),
            created_lt: Type.Optional(Type.Integer({ minimum: 0 })),
            order: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')])),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_EVENTS_LIMIT })),
            cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const q = req.query
      return service.listEvents({
        ...(q.type === undefined ? {} : { type: q.type }),
        ...(q.payment === undefined ? {} : { payment: q.payment }),
        ...(q.created_gte === undefined ? {} : { createdGte: q.created_gte }),
        ...(q.created_lt === undefined ? {} : { createdLt: q.created_lt }),
        ...(q.order === undefined ? {} : { order: q.order }),
        ...(q.limit === undefined ? {} : { limit: q.limit }),
        ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
      })
    },
  )

  app.get(
    '/v1/events/:id',
    { preHandler: requireAdmin, schema: { params: Type.Object({ id: Type.String({ maxLength: 128 }) }) } },
    async (req) => {
      const e = await service.getEvent(req.params.id)
      if (e === undefined)
        throw new CentralError('ERR_NOT_FOUND', `event ${req.params.id} is not in the event log`, 404)
      return e
    },
  )

  // Prometheus: open like the other read routes without an admin token, behind it with one
  app.get('/metrics', async (req, reply) => {
    if (init.adminToken !== undefined) await requireAdmin(req, reply)
    return reply.type('text/plain; version=0.0.4').send(await service.metrics())
  })

  // GET /dashboard, /v1/dashboard, /v1/dashboard/stream, /v1/dashboard/payments/:id (dashboard.ts)
  registerCentralDashboard(app as unknown as FastifyInstance, {
    service,
    adminToken: init.adminToken,
    venueIds: init.venueIds ?? (() => []),
    log,
  })

  return app as unknown as FastifyInstance
}
