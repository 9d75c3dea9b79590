import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createLedger, type Ledger, type PaymentRecord } from '@nullmesh/ledger'
import { createMeshNode, type MeshNode, type OfflineDecision } from '@nullmesh/mesh'
import { loadTerminalKey, loadVenueBundle, type VenueBundle } from '@nullmesh/policy'
import {
  cardBin,
  computeCardKey,
  computeNullifier,
  createProof,
  type DeclineCode,
  type KeyPair,
  type ProofDecision,
  type Reservation,
  type SignedEvent,
  signCheckpoint,
  toBase64url,
  toHex,
} from '@nullmesh/protocol'
import debug from 'debug'
import { type ApiServer, startApiServer } from './api.js'
import { type CentralLink, type CentralPaymentStatus, createHttpCentralLink } from './central.js'
import { ConnectivityMonitor, type ConnectivityOptions } from './connectivity.js'
import {
  ANSWER_MARGIN_MS,
  CURSORS,
  DEFAULT_API_HOST,
  DEFAULT_API_PORT,
  DEFAULT_ONLINE_TIMEOUT_MS,
  LEDGER_DIR,
  LOG_NAMESPACE,
} from './constants.js'
import { TerminalError } from './errors.js'
import { FloorLimit } from './floor-limit.js'
import { assertSameRequest, joinInflight, trackInflight } from './idempotency.js'
import { LoopLag } from './loop-lag.js'
import { TerminalMetrics } from './metrics.js'
import { VenueNotices } from './notices.js'
import { type Candidate, OnlinePayments, type Outcome, type SettlementStatus } from './online.js'
import { type CentralRefillInit, centralRefill } from './refill.js'
import {
  type PaymentBody,
  type PaymentRequestBody,
  type PaymentResponseBody,
  parsePaymentRequest,
  type StatusBody,
} from './schemas.js'
import { settledBy } from './settled-by.js'
import { advances, SettlementCounters, settlementOf } from './settlement.js'
import { type Denylist, SyncAgent, type SyncOptions, type SyncRoundResult } from './sync.js'
import { tapTime } from './tap-time.js'
import { resolveToken } from './token.js'

const log = debug(LOG_NAMESPACE)
const slow = debug(`${LOG_NAMESPACE}:slow`)

export type DecisionMode = 'mesh' | 'floor-limit-only'
export type { SettlementStatus }

type OfflineBehavior = NonNullable<PaymentRequestBody['offlineBehavior']>

export interface TerminalInit {
  /** venue bundle directory (`nullmesh venue init`) */
  venueDir: string
  /** roster id of this terminal, e.g. T1; its key is `<venueDir>/terminals/<id>.key.json` */
  id: string
  /** ledger, generated API token */
  dataDir: string
  /** libp2p listen multiaddrs (default 127.0.0.1, random port) */
  listen?: string[]
  /** local HTTP API; `false` for none (in-process use only, e.g. benchmarks) */
  api?: { host?: string; port?: number } | false
  /** API bearer token; else $NULLMESH_API_TOKEN; else generated once into `<dataDir>/api-token` (0600) */
  token?: string
  discovery?: { mdns?: boolean; peers?: string[] }
  /** the central service's base URL; without it (and without `central`) the terminal is offline for good */
  centralUrl?: string
  /** a CentralLink of your own (tests, other transports); takes precedence over centralUrl */
  central?: CentralLink
  /** the refill of a lost disk's own events from central (waits and retries; refill.ts) */
  refill?: CentralRefillInit
  /**
   * mesh (default): offline payments go through the commit-before-accept barrier.
   * floor-limit-only: benchmark comparison, each terminal decides alone on its own approvals
   * (floor limit and caps, no barrier); such approvals are not forwarded to central.
   */
  mode?: DecisionMode
  /** how long an online authorisation may take before falling back offline (default 3 s) */
  onlineTimeoutMs?: number
  connectivity?: Partial<ConnectivityOptions>
  sync?: Partial<SyncOptions>
}

export interface AbortOptions {
  signal?: AbortSignal
}

export interface PayOptions extends AbortOptions {
  /**
   * performance.now() when the request reached this process (the HTTP API sets it): the tap budget
   * counts from there, not from when the decision began after parsing and validation
   */
  receivedAt?: number
}

export type TerminalEventType =
  | 'connectivity'
  | 'mesh.mode'
  | 'payment.decided'
  | 'payment.queued'
  | 'payment.forwarded'
  | 'payment.completed'
  | 'payment.failed'

/** What `/v1/events` streams; also dispatched in-process as the `event` CustomEvent. */
export interface TerminalEvent {
  type: TerminalEventType
  /** increasing per terminal run */
  id: string
  data: Record<string, unknown> & { at: number }
}

export interface Terminal {
  /** roster id */
  readonly id: string
  /** `http://host:port` of the local API (after start; '' when `api: false`) */
  readonly apiUrl: string
  readonly token: string
  readonly peerId: string
  /** Ed25519 public key (hex): verifies this terminal's proofs */
  readonly publicKeyHex: string
  readonly mesh: MeshNode
  readonly ledger: Ledger
  readonly bundle: VenueBundle
  readonly decisionMode: DecisionMode
  /** central reachable */
  readonly online: boolean
  readonly running: boolean
  /** Idempotent: loads the bundle and key, opens the ledger, starts the mesh, the central link and the API. */
  start(opts?: AbortOptions): Promise<void>
  /** Idempotent: stops the API, the sync agent, waits for decisions in flight, stops the mesh, closes the ledger. */
  stop(opts?: AbortOptions): Promise<void>
  multiaddrs(): string[]
  /** The in-process payment API: the same validation and answer as `POST /v1/payments`. */
  pay(body: unknown, opts?: PayOptions): Promise<PaymentResponseBody>
  /** `GET /v1/payments/:id` */
  payment(id: string, opts?: AbortOptions): Promise<PaymentBody | undefined>
  status(): StatusBody
  /** Prometheus text exposition */
  metrics(opts?: AbortOptions): Promise<string>
  /** run one sync round now (flush, statuses, deny list); throws if there is no central link */
  syncNow(opts?: AbortOptions): Promise<SyncRoundResult>
  addEventListener(type: 'event', listener: (evt: CustomEvent<TerminalEvent>) => void): void
  removeEventListener(type: 'event', listener: (evt: CustomEvent<TerminalEvent>) => void): void
}

/** The ledger's payment record: the first answer verbatim plus what settlement needs. */
interface StoredPayment extends PaymentRecord {
  /** settlement status (the ledger indexes it) */
  status: SettlementStatus
  response: PaymentResponseBody
  amountMinor: number
  currency: string
  method: PaymentRequestBody['method']
  offlineBehavior: OfflineBehavior
  context?: PaymentRequestBody['context']
  /** keyed hash of the card (hex), never the card number */
  cardKey: string
  centralPaymentId?: string
  settlement: { declineCode?: string; syncDeclineCode?: string; completedAt?: number; updatedAt: number }
}

/** how long start-up waits for central to void interrupted online attempts */
const RESOLVE_AT_START_MS = 3_000

function randomId(): string {
  return randomBytes(32).toString('hex')
}

class NullmeshTerminal implements Terminal {
  readonly id: string
  readonly decisionMode: DecisionMode
  readonly #init: TerminalInit
  #apiUrl = ''
  #token = ''
  #bundle: VenueBundle | undefined
  #key: KeyPair | undefined
  #publicKeyHex = ''
  #ledger: Ledger | undefined
  #mesh: MeshNode | undefined
  #link: CentralLink | undefined
  #monitor: ConnectivityMonitor | undefined
  #sync: SyncAgent | undefined
  #api: ApiServer | undefined
  #metrics: TerminalMetrics | undefined
  #state: 'stopped' | 'starting' | 'running' | 'stopping' = 'stopped'
  #transition: Promise<void> | undefined
  readonly #inflight = new Map<string, Promise<PaymentResponseBody>>()
  readonly #decisions = new Set<Promise<unknown>>()
  /** payment records on their way to the ledger, by idempotency key (see #record) */
  readonly #recording = new Map<string, Promise<void>>()
  readonly #counters = new SettlementCounters()
  /** the event loop's recent delay: the tap deadline keeps room for it (loop-lag.ts) */
  readonly #loopLag = new LoopLag()
  /** decisions since this start, as the terminal timed them (status: decisions) */
  readonly #decisionTimes = { count: 0, maxMs: 0, overBudget: 0 }
  #denylist: Denylist | undefined
  #notices: VenueNotices | undefined
  #blockedCards = new Set<string>()
  #floor: FloorLimit | undefined
  #eventSeq = 0
  /** own events with a smaller seq were written by an earlier run: only those can need recovery */
  #firstSeqOfRun = 1
  /** the online path (core/online.ts and its adapter) */
  #online: OnlinePayments | undefined
  readonly #onMode = (evt: Event): void => {
    const mode = (evt as CustomEvent<{ mode: 'quorum' | 'isolated' }>).detail.mode
    this.#emit('mesh.mode', { mode, peers: this.#mesh?.status().peers ?? 0 })
  }
  readonly #onConnectivity = (evt: Event): void => {
    const { online } = (evt as CustomEvent<{ online: boolean }>).detail
    this.#emit('connectivity', { online })
  }

  readonly #events = new EventTarget()

  constructor(init: TerminalInit) {
    if (typeof init?.venueDir !== 'string' || init.venueDir === '')
      throw new TerminalError('invalid_config', 'venueDir is required')
    if (typeof init.id !== 'string' || init.id === '')
      throw new TerminalError('invalid_config', 'id (the roster id) is required')
    if (typeof init.dataDir !== 'string' || init.dataDir === '')
      throw new TerminalError('invalid_config', 'dataDir is required')
    const mode = init.mode ?? 'mesh'
    if (mode !== 'mesh' && mode !== 'floor-limit-only')
      throw new TerminalError('invalid_config', `unknown mode ${String(mode)}`)
    this.#init = init
    this.id = init.id
    this.decisionMode = mode
  }

  // ---- accessors -------------------------------------------------------------------------------

  get apiUrl(): string {
    return this.#apiUrl
  }

  get token(): string {
    return this.#token
  }

  get peerId(): string {
    return this.#mesh?.peerId ?? ''
  }

  get publicKeyHex(): string {
    return this.#publicKeyHex
  }

  get mesh(): MeshNode {
    if (this.#mesh === undefined) throw new TerminalError('not_ready', 'the terminal is not started')
    return this.#mesh
  }

  get ledger(): Ledger {
    if (this.#ledger === undefined) throw new TerminalError('not_ready', 'the terminal is not started')
    return this.#ledger
  }

  get bundle(): VenueBundle {
    if (this.#bundle === undefined) throw new TerminalError('not_ready', 'the terminal is not started')
    return this.#bundle
  }

  get online(): boolean {
    return this.#monitor?.online ?? false
  }

  get running(): boolean {
    return this.#state === 'running'
  }

  multiaddrs(): string[] {
    return this.#mesh?.multiaddrs() ?? []
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async start(opts: AbortOptions = {}): Promise<void> {
    if (this.#state === 'running') return
    if (this.#state === 'stopping') await this.#transition
    if (this.#state === 'starting') return this.#transition
    this.#state = 'starting'
    this.#transition = this.#start(opts).then(
      () => {
        this.#state = 'running'
      },
      async (err: unknown) => {
        await this.#teardown().catch((e: unknown) => log('teardown after a failed start: %o', e))
        this.#state = 'stopped'
        throw err
      },
    )
    return this.#transition
  }

  async #start(opts: AbortOptions): Promise<void> {
    const init = this.#init
    const signal = opts.signal
    const bundle = await loadVenueBundle(init.venueDir)
    if (!bundle.roster.some((r) => r.id === init.id)) {
      throw new TerminalError(
        'invalid_config',
        `terminal ${init.id} is not in the roster of venue ${bundle.venueId}`,
      )
    }
    const key = await loadTerminalKey(init.venueDir, init.id)
    signal?.throwIfAborted()
    this.#bundle = bundle
    this.#key = key
    this.#publicKeyHex = toHex(key.publicKey)
    await mkdir(init.dataDir, { recursive: true, mode: 0o700 })
    this.#token = await resolveToken(init)

    const ledger = createLedger({ path: join(init.dataDir, LEDGER_DIR) })
    await ledger.open({ signal })
    this.#ledger = ledger
    await this.#loadState(signal)
    const notices = new VenueNotices({ ledger, self: this.#publicKeyHex })
    await notices.load()
    this.#notices = notices

    const self = this
    const online = new OnlinePayments(
      {
        ledger,
        key,
        publicKeyHex: this.#publicKeyHex,
        get mesh() {
          return self.mesh
        },
        get link() {
          return self.#link
        },
        get monitor() {
          return self.#monitor
        },
        get firstSeqOfRun() {
          return self.#firstSeqOfRun
        },
        fallback: (c, reservation, deadline) => this.#fallbackOffline(c, reservation, deadline),
        decline: (c, code, paymentId) => ({ ...this.#declineLocally(c, code), paymentId }),
      },
      {
        tapBudgetMs: bundle.policy.tapBudgetMs,
        onlineTimeoutMs: init.onlineTimeoutMs ?? DEFAULT_ONLINE_TIMEOUT_MS,
      },
    )
    this.#online = online
    const link =
      init.central ??
      (init.centralUrl === undefined || init.centralUrl === ''
        ? undefined
        : createHttpCentralLink({
            url: init.centralUrl,
            authorizeTimeoutMs: init.onlineTimeoutMs ?? DEFAULT_ONLINE_TIMEOUT_MS,
          }))
    const ownEvents = link?.ownEvents?.bind(link)
    const mesh = createMeshNode({
      // a lost disk: our own events central kept come back before we sign (docs/protocol.md)
      ...(ownEvents === undefined
        ? {}
        : { refillOwn: centralRefill(ownEvents, this.#publicKeyHex, init.refill) }),
      // issue 17: revocations and abandoned reservations accepted by earlier runs
      revocations: notices.revocationDocs(),
      abandoned: notices.abandonedIds(),
      bundle,
      key,
      ledger,
      // an online attempt interrupted by a crash stays pending until central has voided it
      keepPending: (id) => online.keepPending(id),
      ...(init.listen === undefined ? {} : { listen: init.listen }),
      ...(init.discovery === undefined ? {} : { discovery: init.discovery }),
    })
    this.#mesh = mesh
    notices.attach(mesh)
    await mesh.start({ signal })
    this.#loopLag.start()
    mesh.addEventListener('mode', this.#onMode)
    this.#firstSeqOfRun = await ledger.nextSeq(this.#publicKeyHex)

    this.#metrics = new TerminalMetrics(
      {
        online: () => this.online,
        meshQuorum: () => this.#mesh?.status().mode === 'quorum',
        peers: () => this.#mesh?.status().peers ?? 0,
        queue: () => this.#counters.queueSummary(),
      },
      { terminal: init.id },
    )

    if (link !== undefined) {
      this.#link = link
      const monitor = new ConnectivityMonitor((o) => link.health(o), init.connectivity)
      this.#monitor = monitor
      monitor.addEventListener('change', this.#onConnectivity)
      this.#sync = new SyncAgent({
        ledger,
        link,
        monitor,
        origin: this.#publicKeyHex,
        venueId: bundle.venueId,
        operatorPublicKey: bundle.operatorPublicKey,
        metrics: this.#metrics,
        ...(init.sync === undefined ? {} : { options: init.sync }),
        onStatuses: (statuses) => this.#applyStatuses(statuses),
        unsettled: () => this.#unsettled(),
        onDenylist: (d) => this.#setDenylist(d),
        onConfirmed: (marks) => this.#mesh?.confirmed(marks),
        resolvePending: (signal) => online.resolve(signal),
        currentDenylistVersion: () => this.#denylist?.version ?? 0,
        onRevocations: (docs) => notices.setRevocations(docs),
        onAbandoned: (ids) => notices.setAbandoned(ids),
        signCheckpoint: (at) => signCheckpoint(key, bundle.venueId, at),
      })
      monitor.start()
      this.#sync.start()
      // Before the API takes payments: online attempts a crash interrupted are voided at central
      // (their answer never reached the POS). If central cannot be reached now, every sync round
      // retries.
      await online
        .resolve(AbortSignal.timeout(RESOLVE_AT_START_MS))
        .catch((err: unknown) =>
          log('online attempts left pending at start (central unreachable): %s', (err as Error).message),
        )
    }

    if (init.api !== false) {
      this.#api = await startApiServer(this, {
        host: init.api?.host ?? DEFAULT_API_HOST,
        port: init.api?.port ?? DEFAULT_API_PORT,
        token: this.#token,
        arrival: (now) => this.#loopLag.arrival(now),
        tappedAt: (arrival, claimed) =>
          tapTime(arrival, claimed, Date.now() - performance.now(), this.#mesh!.tapBudgetMs),
      })
      this.#apiUrl = this.#api.url
    }
    log(
      'terminal %s started: api %s, peer %s, %s',
      init.id,
      this.#apiUrl || '(none)',
      mesh.peerId,
      link === undefined ? 'no central link' : `central ${link.url}`,
    )
  }

  /** Queue counters, deny list and (floor-limit-only) the local exposure from the ledger. */
  async #loadState(signal: AbortSignal | undefined): Promise<void> {
    const ledger = this.#ledger!
    this.#counters.clear()
    for await (const p of ledger.payments({ status: 'queued', signal }))
      this.#counters.move(p as StoredPayment, 'queued')
    for (const status of ['forwarded', 'completed', 'failed'] as const) {
      let n = 0
      for await (const _ of ledger.payments({ status, signal })) n++
      this.#counters.settled[status] = n
    }
    const denylist = await ledger.getCursor(CURSORS.denylist, { signal })
    if (denylist !== undefined) {
      try {
        this.#useDenylist(JSON.parse(denylist) as Denylist)
      } catch {
        log('stored deny list unreadable; waiting for central')
      }
    }
    if (this.decisionMode === 'floor-limit-only') {
      const floor = new FloorLimit(this.#bundle!.policy, this.#publicKeyHex)
      for await (const record of ledger.payments({ signal })) {
        const p = record as StoredPayment
        if (p.response.mode === 'floor_limit' && p.response.status === 'approved_offline')
          floor.add(p.id, p.response.nullifier, p.cardKey, p.amountMinor, p.currency, p.method, p.createdAt)
      }
      this.#floor = floor
    }
  }

  async stop(_opts: AbortOptions = {}): Promise<void> {
    if (this.#state === 'stopped') return
    if (this.#state === 'starting') await this.#transition?.catch(() => {})
    if (this.#state === 'stopping') return this.#transition
    if (this.#state !== 'running') return
    this.#state = 'stopping'
    this.#transition = this.#teardown().finally(() => {
      this.#state = 'stopped'
    })
    return this.#transition
  }

  /** Each step runs even if an earlier one failed; the first failure is rethrown at the end. */
  async #teardown(): Promise<void> {
    let failure: unknown
    const step = async (what: string, fn: () => Promise<unknown> | undefined): Promise<void> => {
      try {
        await fn()
      } catch (err: unknown) {
        log('stop: %s failed: %o', what, err)
        failure ??= err
      }
    }
    const api = this.#api
    this.#api = undefined
    await step('api', () => api?.close())
    // decisions in flight finish (online ones still use the link) and are recorded before the ledger closes
    await Promise.allSettled([...this.#decisions])
    const sync = this.#sync
    this.#sync = undefined
    await step('sync agent', () => sync?.stop())
    const monitor = this.#monitor
    this.#monitor = undefined
    monitor?.removeEventListener('change', this.#onConnectivity)
    await step('connectivity monitor', () => monitor?.stop())
    this.#link = undefined
    const mesh = this.#mesh
    this.#mesh = undefined
    mesh?.removeEventListener('mode', this.#onMode)
    await step('mesh', () => mesh?.stop())
    const ledger = this.#ledger
    this.#ledger = undefined
    await step('ledger', () => ledger?.close())
    this.#metrics = undefined
    this.#loopLag.stop()
    this.#apiUrl = ''
    log('terminal %s stopped', this.id)
    if (failure !== undefined) throw failure
  }

  // ---- payments --------------------------------------------------------------------------------

  async pay(body: unknown, opts: PayOptions = {}): Promise<PaymentResponseBody> {
    const request = parsePaymentRequest(body)
    return this.payValidated(request, opts)
  }

  /** pay() after validation (the HTTP route validated already). */
  async payValidated(request: PaymentRequestBody, opts: PayOptions = {}): Promise<PaymentResponseBody> {
    if (this.#state !== 'running') throw new TerminalError('not_ready', 'the terminal is not running')
    opts.signal?.throwIfAborted()
    const revoked = this.#notices?.revokedSelf(Date.now())
    if (revoked !== undefined)
      throw new TerminalError('terminal_revoked', `the operator revoked this terminal: ${revoked.reason}`)
    const key = request.idempotencyKey
    // the same key in flight: wait for its answer (never two decisions for one key)
    const running = this.#inflight.get(key)
    if (running !== undefined) {
      this.#metrics?.replays.inc()
      // issue 17: the same parameters join it; others → 409 idempotency_key_reused
      return joinInflight(running, request, this.#bundle!.hashingKey, () => this.payValidated(request, opts))
    }
    const decision = this.#decideOnce(request, opts)
    // The key stays in flight until its record is written, not only until it is answered (an
    // answer may leave at the deadline before its record did): a retry meanwhile joins it.
    const lifetime: Promise<unknown> = decision
      .then(() => this.#recording.get(key))
      .catch(() => undefined)
      .finally(() => {
        this.#inflight.delete(key)
        this.#recording.delete(key)
        this.#decisions.delete(lifetime)
      })
    trackInflight(decision, request, this.#bundle!.hashingKey) // issue 17: for joinInflight
    this.#inflight.set(key, decision)
    this.#decisions.add(lifetime)
    return decision
  }

  async #decideOnce(request: PaymentRequestBody, opts: PayOptions): Promise<PaymentResponseBody> {
    const t0 = opts.receivedAt ?? performance.now()
    // one tap budget for the whole decision: online attempt, offline fallback, barrier retries;
    // less the answer's way back and what a starved event loop adds before the handler runs and
    // after it answers
    const budget = this.#mesh!.tapBudgetMs
    const deadline =
      t0 + budget - Math.min(Math.floor(budget / 4), ANSWER_MARGIN_MS + this.#loopLag.reserveMs(budget))
    const ledger = this.#ledger!
    const prior = (await ledger.getPaymentByIdempotencyKey(request.idempotencyKey)) as
      | StoredPayment
      | undefined
    if (prior !== undefined) {
      assertSameRequest(prior, request, this.#bundle!.hashingKey) // issue 17: key reused → 409
      this.#metrics?.replays.inc()
      return prior.response
    }
    const bundle = this.#bundle!
    // the card token is used here, to derive these, and nowhere else
    const nullifier = computeNullifier(bundle.hashingKey, request.cardToken, {
      credentialCounter: request.credentialCounter,
      idempotencyKey: request.idempotencyKey,
    })
    const cardKey = computeCardKey(bundle.hashingKey, request.cardToken)
    const candidate: Candidate = {
      nullifier,
      cardKey,
      amountMinor: request.amountMinor,
      currency: request.currency,
      method: request.method,
      bin: cardBin(request.cardToken),
      nullifierHex: toHex(nullifier),
      cardKeyHex: toHex(cardKey),
    }
    const behavior: OfflineBehavior = request.offlineBehavior ?? 'prefer_online'
    let path = 'offline'
    const marks: Array<[string, number]> = [['start', t0]]
    let outcome = await this.#online!.recover(candidate, deadline)
    marks.push(['recover', performance.now()])
    if (outcome !== undefined) path = 'recovered'
    if (outcome === undefined && behavior !== 'force_offline' && this.#link !== undefined && this.online) {
      outcome = await this.#online!.pay(candidate, deadline, behavior === 'require_online')
      marks.push(['online', performance.now()])
      if (outcome !== undefined) path = 'online'
    }
    if (outcome === undefined) {
      if (behavior === 'require_online') {
        outcome = this.#declineLocally(candidate, 'offline_not_allowed')
        path = 'local'
      } else {
        opts.signal?.throwIfAborted()
        outcome = await this.#payOffline(candidate, opts, deadline)
      }
    }
    marks.push(['decide', performance.now()])
    const response = await this.#record(request, candidate, outcome, deadline)
    const t1 = performance.now()
    this.#metrics?.decision.observe({ path }, (t1 - t0) / 1000)
    this.#decisionTimes.count++
    this.#decisionTimes.maxMs = Math.max(this.#decisionTimes.maxMs, Math.round((t1 - t0) * 10) / 10)
    if (t1 - t0 > this.#mesh!.tapBudgetMs) this.#decisionTimes.overBudget++
    if (t1 - t0 > this.#mesh!.tapBudgetMs) {
      marks.push(['record', t1])
      slow(
        'decision over the tap budget: %d ms (%s) %s',
        Math.round(t1 - t0),
        response.declineCode ?? response.status,
        marks.map(([n, t], i) => (i === 0 ? '' : `${n} ${Math.round(t - marks[i - 1]![1])}`)).join(' '),
      )
    }
    return response
  }

  /**
   * The payment record, then counters, metrics and events; the answer waits for the record until
   * the decision's deadline and no longer. Past it the answer leaves first (the key stays in flight,
   * so a retry joins it, until the record is written): an approval's decision is its fsync'd Commit,
   * which recovery answers a retry from; a decline moves no money, and the only thing a crash in that
   * window loses is its record, so a retry after it is decided afresh (docs/protocol.md, "Time").
   */
  async #record(
    request: PaymentRequestBody,
    c: Candidate,
    o: Outcome,
    deadline: number,
  ): Promise<PaymentResponseBody> {
    const response: PaymentResponseBody = {
      paymentId: o.paymentId,
      status: o.status,
      ...(o.declineCode === undefined ? {} : { declineCode: o.declineCode }),
      nullifier: c.nullifierHex,
      proof: toBase64url(o.proof),
      queued: o.queued,
      ...(o.barrier === undefined ? {} : { barrier: o.barrier }),
      mode: o.mode,
      terminal: this.id,
    }
    const now = Date.now()
    const record: StoredPayment = {
      id: o.paymentId,
      idempotencyKey: request.idempotencyKey,
      status: o.settlement,
      createdAt: now,
      response,
      amountMinor: request.amountMinor,
      currency: request.currency,
      method: request.method,
      offlineBehavior: request.offlineBehavior ?? 'prefer_online',
      ...(request.context === undefined ? {} : { context: request.context }),
      cardKey: c.cardKeyHex,
      ...(o.centralPaymentId === undefined || o.centralPaymentId === o.paymentId
        ? {}
        : { centralPaymentId: o.centralPaymentId }),
      settlement: { updatedAt: now, ...(o.completedAt === undefined ? {} : { completedAt: o.completedAt }) },
    }
    // An approval's decision is already durable as its fsync'd Commit, and OnlinePayments.recover answers a retry
    // from it if this record is lost in a crash: no second fsync on the approval path. A decline has
    // no Commit, so its record is what keeps the first answer.
    const approved = o.status === 'approved_offline' || o.status === 'approved_online'
    const written = this.#ledger!.putPayment(record, { sync: !approved }).then(() => {
      this.#counters.move(record, o.settlement)
      const m = this.#metrics
      m?.payments.inc({ status: o.status, mode: o.mode })
      if (o.declineCode !== undefined) m?.declines.inc({ code: o.declineCode })
      if (o.barrier !== undefined) m?.barrier.observe({ mode: o.mode }, o.barrier.ms / 1000)
      const view = this.#view(record)
      this.#emit('payment.decided', { payment: view })
      // forwarded by the sync agent's next round (at most sync.intervalMs away), not one round per payment
      if (o.settlement === 'queued') this.#emit('payment.queued', { payment: view })
    })
    this.#recording.set(request.idempotencyKey, written)
    if (!(await settledBy(written, deadline))) {
      written.catch((err: unknown) =>
        log(
          'the record of %s, answered before it was written, failed: %s',
          o.paymentId,
          (err as Error).message,
        ),
      )
      slow('answered %s before its record was written (the deadline came first)', o.paymentId.slice(0, 16))
    }
    return response
  }

  /** An online attempt without an answer, decided offline under the same reservation (OnlineCore asks). */
  async #fallbackOffline(
    c: Candidate,
    reservation: SignedEvent<Reservation>,
    deadline: number,
  ): Promise<Outcome> {
    const blocked = this.#denylistCode(c)
    if (blocked !== undefined) return { ...this.#declineLocally(c, blocked), paymentId: reservation.idHex }
    const d = await this.#mesh!.authorize(c, { reservation, deadline })
    const barrier =
      d.barrier.acks > 0 ? { acks: d.barrier.acks, quorum: d.barrier.quorum, ms: d.barrier.ms } : undefined
    return {
      paymentId: reservation.idHex,
      status: d.approved ? 'approved_offline' : 'declined_offline',
      declineCode: d.declineCode,
      proof: d.proof,
      mode: d.mode,
      queued: d.approved,
      barrier,
      settlement: d.approved ? 'queued' : 'none',
    }
  }

  async #payOffline(c: Candidate, opts: AbortOptions, deadline: number): Promise<Outcome> {
    const blocked = this.#denylistCode(c)
    if (blocked !== undefined) return this.#declineLocally(c, blocked)
    if (this.decisionMode === 'floor-limit-only') return this.#payFloorLimit(c)
    const d: OfflineDecision = await this.#mesh!.authorize(
      c,
      opts.signal === undefined ? { deadline } : { signal: opts.signal, deadline },
    )
    // only when the barrier ran (the origin's own ack counts): not for a policy decline before it
    const barrier =
      d.barrier.acks > 0 ? { acks: d.barrier.acks, quorum: d.barrier.quorum, ms: d.barrier.ms } : undefined
    return {
      paymentId: d.reservationId ?? randomId(),
      status: d.approved ? 'approved_offline' : 'declined_offline',
      declineCode: d.declineCode,
      proof: d.proof,
      mode: d.mode,
      queued: d.approved,
      barrier,
      settlement: d.approved ? 'queued' : 'none',
    }
  }

  /** Benchmark comparison: floor limit and caps on this terminal's own approvals, no barrier. */
  #payFloorLimit(c: Candidate): Outcome {
    const now = Date.now()
    const id = randomId()
    const verdict = this.#floor!.decide(id, c, now)
    if (verdict !== undefined) return this.#declineLocally(c, verdict)
    return {
      paymentId: id,
      status: 'approved_offline',
      proof: this.#proof(c, 'approved_offline', undefined, now),
      mode: 'floor_limit',
      queued: false,
      settlement: 'none',
    }
  }

  #declineLocally(c: Candidate, code: DeclineCode): Outcome {
    return {
      paymentId: randomId(),
      status: 'declined_offline',
      declineCode: code,
      proof: this.#proof(c, 'declined_offline', code, Date.now()),
      mode: this.#mesh?.status().mode ?? 'isolated',
      queued: false,
      settlement: 'none',
    }
  }

  #proof(
    c: Candidate,
    decision: ProofDecision,
    declineCode: DeclineCode | undefined,
    ts: number,
  ): Uint8Array {
    return createProof(this.#key!, {
      nullifier: c.nullifier,
      amountMinor: c.amountMinor,
      currency: c.currency,
      decision,
      declineCode,
      ts,
      seq: 0,
      policyVersion: this.#bundle!.policy.version,
    })
  }

  // ---- deny list -------------------------------------------------------------------------------

  #denylistCode(c: Candidate): DeclineCode | undefined {
    const d = this.#denylist
    if (d === undefined) return undefined
    if (this.#blockedCards.has(c.cardKeyHex)) return 'denylisted_card'
    const bin = c.bin
    if (bin !== undefined && d.blockedBins.some((prefix) => bin.startsWith(prefix))) return 'blocked_bin'
    return undefined
  }

  #useDenylist(d: Denylist): void {
    this.#denylist = d
    this.#blockedCards = new Set(d.denylistCardKeys)
  }

  async #setDenylist(d: Denylist): Promise<void> {
    await this.#ledger?.setCursor(CURSORS.denylist, JSON.stringify(d), { sync: true })
    this.#useDenylist(d)
  }

  // ---- settlement ------------------------------------------------------------------------------

  async *#unsettled(): AsyncGenerator<{ id: string; status: string }> {
    const ledger = this.#ledger
    if (ledger === undefined) return
    for (const status of ['forwarded', 'queued'] as const) {
      for await (const p of ledger.payments({ status })) yield { id: p.id, status }
    }
  }

  /** Apply central's statuses to own payments: queued → forwarded → completed | failed, never back. */
  async #applyStatuses(statuses: CentralPaymentStatus[]): Promise<number> {
    const ledger = this.#ledger
    if (ledger === undefined) return 0
    let applied = 0
    for (const s of statuses) {
      const next = settlementOf(s)
      if (next === undefined) continue
      const p = (await ledger.getPayment(s.paymentId)) as StoredPayment | undefined
      if (p === undefined || !advances(p.status, next)) continue
      const now = Date.now()
      const updated: StoredPayment = {
        ...p,
        status: next,
        settlement: {
          updatedAt: now,
          ...(s.declineCode === undefined ? {} : { declineCode: s.declineCode }),
          ...(s.syncDeclineCode === undefined ? {} : { syncDeclineCode: s.syncDeclineCode }),
          ...(s.completedAt === undefined ? {} : { completedAt: s.completedAt }),
        },
      }
      await ledger.putPayment(updated, { sync: false })
      this.#counters.move(p, next, p.status)
      applied++
      this.#metrics?.settlements.inc({ status: next })
      // A payment can reach central through a peer's ledger and settle before our own sync reports
      // it: it was forwarded all the same, so listeners still see queued → forwarded → final.
      if (p.status === 'queued' && next !== 'forwarded') {
        this.#emit('payment.forwarded', { payment: this.#view({ ...updated, status: 'forwarded' }) })
      }
      this.#emit(`payment.${next}` as TerminalEventType, { payment: this.#view(updated) })
    }
    return applied
  }

  // ---- reads -----------------------------------------------------------------------------------

  async payment(id: string, opts: AbortOptions = {}): Promise<PaymentBody | undefined> {
    if (this.#state !== 'running') throw new TerminalError('not_ready', 'the terminal is not running')
    const p = (await this.#ledger!.getPayment(id, opts)) as StoredPayment | undefined
    return p === undefined ? undefined : this.#view(p)
  }

  #view(p: StoredPayment): PaymentBody {
    return {
      ...p.response,
      queued: p.status === 'queued',
      idempotencyKey: p.idempotencyKey,
      amountMinor: p.amountMinor,
      currency: p.currency,
      method: p.method,
      offlineBehavior: p.offlineBehavior,
      ...(p.context === undefined ? {} : { context: p.context }),
      createdAt: p.createdAt,
      settlement: { status: p.status, ...p.settlement },
    }
  }

  status(): StatusBody {
    if (this.#mesh === undefined) throw new TerminalError('not_ready', 'the terminal is not running')
    const s = this.#mesh.status()
    return {
      online: this.online,
      mesh: {
        mode: s.mode,
        peers: s.peers,
        roster: s.roster,
        quorum: s.quorum,
        groupSize: s.groupSize,
        groupsWithoutQuorum: s.groupsWithoutQuorum,
        historyKnown: s.historyKnown,
        centralRefill: s.centralRefill,
      },
      queue: this.#counters.queueSummary(),
      exposureBoundMinor: s.exposureBoundMinor,
      decisions: { ...this.#decisionTimes },
      onlineUnresolved: this.#online?.core.unresolved ?? 0,
      settlement: { ...this.#counters.settled },
      terminal: this.id,
      peerId: s.peerId,
      decisionMode: this.decisionMode,
      ...this.#revokedStatus(),
    }
  }

  #revokedStatus(): { revoked?: { effectiveAt: number; reason: string } } {
    const revoked = this.#notices?.revokedSelf(Date.now())
    return revoked === undefined ? {} : { revoked }
  }

  async metrics(opts: AbortOptions = {}): Promise<string> {
    opts.signal?.throwIfAborted()
    if (this.#metrics === undefined) throw new TerminalError('not_ready', 'the terminal is not running')
    return this.#metrics.registry.metrics()
  }

  get metricsContentType(): string {
    return this.#metrics?.registry.contentType ?? 'text/plain; version=0.0.4; charset=utf-8'
  }

  async syncNow(opts: AbortOptions = {}): Promise<SyncRoundResult> {
    if (this.#sync === undefined)
      throw new TerminalError('central_unavailable', 'this terminal has no central link')
    return this.#sync.syncNow(opts)
  }

  addEventListener(type: 'event', listener: (evt: CustomEvent<TerminalEvent>) => void): void {
    this.#events.addEventListener(type, listener as EventListener)
  }

  removeEventListener(type: 'event', listener: (evt: CustomEvent<TerminalEvent>) => void): void {
    this.#events.removeEventListener(type, listener as EventListener)
  }

  #emit(type: TerminalEventType, data: Record<string, unknown>): void {
    const detail: TerminalEvent = { type, id: String(++this.#eventSeq), data: { ...data, at: Date.now() } }
    this.#events.dispatchEvent(new CustomEvent<TerminalEvent>('event', { detail }))
  }
}

/** A terminal daemon: venue bundle + own key + data directory → ledger, mesh node, decisions, local API, sync agent. */
export function createTerminal(init: TerminalInit): Terminal {
  return new NullmeshTerminal(init)
}

export type { NullmeshTerminal }
