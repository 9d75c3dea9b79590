import { mkdir } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { VenueBundle } from '@nullmesh/policy'
import { type SignedAbandonment, type SignedDocument, signDocument, VerifyPool } from '@nullmesh/protocol'
import type { FastifyInstance } from 'fastify'
import {
  type AbandonDeps,
  abandonmentList,
  abandonScan,
  DEFAULT_ABANDON_MARGIN_MS,
  receiveCheckpoint,
} from './abandon.js'
import {
  DEFAULT_HOST,
  DEFAULT_PORT,
  DEFAULT_SETTLE_INTERVAL_MS,
  DENYLIST_DOMAIN,
  MAX_ORIGIN_EVENTS_PAGE,
  MAX_SYNC_EVENTS,
} from './constants.js'
import {
  Engine,
  type EventResult,
  type IngestResult,
  type OnlineAuthorization,
  type VoidResult,
} from './engine.js'
import { CentralError } from './errors.js'
import { buildHttpApp } from './http.js'
import { createSimulatedIssuer, type IssuerAdapter } from './issuer.js'
import { type LedgerExportHeader, readLedgerExport } from './ledger-export.js'
import { createLogger } from './logger.js'
import { Mutex } from './mutex.js'
import { summarize } from './report.js'
import {
  listRevocationDocuments,
  loadRevocations,
  type PublishResult,
  publishRevocation,
  type RevocationDeps,
} from './revocations.js'
import { Settler, type SettleSummary } from './settlement.js'
import { createSqlStore } from './sql-store.js'
import { type CentralStore, type PaymentFilter, StoreConflict } from './store.js'
import {
  type AbortOptions,
  type DenylistState,
  type PaymentStatus,
  type PaymentView,
  type SyncDeclineCode,
  toPaymentView,
  type WebhookEvent,
} from './types.js'
import { VenueRegistry } from './venues.js'
import {
  type EventList,
  type EventListQuery,
  type TestDelivery,
  WebhookAdmin,
  type WebhookCreate,
  type WebhookPatch,
  type WebhookRegistration,
  type WebhookView,
} from './webhook-admin.js'
import { WebhookDispatcher, type WebhookRetryOptions } from './webhooks.js'

const log = createLogger('nullmesh:central')

export interface CentralServiceInit {
  /**
   * where the embedded store (PGlite, in `<dataDir>/central-pg`) and the default simulated issuer's
   * journal live; optional with `storeUrl` or `store`
   */
  dataDir?: string
  /** a PostgreSQL server, postgres://user:pass@host:port/db, instead of the embedded store */
  storeUrl?: string
  /** the venues served: their rosters, policies and operator keys */
  venues: VenueBundle[]
  /** default 127.0.0.1, port 0 (any free port) */
  listen?: { host: string; port: number }
  /** the payment processor; default a simulated issuer journaled in dataDir */
  issuer?: IssuerAdapter
  /** bearer token for admin endpoints (webhooks, deny-list updates); without one they answer 403 */
  adminToken?: string
  /** the retry schedule (default: 15 attempts over about 3 days), attempt timeout, per-endpoint concurrency */
  webhookRetry?: WebhookRetryOptions
  /** how long the event log keeps an event (default 30 days; longer while an enabled endpoint waits for it) */
  eventRetentionMs?: number
  /**
   * how often the settlement loop runs besides being woken by ingest (default 1 s); 0 turns automatic
   * settlement off: payments then settle only in settleNow()
   */
  settleIntervalMs?: number
  /** the clock, ms since the epoch (certificate validity, expiry, timestamps) */
  now?: () => number
  /** another storage backend; default PGlite in `<dataDir>/central-pg`, or PostgreSQL at storeUrl */
  store?: CentralStore
  /**
   * issue 17, item 5: margin (ms) on top of tap budget and clock skew before a reservation that every
   * live ledger synced past is abandoned (default 60 s)
   */
  abandonMarginMs?: number
  /** how long a settlement claim holds against other central processes on one database (default 30 s) */
  settleLeaseMs?: number
  /** one issuer call may take at most this long (default 10 s) */
  issuerTimeoutMs?: number
  /** a failed issuer call is retried after this long at the earliest (default 2 s) */
  issuerRetryMs?: number
  /**
   * worker threads verifying the signatures of synced events (default: the cores available);
   * 0 verifies on the main thread
   */
  verifyThreads?: number
}

export interface DenylistPayload {
  venueId: string
  version: number
  blockedBins: string[]
  denylistCardKeys: string[]
}

export interface DenylistUpdate {
  /** replaces the list when given */
  blockedBins?: string[]
  denylistCardKeys?: string[]
}

export interface VenueSummary {
  venueId: string
  /** payments known (reservations seen), whatever their state */
  payments: number
  byStatus: Record<PaymentStatus, number>
  settled: { completed: number; failed: number }
  /** failed payments by syncDeclineCode (offline) or declineCode (online) */
  failedByCode: Record<string, number>
  /** approved offline (committed) but not yet settled, by currency: money at risk */
  offlineExposureMinor: Record<string, number>
  /** committed offline and then failed, by currency: money lost */
  offlineLossMinor: Record<string, number>
  /** second Commits of an already committed nullifier (the mesh was partitioned) */
  partitionLosses: number
  partitionLossMinor: Record<string, number>
  /** Commits failed as policy violations (issue 17), by origin terminal public key (hex) */
  policyViolations: Record<string, number>
}

export interface ImportResult extends IngestResult {
  header: LedgerExportHeader
}

export interface CentralService {
  /** Open the store, listen, start settlement and webhook delivery. Idempotent. */
  start(opts?: AbortOptions): Promise<void>
  /** Stop everything and close the store; in-flight work is left to be re-driven next start. Idempotent. */
  stop(opts?: AbortOptions): Promise<void>
  /** base URL once started, e.g. http://127.0.0.1:41234 */
  readonly url: string
  readonly store: CentralStore
  readonly issuer: IssuerAdapter
  /** Merge wire events (a terminal's sync); at most 500 per call is advisable for latency, not enforced. */
  ingest(events: Uint8Array[], opts?: AbortOptions): Promise<IngestResult>
  /** Merge a ledger export file exactly like a sync (in batches of 500). */
  importFile(path: string, opts?: AbortOptions): Promise<ImportResult>
  /** The online path: authorise a signed reservation now. */
  authorize(reservation: Uint8Array, opts?: AbortOptions): Promise<OnlineAuthorization>
  /**
   * Void a signed reservation its terminal declined after an unanswered online authorisation: the
   * customer is not charged for it (an online charge is reversed), unless a Commit of it was merged
   * first ('committed'). Idempotent.
   */
  void(reservation: Uint8Array, opts?: AbortOptions): Promise<VoidResult>
  /** Settle everything queued (or left processing) now. */
  settleNow(opts?: AbortOptions): Promise<SettleSummary>
  /** Attempt every webhook delivery that is due now. */
  flushWebhooks(opts?: AbortOptions): Promise<void>
  getPayment(paymentId: string, opts?: AbortOptions): Promise<PaymentView | undefined>
  /** Several payments at once, unknown ids left out: a terminal's status poll in one request. */
  getPayments(paymentIds: string[], opts?: AbortOptions): Promise<PaymentView[]>
  listPayments(filter: PaymentFilter, opts?: AbortOptions): Promise<PaymentView[]>
  /**
   * One terminal's own events (wire bytes, base64url) with seq > afterSeq, in seq order, at most
   * `limit`; `next` is the seq to ask after when the page was full. A terminal that lost its disk
   * takes them back before it signs again (docs/protocol.md, "Lost disks").
   */
  originEvents(
    origin: string,
    afterSeq: number,
    limit: number,
    opts?: AbortOptions,
  ): Promise<{ events: string[]; next: number | null }>
  summary(venueId: string, opts?: AbortOptions): Promise<VenueSummary>
  /** Register an endpoint: http(s) URL, secret ≥ 32 bytes (default generated), event types (default all). */
  addWebhook(endpoint: WebhookCreate, opts?: AbortOptions): Promise<WebhookRegistration>
  removeWebhook(id: string, opts?: AbortOptions): Promise<boolean>
  listWebhooks(opts?: AbortOptions): Promise<WebhookView[]>
  /** An endpoint with its delivery health (pending, oldest pending, last success and error, disabled). */
  getWebhook(id: string, opts?: AbortOptions): Promise<WebhookView | undefined>
  /** Change url, events or disabled; re-enabling sends what waited, in order. */
  updateWebhook(id: string, patch: WebhookPatch, opts?: AbortOptions): Promise<WebhookView>
  /** A new secret; the old one keeps signing (a second v1=) for overlapSeconds (default 24 h). */
  rotateWebhookSecret(
    id: string,
    req: { overlapSeconds?: number; secret?: string },
    opts?: AbortOptions,
  ): Promise<{ id: string; secret: string; previousSecretExpiresAt: number }>
  /** Queue one logged event, or every event since a time, for the endpoint again. */
  redeliverWebhook(
    id: string,
    req: { eventId?: string; since?: number; until?: number },
    opts?: AbortOptions,
  ): Promise<{ queued: number }>
  /** Sign and send a test event of this type to the endpoint now; its answer. */
  testWebhook(id: string, type: string, opts?: AbortOptions): Promise<TestDelivery>
  /** The event log, filtered, a page at a time. */
  listEvents(query: EventListQuery, opts?: AbortOptions): Promise<EventList>
  getEvent(id: string, opts?: AbortOptions): Promise<WebhookEvent | undefined>
  /** Prune the event log now (it also runs by itself). */
  pruneEvents(opts?: AbortOptions): Promise<{ events: number; deliveries: number }>
  /** Prometheus text exposition of webhook delivery. */
  metrics(opts?: AbortOptions): Promise<string>
  /** The venue's current deny list, signed by its operator key. */
  getDenylist(venueId: string, opts?: AbortOptions): Promise<SignedDocument<DenylistPayload>>
  /** Replace the venue's blocked BINs and/or card keys; the version increments. */
  updateDenylist(
    venueId: string,
    update: DenylistUpdate,
    opts?: AbortOptions,
  ): Promise<SignedDocument<DenylistPayload>>
  /** The venue's signed policy document and roster, as loaded. */
  venue(venueId: string): VenueBundle | undefined
  /** issue 17: publish an operator-signed revocation of one of the venue's terminals */
  publishRevocation(venueId: string, doc: unknown, opts?: AbortOptions): Promise<PublishResult>
  /** issue 17: the venue's revocations, as signed documents */
  listRevocations(venueId: string, opts?: AbortOptions): Promise<{ venueId: string; revocations: unknown[] }>
  /** issue 17, item 5: record a terminal's signed sync checkpoint; abandons what it allows */
  checkpoint(
    doc: unknown,
    opts?: AbortOptions,
  ): Promise<{ venueId: string; terminal: string; at: number; abandoned: number }>
  /** issue 17, item 5: abandon what the checkpoints allow now; the ids abandoned */
  abandonNow(venueId: string, opts?: AbortOptions): Promise<string[]>
  /** issue 17, item 5: the venue's recently abandoned reservations, signed with its operator key */
  abandonedList(venueId: string, opts?: AbortOptions): Promise<SignedAbandonment>
}

class DefaultCentralService implements CentralService {
  readonly store: CentralStore
  readonly issuer: IssuerAdapter
  private readonly init: CentralServiceInit
  private readonly now: () => number
  private readonly venues: VenueRegistry
  private readonly mutex = new Mutex()
  private readonly engine: Engine
  private readonly pool: VerifyPool | undefined
  private readonly settler: Settler
  private readonly dispatcher: WebhookDispatcher
  private readonly webhooks: WebhookAdmin
  private app: FastifyInstance | undefined
  private address = ''
  private state: 'stopped' | 'starting' | 'started' | 'stopping' = 'stopped'
  private transition: Promise<void> | undefined

  constructor(init: CentralServiceInit) {
    this.init = init
    this.now = init.now ?? Date.now
    this.venues = new VenueRegistry(init.venues)
    this.store = init.store ?? defaultStore(init)
    this.issuer =
      init.issuer ??
      createSimulatedIssuer({
        seed: 'nullmesh',
        ...(init.dataDir === undefined ? {} : { journalPath: join(init.dataDir, 'simulated-issuer.jsonl') }),
      })
    this.dispatcher = new WebhookDispatcher({
      store: this.store,
      now: this.now,
      ...(init.webhookRetry === undefined ? {} : { retry: init.webhookRetry }),
      ...(init.eventRetentionMs === undefined ? {} : { retentionMs: init.eventRetentionMs }),
      log: log.extend('webhooks'),
    })
    this.webhooks = new WebhookAdmin({
      store: this.store,
      dispatcher: this.dispatcher,
      now: this.now,
      log: log.extend('webhooks'),
      write: (ops) => this.engine.write(ops),
    })
    this.pool =
      init.verifyThreads === 0
        ? undefined
        : new VerifyPool({
            ...(init.verifyThreads === undefined ? {} : { size: init.verifyThreads }),
            log: log.extend('verify'),
          })
    this.engine = new Engine({
      ...(this.pool === undefined ? {} : { verifyPool: this.pool }),
      store: this.store,
      venues: this.venues,
      issuer: this.issuer,
      mutex: this.mutex,
      now: this.now,
      log,
      ...(init.issuerTimeoutMs === undefined ? {} : { issuerTimeoutMs: init.issuerTimeoutMs }),
      ...(init.settleLeaseMs === undefined ? {} : { settleLeaseMs: init.settleLeaseMs }),
      onOutbox: (endpoints) => this.dispatcher.kick(endpoints),
      onQueued: () => this.settler.kick(),
    })
    this.settler = new Settler({
      engine: this.engine,
      store: this.store,
      now: this.now,
      intervalMs: init.settleIntervalMs ?? DEFAULT_SETTLE_INTERVAL_MS,
      log: log.extend('settle'),
      ...(init.issuerRetryMs === undefined ? {} : { issuerRetryMs: init.issuerRetryMs }),
    })
  }

  get url(): string {
    return this.address
  }

  async start(opts: AbortOptions = {}): Promise<void> {
    if (this.state === 'started') return
    if (this.state === 'starting') return this.transition
    if (this.state === 'stopping') await this.transition
    opts.signal?.throwIfAborted()
    this.state = 'starting'
    this.transition = this.doStart().then(
      () => {
        this.state = 'started'
      },
      async (err: unknown) => {
        this.state = 'stopped'
        await this.app?.close().catch(() => {})
        this.app = undefined
        await this.pool?.stop()
        await this.store.close().catch(() => {})
        throw err
      },
    )
    return this.transition
  }

  private async doStart(): Promise<void> {
    if (this.init.dataDir !== undefined) await mkdir(this.init.dataDir, { recursive: true })
    await this.store.open()
    this.pool?.start()
    await loadRevocations(this.revocationDeps())
    const app = buildHttpApp({
      service: this,
      adminToken: this.init.adminToken,
      log,
      venueIds: () => this.venues.ids(),
    })
    this.app = app
    const listen = this.init.listen ?? { host: DEFAULT_HOST, port: DEFAULT_PORT }
    await app.listen({ host: listen.host, port: listen.port })
    const addr = app.server.address() as AddressInfo
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
    this.address = `http://${host}:${addr.port}`
    this.settler.start()
    this.dispatcher.start()
    log('central listening on %s, venues %o', this.address, this.venues.ids())
  }

  async stop(_opts: AbortOptions = {}): Promise<void> {
    if (this.state === 'stopped') return
    if (this.state === 'stopping') return this.transition
    if (this.state === 'starting') await this.transition?.catch(() => {})
    this.state = 'stopping'
    this.transition = (async () => {
      try {
        await this.app?.close()
        this.app = undefined
        await this.settler.stop()
        await this.dispatcher.stop()
        await this.mutex.run(async () => {})
        await this.engine.releaseClaims().catch(() => {})
        await this.pool?.stop()
        await this.store.close()
        log('central stopped')
      } finally {
        this.state = 'stopped'
        this.address = ''
      }
    })()
    return this.transition
  }

  private assertStarted(): void {
    if (this.state !== 'started' && this.state !== 'starting') {
      throw new CentralError('ERR_NOT_STARTED', 'the central service is not started', 503)
    }
  }

  async ingest(events: Uint8Array[], opts: AbortOptions = {}): Promise<IngestResult> {
    this.assertStarted()
    return this.engine.ingest(events, opts)
  }

  async importFile(path: string, opts: AbortOptions = {}): Promise<ImportResult> {
    this.assertStarted()
    const file = await readLedgerExport(path, opts)
    const results: EventResult[] = []
    const payments = new Map<string, IngestResult['payments'][number]>()
    for (let i = 0; i < file.events.length; i += MAX_SYNC_EVENTS) {
      const r = await this.engine.ingest(file.events.slice(i, i + MAX_SYNC_EVENTS), opts)
      results.push(...r.results)
      for (const p of r.payments) payments.set(p.paymentId, p)
    }
    log('imported %s (%s/%s): %d events', path, file.header.venue, file.header.terminal, file.events.length)
    return { header: file.header, results, payments: [...payments.values()] }
  }

  async authorize(reservation: Uint8Array, opts: AbortOptions = {}): Promise<OnlineAuthorization> {
    this.assertStarted()
    return this.engine.authorize(reservation, opts)
  }

  async void(reservation: Uint8Array, opts: AbortOptions = {}): Promise<VoidResult> {
    this.assertStarted()
    return this.engine.void(reservation, opts)
  }

  async settleNow(opts: AbortOptions = {}): Promise<SettleSummary> {
    this.assertStarted()
    return this.settler.drain(opts)
  }

  async flushWebhooks(opts: AbortOptions = {}): Promise<void> {
    this.assertStarted()
    opts.signal?.throwIfAborted()
    await this.dispatcher.flush()
  }

  async getPayment(paymentId: string, opts: AbortOptions = {}): Promise<PaymentView | undefined> {
    this.assertStarted()
    const p = await this.store.getPayment(paymentId, opts)
    return p === undefined ? undefined : toPaymentView(p)
  }

  async getPayments(paymentIds: string[], opts: AbortOptions = {}): Promise<PaymentView[]> {
    this.assertStarted()
    const ids = [...new Set(paymentIds)]
    if (ids.length === 0) return []
    const read = await this.store.readSet(
      { ids: [], events: [], payments: ids, nullifiers: [], releases: [] },
      opts,
    )
    return read.payments.map(toPaymentView)
  }

  async originEvents(
    origin: string,
    afterSeq: number,
    limit: number,
    opts: AbortOptions = {},
  ): Promise<{ events: string[]; next: number | null }> {
    this.assertStarted()
    const page = Math.min(Math.max(1, limit), MAX_ORIGIN_EVENTS_PAGE)
    const rows = await this.store.listOriginEvents(origin, afterSeq, page, opts)
    return {
      events: rows.map((r) => r.bytes),
      next: rows.length === page ? rows[rows.length - 1]!.seq : null,
    }
  }

  async listPayments(filter: PaymentFilter, opts: AbortOptions = {}): Promise<PaymentView[]> {
    this.assertStarted()
    return (await this.store.listPayments(filter, opts)).map(toPaymentView)
  }

  async summary(venueId: string, opts: AbortOptions = {}): Promise<VenueSummary> {
    this.assertStarted()
    this.requireVenue(venueId)
    // one GROUP BY over the report_payments view (the SQL `nullmesh central report` runs)
    const s = summarize([venueId], await this.store.aggregatePayments(venueId, opts))[0]!
    return s
  }

  async addWebhook(endpoint: WebhookCreate, opts: AbortOptions = {}): Promise<WebhookRegistration> {
    this.assertStarted()
    return this.webhooks.add(endpoint, opts)
  }

  async removeWebhook(id: string, opts: AbortOptions = {}): Promise<boolean> {
    this.assertStarted()
    return this.webhooks.remove(id, opts)
  }

  async listWebhooks(opts: AbortOptions = {}): Promise<WebhookView[]> {
    this.assertStarted()
    return this.webhooks.list(opts)
  }

  async getWebhook(id: string, opts: AbortOptions = {}): Promise<WebhookView | undefined> {
    this.assertStarted()
    return this.webhooks.view(id, opts)
  }

  async updateWebhook(id: string, patch: WebhookPatch, opts: AbortOptions = {}): Promise<WebhookView> {
    this.assertStarted()
    return this.webhooks.update(id, patch, opts)
  }

  async rotateWebhookSecret(
    id: string,
    req: { overlapSeconds?: number; secret?: string },
    opts: AbortOptions = {},
  ): Promise<{ id: string; secret: string; previousSecretExpiresAt: number }> {
    this.assertStarted()
    return this.webhooks.rotateSecret(id, req, opts)
  }

  async redeliverWebhook(
    id: string,
    req: { eventId?: string; since?: number; until?: number },
    opts: AbortOptions = {},
  ): Promise<{ queued: number }> {
    this.assertStarted()
    return this.webhooks.redeliver(id, req, opts)
  }

  async testWebhook(id: string, type: string, opts: AbortOptions = {}): Promise<TestDelivery> {
    this.assertStarted()
    return this.webhooks.test(id, type, opts)
  }

  async listEvents(query: EventListQuery, opts: AbortOptions = {}): Promise<EventList> {
    this.assertStarted()
    return this.webhooks.listEvents(query, opts)
  }

  async getEvent(id: string, opts: AbortOptions = {}): Promise<WebhookEvent | undefined> {
    this.assertStarted()
    return this.webhooks.getEvent(id, opts)
  }

  async pruneEvents(_opts: AbortOptions = {}): Promise<{ events: number; deliveries: number }> {
    this.assertStarted()
    return this.dispatcher.prune()
  }

  async metrics(opts: AbortOptions = {}): Promise<string> {
    this.assertStarted()
    return this.webhooks.metrics(opts)
  }

  private requireVenue(venueId: string): ReturnType<VenueRegistry['get']> & {} {
    const venue = this.venues.get(venueId)
    if (venue === undefined)
      throw new CentralError('ERR_UNKNOWN_VENUE', `venue ${venueId} is not served here`, 404)
    return venue
  }

  private async denylistState(venueId: string, opts: AbortOptions): Promise<DenylistState> {
    const venue = this.requireVenue(venueId)
    const stored = await this.store.getDenylist(venueId, opts)
    if (stored !== undefined) return stored
    return {
      venueId,
      version: 1,
      blockedBins: [...(venue.policy.blockedBins ?? [])],
      denylistCardKeys: [...(venue.policy.denylistCardKeys ?? [])],
      updatedAt: 0,
    }
  }

  private async signDenylist(state: DenylistState): Promise<SignedDocument<DenylistPayload>> {
    const venue = this.requireVenue(state.venueId)
    const key = await this.venues.operatorKey(venue)
    return signDocument<DenylistPayload>(DENYLIST_DOMAIN, key, {
      venueId: state.venueId,
      version: state.version,
      blockedBins: state.blockedBins,
      denylistCardKeys: state.denylistCardKeys,
    })
  }

  async getDenylist(venueId: string, opts: AbortOptions = {}): Promise<SignedDocument<DenylistPayload>> {
    this.assertStarted()
    return this.signDenylist(await this.denylistState(venueId, opts))
  }

  async updateDenylist(
    venueId: string,
    update: DenylistUpdate,
    opts: AbortOptions = {},
  ): Promise<SignedDocument<DenylistPayload>> {
    this.assertStarted()
    this.requireVenue(venueId)
    if (update.blockedBins !== undefined) {
      const bad = update.blockedBins.findIndex((b) => !/^\d{1,8}$/.test(b))
      if (bad >= 0)
        throw new CentralError('ERR_INVALID_REQUEST', `blockedBins[${bad}]: a BIN prefix is 1 to 8 digits`)
    }
    if (update.denylistCardKeys !== undefined) {
      const bad = update.denylistCardKeys.findIndex((k) => !/^[0-9a-f]{32}$/.test(k))
      if (bad >= 0)
        throw new CentralError(
          'ERR_INVALID_REQUEST',
          `denylistCardKeys[${bad}]: a card key is 32 lowercase hex digits`,
        )
    }
    // the operator key must be readable before anything is recorded
    await this.venues.operatorKey(this.requireVenue(venueId))
    const next = await this.mutex.run(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.writeDenylist(venueId, update, opts)
        } catch (err: unknown) {
          // another central process updated it meanwhile: build on its version
          if (!(err instanceof StoreConflict) || attempt >= 20) throw err
        }
      }
    })
    log('deny list of %s is now version %d', venueId, next.version)
    return this.signDenylist(next)
  }

  private async writeDenylist(
    venueId: string,
    update: DenylistUpdate,
    opts: AbortOptions,
  ): Promise<DenylistState> {
    {
      const current = await this.denylistState(venueId, opts)
      const state: DenylistState = {
        venueId,
        version: current.version + 1,
        blockedBins: [...new Set(update.blockedBins ?? current.blockedBins)].sort(),
        denylistCardKeys: [...new Set(update.denylistCardKeys ?? current.denylistCardKeys)].sort(),
        updatedAt: this.now(),
      }
      opts.signal?.throwIfAborted()
      await this.store.apply([{ op: 'putDenylist', denylist: state }])
      return state
    }
  }

  venue(venueId: string): VenueBundle | undefined {
    return this.venues.get(venueId)?.bundle
  }

  // ---- issue 17: revocations (revocations.ts) and abandoned reservations (abandon.ts) ----------

  private revocationDeps(): RevocationDeps {
    return {
      store: this.store,
      venues: this.venues,
      now: this.now,
      write: (ops) => this.engine.write(ops),
      flag: (ids, flag, opts) => this.engine.flag(ids, flag, opts),
    }
  }

  private abandonDeps(): AbandonDeps {
    return {
      store: this.store,
      venues: this.venues,
      now: this.now,
      write: (ops) => this.engine.write(ops),
      abandon: (ids, opts) => this.engine.abandon(ids, opts),
      refreshRevocations: (opts) => loadRevocations(this.revocationDeps(), opts),
      marginMs: this.init.abandonMarginMs ?? DEFAULT_ABANDON_MARGIN_MS,
    }
  }

  async publishRevocation(venueId: string, doc: unknown, opts: AbortOptions = {}): Promise<PublishResult> {
    this.assertStarted()
    const r = await publishRevocation(this.revocationDeps(), venueId, doc, opts)
    log(
      'terminal %s of %s revoked from %d (%d payments flagged)',
      r.terminal.slice(0, 16),
      venueId,
      r.effectiveAt,
      r.flagged,
    )
    // the revoked terminal no longer holds abandonment back
    await abandonScan(this.abandonDeps(), venueId, opts)
    return r
  }

  async listRevocations(
    venueId: string,
    opts: AbortOptions = {},
  ): Promise<{ venueId: string; revocations: unknown[] }> {
    this.assertStarted()
    return listRevocationDocuments(this.revocationDeps(), venueId, opts)
  }

  async checkpoint(
    doc: unknown,
    opts: AbortOptions = {},
  ): Promise<{ venueId: string; terminal: string; at: number; abandoned: number }> {
    this.assertStarted()
    return receiveCheckpoint(this.abandonDeps(), doc, opts)
  }

  async abandonNow(venueId: string, opts: AbortOptions = {}): Promise<string[]> {
    this.assertStarted()
    this.requireVenue(venueId)
    return abandonScan(this.abandonDeps(), venueId, opts)
  }

  async abandonedList(venueId: string, opts: AbortOptions = {}): Promise<SignedAbandonment> {
    this.assertStarted()
    return abandonmentList(
      {
        ...this.abandonDeps(),
        operatorKey: async (id) => this.venues.operatorKey(this.requireVenue(id)),
      },
      venueId,
      opts,
    )
  }
}

function defaultStore(init: CentralServiceInit): CentralStore {
  if (init.storeUrl !== undefined) return createSqlStore({ kind: 'postgres', url: init.storeUrl })
  if (init.dataDir === undefined)
    throw new CentralError(
      'ERR_INVALID_REQUEST',
      'dataDir (embedded store) or storeUrl (PostgreSQL) is required',
      400,
    )
  return createSqlStore({ kind: 'pglite', path: join(init.dataDir, 'central-pg') })
}

/** The central dedup and settlement service. */
export function createCentralService(init: CentralServiceInit): CentralService {
  return new DefaultCentralService(init)
}

export type { SyncDeclineCode }
