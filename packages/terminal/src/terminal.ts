import { randomBytes } from 'node:crypto'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createLedger, type Ledger, type PaymentRecord } from '@nullmesh/ledger'
import {
  createMeshNode,
  MeshError,
  type MeshNode,
  type OfflineCandidate,
  type OfflineDecision,
} from '@nullmesh/mesh'
import {
  createExposureState,
  decideOffline,
  type ExposureState,
  loadTerminalKey,
  loadVenueBundle,
  type ReservationFacts,
  type VenueBundle,
} from '@nullmesh/policy'
import {
  type Commit,
  cardBin,
  computeCardKey,
  computeNullifier,
  createProof,
  type DeclineCode,
  isDeclineCode,
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
  API_TOKEN_ENV,
  API_TOKEN_FILE,
  CURSORS,
  DEFAULT_API_HOST,
  DEFAULT_API_PORT,
  DEFAULT_ONLINE_TIMEOUT_MS,
  LEDGER_DIR,
  LOG_NAMESPACE,
} from './constants.js'
import { TerminalError } from './errors.js'
import { assertSameRequest, joinInflight, trackInflight } from './idempotency.js'
import { TerminalMetrics } from './metrics.js'
import { VenueNotices } from './notices.js'
import {
  type PaymentBody,
  type PaymentRequestBody,
  type PaymentResponseBody,
  parsePaymentRequest,
  type StatusBody,
} from './schemas.js'
import { type Denylist, SyncAgent, type SyncOptions, type SyncRoundResult } from './sync.js'

const log = debug(LOG_NAMESPACE)
const slow = debug(`${LOG_NAMESPACE}:slow`)

export type DecisionMode = 'mesh' | 'floor-limit-only'
export type SettlementStatus = 'none' | 'queued' | 'forwarded' | 'completed' | 'failed'
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
  pay(body: unknown, opts?: AbortOptions): Promise<PaymentResponseBody>
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

interface Candidate extends OfflineCandidate {
  nullifierHex: string
  cardKeyHex: string
}

interface Outcome {
  paymentId: string
  status: PaymentResponseBody['status']
  declineCode?: string | undefined
  proof: Uint8Array
  mode: PaymentResponseBody['mode']
  queued: boolean
  barrier?: { acks: number; quorum: number; ms: number } | undefined
  settlement: SettlementStatus
  completedAt?: number
  centralPaymentId?: string
}

const SETTLEMENT_RANK: Record<SettlementStatus, number> = {
  none: 0,
  queued: 1,
  forwarded: 2,
  completed: 3,
  failed: 3,
}

/** ledger cursor of an online attempt: ONLINE_PENDING from before central is asked until it is resolved */
const onlineCursor = (reservationIdHex: string) => `terminal/online/${reservationIdHex}`
const ONLINE_PENDING = 'pending'
const ONLINE_DONE = 'done'
/** how long start-up waits for central to void interrupted online attempts */
const RESOLVE_AT_START_MS = 3_000
/** part of the tap budget kept for the offline fallback when central does not answer */
const FALLBACK_RESERVE_MS = 600

function randomId(): string {
  return randomBytes(32).toString('hex')
}

async function resolveToken(init: TerminalInit): Promise<string> {
  if (init.token !== undefined && init.token !== '') return init.token
  const fromEnv = process.env[API_TOKEN_ENV]
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  const path = join(init.dataDir, API_TOKEN_FILE)
  try {
    const existing = (await readFile(path, 'utf8')).trim()
    if (existing !== '') return existing
  } catch (err: unknown) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const token = randomBytes(32).toString('base64url')
  try {
    await writeFile(path, `${token}\n`, { mode: 0o600, flag: 'wx' })
  } catch (err: unknown) {
    // another start raced us: use what it wrote
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await readFile(path, 'utf8')).trim()
    throw err
  }
  await chmod(path, 0o600)
  return token
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
  readonly #queue = new Map<string, { count: number; amount: number }>()
  readonly #settled = { forwarded: 0, completed: 0, failed: 0 }
  #denylist: Denylist | undefined
  #notices: VenueNotices | undefined
  #blockedCards = new Set<string>()
  #floorState: ExposureState | undefined
  #eventSeq = 0
  /** own events with a smaller seq were written by an earlier run: only those can need recovery */
  #firstSeqOfRun = 1
  /** reservations a recovery is answering right now */
  readonly #recovering = new Set<string>()
  /** own online attempts marked pending and not yet resolved (status: onlineUnresolved) */
  readonly #onlineUnresolved = new Set<string>()
  /** online attempts a decision of this run is still waiting on (not for the resolver) */
  readonly #ownedByDecision = new Set<string>()
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

    const mesh = createMeshNode({
      // issue 17: revocations and abandoned reservations accepted by earlier runs
      revocations: notices.revocationDocs(),
      abandoned: notices.abandonedIds(),
      bundle,
      key,
      ledger,
      // an online attempt interrupted by a crash stays pending until central has voided it
      keepPending: async (id) => {
        const keep = (await ledger.getCursor(onlineCursor(id))) === ONLINE_PENDING
        if (keep) this.#onlineUnresolved.add(id)
        return keep
      },
      ...(init.listen === undefined ? {} : { listen: init.listen }),
      ...(init.discovery === undefined ? {} : { discovery: init.discovery }),
    })
    this.#mesh = mesh
    notices.attach(mesh)
    await mesh.start({ signal })
    mesh.addEventListener('mode', this.#onMode)
    this.#firstSeqOfRun = await ledger.nextSeq(this.#publicKeyHex)

    this.#metrics = new TerminalMetrics(
      {
        online: () => this.online,
        meshQuorum: () => this.#mesh?.status().mode === 'quorum',
        peers: () => this.#mesh?.status().peers ?? 0,
        queue: () => this.#queueSummary(),
      },
      { terminal: init.id },
    )

    const link =
      init.central ??
      (init.centralUrl === undefined || init.centralUrl === ''
        ? undefined
        : createHttpCentralLink({
            url: init.centralUrl,
            authorizeTimeoutMs: init.onlineTimeoutMs ?? DEFAULT_ONLINE_TIMEOUT_MS,
          }))
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
        resolvePending: (signal) => this.#resolveOnlineAttempts(signal),
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
      await this.#resolveOnlineAttempts(AbortSignal.timeout(RESOLVE_AT_START_MS)).catch((err: unknown) =>
        log('online attempts left pending at start (central unreachable): %s', (err as Error).message),
      )
    }

    if (init.api !== false) {
      this.#api = await startApiServer(this, {
        host: init.api?.host ?? DEFAULT_API_HOST,
        port: init.api?.port ?? DEFAULT_API_PORT,
        token: this.#token,
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
    this.#queue.clear()
    for await (const p of ledger.payments({ status: 'queued', signal })) this.#queueAdd(p as StoredPayment, 1)
    for (const status of ['forwarded', 'completed', 'failed'] as const) {
      let n = 0
      for await (const _ of ledger.payments({ status, signal })) n++
      this.#settled[status] = n
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
      const state = createExposureState()
      for await (const record of ledger.payments({ signal })) {
        const p = record as StoredPayment
        if (p.response.mode === 'floor_limit' && p.response.status === 'approved_offline') {
          const facts = this.#facts(
            p.id,
            p.response.nullifier,
            p.cardKey,
            p.amountMinor,
            p.currency,
            p.method,
            p.createdAt,
          )
          state.addReservation(facts, true)
          state.addCommit(facts, 'quorum')
        }
      }
      this.#floorState = state
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
    this.#apiUrl = ''
    log('terminal %s stopped', this.id)
    if (failure !== undefined) throw failure
  }

  // ---- payments --------------------------------------------------------------------------------

  async pay(body: unknown, opts: AbortOptions = {}): Promise<PaymentResponseBody> {
    const request = parsePaymentRequest(body)
    return this.payValidated(request, opts)
  }

  /** pay() after validation (the HTTP route validated already). */
  async payValidated(request: PaymentRequestBody, opts: AbortOptions = {}): Promise<PaymentResponseBody> {
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
    const decision = this.#decideOnce(request, opts).finally(() => {
      this.#inflight.delete(key)
      this.#decisions.delete(decision)
    })
    trackInflight(decision, request, this.#bundle!.hashingKey) // issue 17: for joinInflight
    this.#inflight.set(key, decision)
    this.#decisions.add(decision)
    return decision
  }

  async #decideOnce(request: PaymentRequestBody, opts: AbortOptions): Promise<PaymentResponseBody> {
    const t0 = performance.now()
    // one tap budget for the whole decision: online attempt, offline fallback, barrier retries
    const deadline = t0 + this.#mesh!.tapBudgetMs
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
    let outcome = await this.#recover(candidate, deadline)
    marks.push(['recover', performance.now()])
    if (outcome !== undefined) path = 'recovered'
    if (outcome === undefined && behavior !== 'force_offline' && this.#link !== undefined && this.online) {
      outcome = await this.#payOnline(candidate, deadline, behavior === 'require_online')
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
    const response = await this.#record(request, candidate, outcome)
    const t1 = performance.now()
    this.#metrics?.decision.observe({ path }, (t1 - t0) / 1000)
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

  /** Durable record first, then counters, metrics and events, then the answer. */
  async #record(request: PaymentRequestBody, c: Candidate, o: Outcome): Promise<PaymentResponseBody> {
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
    // An approval's decision is already durable as its fsync'd Commit, and #recover answers a retry
    // from it if this record is lost in a crash: no second fsync on the approval path. A decline has
    // no Commit, so its record is what keeps the first answer.
    const approved = o.status === 'approved_offline' || o.status === 'approved_online'
    await this.#ledger!.putPayment(record, { sync: !approved })
    if (o.settlement === 'queued') this.#queueAdd(record, 1)
    else if (o.settlement !== 'none') this.#settled[o.settlement]++
    const m = this.#metrics
    m?.payments.inc({ status: o.status, mode: o.mode })
    if (o.declineCode !== undefined) m?.declines.inc({ code: o.declineCode })
    if (o.barrier !== undefined) m?.barrier.observe({ mode: o.mode }, o.barrier.ms / 1000)
    const view = this.#view(record)
    this.#emit('payment.decided', { payment: view })
    // forwarded by the sync agent's next round (at most sync.intervalMs away), not one round per payment
    if (o.settlement === 'queued') this.#emit('payment.queued', { payment: view })
    return response
  }

  /**
   * A payment whose idempotency key has no record, but whose credential use this terminal already
   * committed: the process died between the Commit and the payment record. The Commit is the
   * decision, so answer it again rather than decide a second time. A pending online reservation
   * (died while central was answering) is asked again: central dedups it.
   */
  async #recover(c: Candidate, deadline: number): Promise<Outcome | undefined> {
    const ledger = this.#ledger!
    const uses = await ledger.nullifier(c.nullifierHex)
    for (const use of uses) {
      if (use.state === 'released' || this.#recovering.has(use.reservationId)) continue
      if ((await ledger.getPayment(use.reservationId)) !== undefined) continue
      const ev = await ledger.getEvent(use.reservationId)
      if (
        ev === undefined ||
        ev.event.type !== 'reservation' ||
        toHex(ev.event.origin) !== this.#publicKeyHex
      )
        continue
      const reservation = ev as SignedEvent<Reservation>
      // a reservation of this run belongs to a decision still in flight here, not to a crash
      if (reservation.event.seq >= this.#firstSeqOfRun) continue
      if (reservation.event.amountMinor !== c.amountMinor || reservation.event.currency !== c.currency)
        continue
      if (this.#recovering.has(reservation.idHex)) continue
      this.#recovering.add(reservation.idHex)
      try {
        const outcome = await this.#recoverOne(c, reservation, use.state, deadline)
        if (outcome !== undefined) return outcome
      } finally {
        this.#recovering.delete(reservation.idHex)
      }
    }
    return undefined
  }

  async #recoverOne(
    c: Candidate,
    reservation: SignedEvent<Reservation>,
    state: 'reserved' | 'committed',
    deadline: number,
  ): Promise<Outcome | undefined> {
    if (state === 'committed') {
      const commit = await this.#findCommit(reservation)
      const mode = commit?.event.mode ?? 'quorum'
      const decision: ProofDecision =
        mode === 'online'
          ? 'approved_online'
          : mode === 'isolated'
            ? 'approved_offline_isolated'
            : 'approved_offline'
      const proof = createProof(this.#key!, {
        nullifier: c.nullifier,
        amountMinor: c.amountMinor,
        currency: c.currency,
        decision,
        ts: commit?.event.ts ?? reservation.event.ts,
        seq: commit?.event.seq ?? reservation.event.seq,
        policyVersion: reservation.event.policyVersion,
      })
      log('recovered the committed payment %s after a restart', reservation.idHex.slice(0, 16))
      return mode === 'online'
        ? {
            paymentId: reservation.idHex,
            status: 'approved_online',
            proof,
            mode: 'online',
            queued: false,
            settlement: 'forwarded',
          }
        : {
            paymentId: reservation.idHex,
            status: 'approved_offline',
            proof,
            mode,
            queued: true,
            settlement: 'queued',
          }
    }
    // reserved: an online attempt left pending by a crash (offline ones are released at start).
    // Its answer never reached the POS, and central may have charged it. Central reachable: void
    // it there, then this retry is decided afresh. Not reachable: decide it offline under the
    // same payment identity (central counts one payment however it arrives); if that declines, it
    // stays pending for the resolver to void.
    if ((await this.#ledger!.getCursor(onlineCursor(reservation.idHex))) !== ONLINE_PENDING) return undefined
    if (this.#link !== undefined && this.online) {
      const voided = await this.#voidOnline(reservation).catch(() => false)
      if (voided) return undefined
    }
    return this.#fallbackOffline(c, reservation, deadline)
  }

  async #findCommit(reservation: SignedEvent<Reservation>): Promise<SignedEvent<Commit> | undefined> {
    const ledger = this.#ledger!
    const last = (await ledger.nextSeq(this.#publicKeyHex)) - 1
    for (let seq = reservation.event.seq + 1; seq <= last && seq <= reservation.event.seq + 10_000; seq++) {
      const ev = await ledger.getEventAt(this.#publicKeyHex, seq)
      if (ev?.event.type === 'commit' && ev.event.reservation.idHex === reservation.idHex)
        return ev as SignedEvent<Commit>
    }
    return undefined
  }

  /**
   * The online path. undefined: not attempted or not held (offline path next, under a new
   * reservation; central was never asked). Once central has been asked, the reservation is the
   * payment's one identity: an answer commits or releases it; no answer (timeout, network) leaves
   * the outcome unknown, so the payment is decided offline under the same reservation, and if that
   * declines it stays pending until central has voided it — never released while it may be charged.
   */
  async #payOnline(c: Candidate, deadline: number, requireOnline: boolean): Promise<Outcome | undefined> {
    let reservation: SignedEvent<Reservation>
    try {
      reservation = await this.#mesh!.reserveOnline(c, { deadline })
    } catch (err: unknown) {
      // not held by a quorum (or already held): the offline path gives the precise decision
      if (err instanceof MeshError && err.code === 'ERR_REFUSED') return undefined
      throw err
    }
    // durable before central is asked: a crash from here on leaves it pending, to be voided
    this.#ownedByDecision.add(reservation.idHex)
    try {
      await this.#ledger!.setCursor(onlineCursor(reservation.idHex), ONLINE_PENDING, { sync: true })
      this.#onlineUnresolved.add(reservation.idHex)
      return await this.#authorizeOnline(c, reservation, deadline, requireOnline)
    } finally {
      this.#ownedByDecision.delete(reservation.idHex)
    }
  }

  async #authorizeOnline(
    c: Candidate,
    reservation: SignedEvent<Reservation>,
    deadline: number,
    requireOnline = false,
  ): Promise<Outcome | undefined> {
    const link = this.#link!
    const mesh = this.#mesh!
    // leave room in the tap budget for the offline fallback
    const reserve = requireOnline ? 0 : Math.min(FALLBACK_RESERVE_MS, mesh.tapBudgetMs / 3)
    const timeoutMs = Math.max(
      1,
      Math.floor(
        Math.min(
          this.#init.onlineTimeoutMs ?? DEFAULT_ONLINE_TIMEOUT_MS,
          deadline - performance.now() - reserve,
        ),
      ),
    )
    let answer: Awaited<ReturnType<CentralLink['authorize']>>
    try {
      answer = await link.authorize(reservation.bytes, { signal: AbortSignal.timeout(timeoutMs) })
      this.#monitor?.reportSuccess()
    } catch (err: unknown) {
      if (err instanceof TerminalError && err.code === 'central_rejected') {
        // central refused the request itself (4xx): it charged nothing, so releasing is safe
        log('central refused the online authorisation (%s): offline path', err.message)
        await mesh.completeOnline(reservation, false, 'other')
        await this.#onlineDone(reservation.idHex)
        return undefined
      }
      if (err instanceof TerminalError) this.#monitor?.reportFailure(err)
      log(
        'online authorisation unanswered (%s): deciding offline under the same reservation',
        (err as Error).message,
      )
      if (requireOnline) {
        // the POS wants online only: declined, and voided at central before it is released
        return this.#pendingDecline(c, reservation, 'offline_not_allowed')
      }
      return this.#fallbackOffline(c, reservation, deadline)
    }
    const approved = answer.status === 'approved'
    const declineCode = approved ? undefined : (answer.declineCode ?? 'issuer_declined')
    const reason =
      declineCode === undefined ? undefined : isDeclineCode(declineCode) ? declineCode : 'issuer_declined'
    const { proof } = await mesh.completeOnline(reservation, approved, reason)
    await this.#onlineDone(reservation.idHex)
    return {
      paymentId: reservation.idHex,
      centralPaymentId: answer.paymentId,
      status: approved ? 'approved_online' : 'declined_online',
      declineCode,
      proof,
      mode: 'online',
      queued: false,
      settlement: approved ? 'completed' : 'none',
      ...(approved ? { completedAt: Date.now() } : {}),
    }
  }

  /** An online attempt without an answer, decided offline under the same reservation. */
  async #fallbackOffline(
    c: Candidate,
    reservation: SignedEvent<Reservation>,
    deadline: number,
  ): Promise<Outcome> {
    const blocked = this.#denylistCode(c)
    if (blocked !== undefined) return this.#pendingDecline(c, reservation, blocked)
    const d = await this.#mesh!.authorize(c, { reservation, deadline })
    if (d.approved) await this.#onlineDone(reservation.idHex)
    // still pending if declined: the resolver voids it at central, then releases it
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

  #pendingDecline(c: Candidate, reservation: SignedEvent<Reservation>, code: DeclineCode): Outcome {
    return { ...this.#declineLocally(c, code), paymentId: reservation.idHex }
  }

  /** Void one pending online attempt at central, then release it. true when released. */
  async #voidOnline(reservation: SignedEvent<Reservation>, signal?: AbortSignal): Promise<boolean> {
    const link = this.#link
    if (link === undefined) return false
    const answer = await link.void(reservation.bytes, signal === undefined ? {} : { signal })
    if (answer.status === 'committed') {
      // a Commit of it reached central: it was approved after all, and is settled as such
      log('online attempt %s was committed, not voided', reservation.idHex.slice(0, 16))
      await this.#onlineDone(reservation.idHex)
      return false
    }
    await this.#mesh!.completeOnline(reservation, false, 'voided')
    await this.#onlineDone(reservation.idHex)
    log('voided the unanswered online attempt %s at central', reservation.idHex.slice(0, 16))
    return true
  }

  async #onlineDone(reservationIdHex: string): Promise<void> {
    this.#onlineUnresolved.delete(reservationIdHex)
    await this.#ledger!.setCursor(onlineCursor(reservationIdHex), ONLINE_DONE, { sync: false })
  }

  /** Void every own online attempt still pending (crash, timeout then offline decline). */
  async #resolveOnlineAttempts(signal?: AbortSignal): Promise<number> {
    const ledger = this.#ledger
    if (ledger === undefined || this.#link === undefined || this.#onlineUnresolved.size === 0) return 0
    const opts = signal === undefined ? {} : { signal }
    let n = 0
    // the in-memory set (filled at start from the kept reservations, then by every online attempt)
    // is what needs voiding: no ledger scan on every sync round
    for (const id of [...this.#onlineUnresolved].sort()) {
      // a decision of this run still waiting for central owns it; a recovery may be voiding it
      if (this.#ownedByDecision.has(id) || this.#recovering.has(id)) continue
      const pending = await ledger.getEvent(id, opts)
      if (pending?.event.type !== 'reservation' || (await ledger.reservationState(id, opts)) !== 'reserved') {
        await this.#onlineDone(id)
        continue
      }
      this.#recovering.add(id)
      try {
        if (await this.#voidOnline(pending as SignedEvent<Reservation>, signal)) n++
      } catch (err: unknown) {
        // unreachable: the round fails and is retried; refused: logged, and never blocks the sync
        if (err instanceof TerminalError && err.code === 'central_unavailable') throw err
        log('voiding %s failed: %s', id.slice(0, 16), (err as Error).message)
      } finally {
        this.#recovering.delete(id)
      }
    }
    return n
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
    const state = this.#floorState!
    const policy = this.#bundle!.policy
    const now = Date.now()
    const id = randomId()
    const verdict = decideOffline(
      policy,
      state,
      {
        origin: this.#publicKeyHex,
        nullifier: c.nullifierHex,
        cardKey: c.cardKeyHex,
        amountMinor: c.amountMinor,
        currency: c.currency,
        method: c.method,
        bin: c.bin,
        ts: now,
      },
      { mode: 'quorum', now },
    )
    if (!verdict.approve) return this.#declineLocally(c, verdict.code)
    const facts = this.#facts(id, c.nullifierHex, c.cardKeyHex, c.amountMinor, c.currency, c.method, now)
    state.addReservation(facts, true)
    state.addCommit(facts, 'quorum')
    return {
      paymentId: id,
      status: 'approved_offline',
      proof: this.#proof(c, 'approved_offline', undefined, now),
      mode: 'floor_limit',
      queued: false,
      settlement: 'none',
    }
  }

  #facts(
    id: string,
    nullifier: string,
    cardKey: string,
    amountMinor: number,
    currency: string,
    method: Candidate['method'],
    ts: number,
  ): ReservationFacts {
    return { id, origin: this.#publicKeyHex, nullifier, cardKey, amountMinor, currency, method, ts }
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
      const next: SettlementStatus | undefined =
        s.status === 'queued' || s.status === 'processing'
          ? 'forwarded'
          : s.status === 'completed'
            ? 'completed'
            : s.status === 'failed'
              ? 'failed'
              : undefined
      if (next === undefined) continue
      const p = (await ledger.getPayment(s.paymentId)) as StoredPayment | undefined
      if (p === undefined || p.status === 'none' || SETTLEMENT_RANK[next] <= SETTLEMENT_RANK[p.status])
        continue
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
      if (p.status === 'queued') this.#queueAdd(p, -1)
      else this.#settled[p.status]--
      this.#settled[next]++
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

  #queueAdd(p: Pick<StoredPayment, 'currency' | 'amountMinor'>, sign: 1 | -1): void {
    const q = this.#queue.get(p.currency) ?? { count: 0, amount: 0 }
    q.count += sign
    q.amount += sign * p.amountMinor
    if (q.count <= 0) this.#queue.delete(p.currency)
    else this.#queue.set(p.currency, q)
  }

  #queueSummary(): { count: number; amountsByCurrency: Record<string, number> } {
    let count = 0
    const amountsByCurrency: Record<string, number> = {}
    for (const [currency, q] of this.#queue) {
      count += q.count
      amountsByCurrency[currency] = q.amount
    }
    return { count, amountsByCurrency }
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
      },
      queue: this.#queueSummary(),
      exposureBoundMinor: s.exposureBoundMinor,
      onlineUnresolved: this.#onlineUnresolved.size,
      settlement: { ...this.#settled },
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
