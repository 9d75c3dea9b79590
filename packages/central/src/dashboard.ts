import {
  createDashboardAuth,
  DASHBOARD_PATH,
  HIDDEN,
  handleLogin,
  loadViews,
  page,
  registerDashboardAssets,
  snapshotStreams,
} from '@nullmesh/dashboard'
import { groupQuorum } from '@nullmesh/policy'
import { decodeEvent, fromBase64url } from '@nullmesh/protocol'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { CentralError } from './errors.js'
import type { Logger } from './logger.js'
import type { CentralService, VenueSummary } from './service.js'

/*
 * Central's dashboard: venues, settlement by status and syncDeclineCode, partition losses, webhook
 * delivery, recent payments and a payment's detail. Read-only, from the service's public interface
 * and its store. With an admin token configured it needs that token (bearer or login cookie);
 * without one it is open like central's other read routes (GET /v1/payments, /summary).
 */

const RECENT = 30
/** central has no event bus: snapshots go out this often, and after every sync or authorisation */
const TICK_MS = 2_000

export interface CentralSnapshot {
  kind: 'central'
  at: number
  events: number
  venues: Array<{ venueId: string; terminals: number; summary: VenueSummary }>
  webhooks: {
    endpoints: Array<{ id: string; url: string }>
    pending: number
    deadLetters: number
    oldestPendingAt: number | null
  }
  recent: Array<{
    paymentId: string
    venue: string
    terminal: string
    amountMinor: number
    currency: string
    status: string
    mode: string | null
    declineCode: string | null
    syncDeclineCode: string | null
    partitionLoss: boolean
    queuedAt: number
  }>
}

export interface CentralDashboardInit {
  service: CentralService
  adminToken: string | undefined
  venueIds: () => string[]
  log: Logger
}

export function registerCentralDashboard(app: FastifyInstance, init: CentralDashboardInit): void {
  const { service, log } = init
  const auth = init.adminToken === undefined ? undefined : createDashboardAuth(init.adminToken)
  const open = auth === undefined
  const title = 'nullmesh central'

  const terminalName = (venue: string, origin: string): string =>
    service.venue(venue)?.roster.find((r) => r.publicKeyHex === origin)?.id ?? `${origin.slice(0, 8)}…`

  const snapshot = async (): Promise<CentralSnapshot> => {
    const store = service.store
    const venues = await Promise.all(
      init.venueIds().map(async (venueId) => ({
        venueId,
        terminals: service.venue(venueId)?.roster.length ?? 0,
        summary: await service.summary(venueId),
      })),
    )
    const [endpoints, outbox, dead, recent, events] = await Promise.all([
      store.listWebhooks(),
      store.listOutbox(),
      store.listDeadLetters(),
      store.listPayments({ limit: RECENT }),
      store.countEvents(),
    ])
    return {
      kind: 'central',
      at: Date.now(),
      events,
      venues,
      webhooks: {
        endpoints: endpoints.map(({ id, url }) => ({ id, url })),
        pending: outbox.length,
        deadLetters: dead.length,
        oldestPendingAt: outbox.length === 0 ? null : Math.min(...outbox.map((o) => o.createdAt)),
      },
      recent: recent.map((p) => ({
        paymentId: p.paymentId,
        venue: p.venue,
        terminal: terminalName(p.venue, p.origin),
        amountMinor: p.amountMinor,
        currency: p.currency,
        status: p.status,
        mode: p.mode ?? null,
        declineCode: p.declineCode ?? null,
        syncDeclineCode: p.syncDeclineCode ?? null,
        partitionLoss: p.partitionLoss === true,
        queuedAt: p.queuedAt,
      })),
    }
  }

  const streams = snapshotStreams(snapshot, (err) => log.error('dashboard snapshot failed: %o', err))
  const tick = setInterval(() => streams.changed(), TICK_MS)
  tick.unref()
  app.addHook('preClose', async () => {
    clearInterval(tick)
    streams.close()
  })
  app.addHook('onResponse', async (req) => {
    if (req.method === 'POST') streams.changed()
  })

  const guard = async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    if (open || auth.valid(auth.token(req))) return
    throw new CentralError('ERR_UNAUTHORIZED', 'the admin token is required (bearer or dashboard login)', 401)
  }

  registerDashboardAssets(app)
  app.get(DASHBOARD_PATH, { schema: HIDDEN }, async (req, reply) => {
    if (auth !== undefined && !handleLogin(auth, title, req, reply)) return reply
    const s = await snapshot()
    const views = await loadViews()
    return reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(
        page({
          title,
          kind: 'central',
          html: views.renderCentral(s),
          snapshot: s,
          stream: '/v1/dashboard/stream',
        }),
      )
  })
  app.get('/v1/dashboard', { preHandler: guard, schema: HIDDEN }, async () => snapshot())
  app.get('/v1/dashboard/stream', { preHandler: guard, schema: HIDDEN }, (req, reply) =>
    streams.open(req, reply),
  )
  // the payment detail: the record, the nullifier's prefix and the Commit's quorum certificate
  app.get('/v1/dashboard/payments/:id', { preHandler: guard, schema: HIDDEN }, async (req) => {
    const { id } = req.params as { id: string }
    if (!/^[0-9a-f]{64}$/.test(id)) throw new CentralError('ERR_INVALID_REQUEST', 'id: a payment id', 400)
    const p = await service.store.getPayment(id)
    if (p === undefined) throw new CentralError('ERR_NOT_FOUND', `payment ${id} is not known`, 404)
    let barrier: { acks: number; quorum: number; ms: number } | undefined
    if (p.commitId !== undefined) {
      const stored = await service.store.getEventById(p.commitId)
      const decoded = stored === undefined ? undefined : decodeEvent(fromBase64url(stored.bytes))
      if (decoded?.ok === true && decoded.value.event.type === 'commit') {
        const commit = decoded.value.event
        const bundle = service.venue(p.venue)
        const acks = commit.acks.filter((a) => a.ack.ok).length
        barrier = {
          acks,
          quorum: bundle === undefined ? acks : groupQuorum(bundle.policy, bundle.roster.length),
          ms: Math.max(0, commit.ts - commit.reservation.event.ts),
        }
      }
    }
    return {
      paymentId: p.paymentId,
      venue: p.venue,
      terminal: terminalName(p.venue, p.origin),
      origin: p.origin,
      amountMinor: p.amountMinor,
      currency: p.currency,
      status: p.status,
      mode: p.mode,
      nullifier: p.nullifier,
      declineCode: p.declineCode,
      syncDeclineCode: p.syncDeclineCode,
      partitionLoss: p.partitionLoss === true,
      flags: p.flags,
      ...(barrier === undefined ? {} : { barrier }),
    }
  })
}
