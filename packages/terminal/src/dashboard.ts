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
import type { SignedEvent } from '@nullmesh/protocol'
import { toHex } from '@nullmesh/protocol'
import debug from 'debug'
import type { FastifyInstance } from 'fastify'
import { LOG_NAMESPACE } from './constants.js'
import type { PaymentBody } from './schemas.js'
import type { Terminal, TerminalEvent } from './terminal.js'

/*
 * The venue dashboard every terminal serves (GET /dashboard, /v1/dashboard, /v1/dashboard/stream).
 * Read-only: everything comes from the terminal's public interface — its status, its events, its
 * mesh node's status and events, and its own ledger (its own events and every peer event it has
 * received). What it cannot know (a peer it cannot reach, central while offline) it says.
 */

const log = debug(`${LOG_NAMESPACE}:dashboard`)

const RECENT_PAYMENTS = 25
const KEEP_PAYMENTS = 200
const MINUTES = 15
const MINUTE_MS = 60_000
/** snapshots also go out this often without any event (ages, clock) */
const TICK_MS = 5_000

type Link = 'self' | 'ready' | 'disconnected' | 'unknown'

interface OriginStats {
  approvals: number
  isolatedApprovals: number
  lastEventAt: number
  lastCommitMode?: string
  /** offline commits: seq, amount, currency (the ones central has not confirmed are a queue) */
  offline: Array<{ seq: number; amountMinor: number; currency: string }>
}

export interface TerminalSnapshot {
  kind: 'terminal'
  at: number
  venueId: string
  self: string
  policyVersion: number
  online: boolean
  mode: 'quorum' | 'isolated'
  quorum: number
  roster: number
  peersReady: number
  decisionMode: string
  lastCentralAt: number | null
  terminals: Array<{
    id: string
    self: boolean
    link: Link
    mode: 'quorum' | 'isolated' | 'unknown'
    modeNote: string
    online: boolean | null
    peers: number | null
    queue: { count: number; amountsByCurrency: Record<string, number> }
    approvals: number
    isolatedApprovals: number
    isolatedExposureMinor: number
    lastEventAt: number | null
  }>
  exposure: Array<{
    currency: string
    venueMinor: number
    venueCapMinor: number
    isolatedMinor: number
    boundMinor: number
    isolatedDeviceCapMinor: number
  }>
  perMinute: { minutes: number[]; approvedVenue: number[]; approvedHere: number[]; declinedHere: number[] }
  declinesByCode: Record<string, number>
  settlement: { forwarded: number; completed: number; failed: number }
  recent: Array<{
    paymentId: string
    createdAt: number
    amountMinor: number
    currency: string
    status: string
    mode: string
    declineCode: string | null
    settlement: string
    syncDeclineCode: string | null
  }>
  alerts: Array<{ level: 'critical' | 'warning' | 'info'; text: string }>
  unknowns: string[]
}

function minuteOf(ts: number): number {
  return Math.floor(ts / MINUTE_MS) * MINUTE_MS
}

function bump(m: Map<number, number>, key: number, by = 1): void {
  m.set(key, (m.get(key) ?? 0) + by)
}

function formatMinor(amount: number, currency: string): string {
  return `${(amount / 100).toFixed(2)} ${currency}`
}

/** The venue as one terminal sees it, kept up to date from events. */
export class VenueView {
  readonly #t: Terminal
  readonly #idByKey = new Map<string, string>()
  readonly #origins = new Map<string, OriginStats>()
  readonly #links = new Map<string, Link>()
  readonly #payments = new Map<string, PaymentBody>()
  readonly #approvedVenue = new Map<number, number>()
  readonly #approvedHere = new Map<number, number>()
  readonly #declinedHere = new Map<number, number>()
  readonly #declinesByCode = new Map<string, number>()
  readonly #seenCommits = new Set<string>()
  readonly #decided = new Set<string>()
  #lastCentralAt: number | null = null
  #confirmedTotal = 0
  #onChange: () => void = () => {}
  #tick: NodeJS.Timeout | undefined
  #started = false
  #history: Promise<void> = Promise.resolve()

  readonly #onTerminalEvent = (evt: CustomEvent<TerminalEvent>): void => {
    const e = evt.detail
    const payment = (e.data as { payment?: PaymentBody }).payment
    if (payment !== undefined) this.#addPayment(payment, e.type === 'payment.decided')
    if (e.type === 'payment.forwarded' || e.type === 'payment.completed' || e.type === 'payment.failed')
      this.#lastCentralAt = e.data.at
    this.#onChange()
  }
  readonly #onMeshEvent = (evt: Event): void => {
    const signed = (evt as CustomEvent<{ event: SignedEvent }>).detail.event
    this.#addEvent(signed)
    this.#onChange()
  }
  readonly #onPeer = (evt: Event): void => {
    const { id, state } = (evt as CustomEvent<{ id: string; state: 'ready' | 'disconnected' }>).detail
    this.#links.set(id, state)
    this.#onChange()
  }
  readonly #onMode = (): void => this.#onChange()

  constructor(terminal: Terminal) {
    this.#t = terminal
  }

  set onChange(fn: () => void) {
    this.#onChange = fn
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    const t = this.#t
    for (const r of t.bundle.roster) this.#idByKey.set(r.publicKeyHex, r.id)
    // subscribe first: nothing that happens while the ledger is read is missed (both paths dedup)
    t.addEventListener('event', this.#onTerminalEvent)
    t.mesh.addEventListener('event', this.#onMeshEvent)
    t.mesh.addEventListener('peer', this.#onPeer)
    t.mesh.addEventListener('mode', this.#onMode)
    // the history is read in the background: a terminal with a big ledger serves payments at
    // once, and every snapshot waits for it (decoding 100,000 events takes seconds)
    this.#history = (async () => {
      for await (const e of t.ledger.events()) {
        if (!this.#started) return
        this.#addEvent(e)
      }
    })().catch((err: unknown) => log('history not loaded: %o', err))
    // the API starts before the terminal is `running` (t.payment answers only then): the payments
    // recorded before this start are read as soon as it is
    void this.#loadPayments().catch((err: unknown) => log('payments not loaded: %o', err))
    this.#tick = setInterval(() => this.#onChange(), TICK_MS)
    this.#tick.unref()
  }

  async #loadPayments(): Promise<void> {
    const t = this.#t
    for (let i = 0; i < 600 && !t.running; i++) {
      if (!this.#started) return
      await new Promise((r) => setTimeout(r, 50))
    }
    const own: PaymentBody[] = []
    for await (const record of t.ledger.payments()) {
      if (!this.#started) return
      const p = await t.payment(record.id).catch(() => undefined)
      if (p !== undefined) own.push(p)
    }
    own.sort((a, b) => a.createdAt - b.createdAt)
    for (const p of own) if (!this.#payments.has(p.paymentId || p.idempotencyKey)) this.#addPayment(p, true)
    this.#onChange()
  }

  stop(): void {
    if (!this.#started) return
    this.#started = false
    const t = this.#t
    if (this.#tick !== undefined) clearInterval(this.#tick)
    t.removeEventListener('event', this.#onTerminalEvent)
    t.mesh.removeEventListener('event', this.#onMeshEvent)
    t.mesh.removeEventListener('peer', this.#onPeer)
    t.mesh.removeEventListener('mode', this.#onMode)
  }

  #stats(originHex: string): OriginStats {
    let s = this.#origins.get(originHex)
    if (s === undefined) {
      s = { approvals: 0, isolatedApprovals: 0, lastEventAt: 0, offline: [] }
      this.#origins.set(originHex, s)
    }
    return s
  }

  #addEvent(signed: SignedEvent): void {
    const e = signed.event
    const s = this.#stats(toHex(e.origin))
    s.lastEventAt = Math.max(s.lastEventAt, e.ts)
    if (e.type !== 'commit' || this.#seenCommits.has(signed.idHex)) return
    this.#seenCommits.add(signed.idHex)
    s.approvals++
    s.lastCommitMode = e.mode
    if (e.mode === 'isolated') s.isolatedApprovals++
    const r = e.reservation.event
    if (e.mode !== 'online') s.offline.push({ seq: e.seq, amountMinor: r.amountMinor, currency: r.currency })
    bump(this.#approvedVenue, minuteOf(e.ts))
  }

  #addPayment(p: PaymentBody, decided: boolean): void {
    const key = p.paymentId || p.idempotencyKey
    this.#payments.set(key, p)
    if (decided && !this.#decided.has(key)) {
      this.#decided.add(key)
      const minute = minuteOf(p.createdAt)
      if (p.status.startsWith('approved')) bump(this.#approvedHere, minute)
      else {
        bump(this.#declinedHere, minute)
        const code = p.declineCode ?? 'declined'
        this.#declinesByCode.set(code, (this.#declinesByCode.get(code) ?? 0) + 1)
      }
    }
    if (this.#payments.size > KEEP_PAYMENTS) {
      const oldest = [...this.#payments.entries()].sort((a, b) => a[1].createdAt - b[1].createdAt)
      for (const [k] of oldest.slice(0, this.#payments.size - KEEP_PAYMENTS)) this.#payments.delete(k)
    }
  }

  async snapshot(): Promise<TerminalSnapshot> {
    await this.#history
    const t = this.#t
    const now = Date.now()
    const status = t.status()
    const mesh = t.mesh.status()
    const policy = t.bundle.policy
    const confirmed = await t.ledger.confirmedMarks()
    const total = Object.values(confirmed).reduce((a, b) => a + b, 0)
    if (total > this.#confirmedTotal) {
      if (this.#confirmedTotal > 0 || total > 0) this.#lastCentralAt = now
      this.#confirmedTotal = total
    }
    const currencies = Object.keys(policy.currencies)
    const allReady = status.mesh.peers >= status.mesh.roster - 1
    const noneReady = status.mesh.peers === 0
    const self = t.id

    const terminals: TerminalSnapshot['terminals'] = t.bundle.roster.map((r) => {
      const s = this.#origins.get(r.publicKeyHex)
      const isSelf = r.id === self
      let link: Link = isSelf ? 'self' : (this.#links.get(r.id) ?? 'unknown')
      if (link === 'unknown') link = allReady ? 'ready' : noneReady ? 'disconnected' : 'unknown'
      const isolatedExposureMinor = currencies[0]
        ? t.mesh.exposure.isolatedExposure(r.publicKeyHex, currencies[0]).amountMinor
        : 0
      let mode: 'quorum' | 'isolated' | 'unknown'
      let modeNote: string
      if (isSelf) {
        mode = status.mesh.mode
        modeNote =
          mode === 'quorum'
            ? `${status.mesh.peers + 1} of ${status.mesh.roster} reachable, quorum ${status.mesh.quorum}`
            : `only ${status.mesh.peers + 1} of ${status.mesh.roster} reachable, quorum needs ${status.mesh.quorum}`
      } else if (link === 'ready' && status.mesh.mode === 'quorum') {
        mode = 'quorum'
        modeNote = `in ${self}'s quorum`
      } else if (link === 'ready') {
        mode = 'unknown'
        modeNote = `reachable, but ${self} has no quorum: its own mode is unknown here`
      } else {
        mode = 'unknown'
        modeNote = `not reachable from ${self}: its mode and its payments since are unknown here${
          s?.lastCommitMode === undefined ? '' : ` (last approval seen: ${s.lastCommitMode})`
        }`
      }
      let queue = { count: 0, amountsByCurrency: {} as Record<string, number> }
      if (isSelf) queue = status.queue
      else if (s !== undefined) {
        const mark = confirmed[r.publicKeyHex] ?? 0
        for (const c of s.offline) {
          if (c.seq <= mark) continue
          queue.count++
          queue.amountsByCurrency[c.currency] = (queue.amountsByCurrency[c.currency] ?? 0) + c.amountMinor
        }
      }
      return {
        id: r.id,
        self: isSelf,
        link,
        mode,
        modeNote,
        online: isSelf ? status.online : null,
        peers: isSelf ? status.mesh.peers : null,
        queue,
        approvals: s?.approvals ?? 0,
        isolatedApprovals: s?.isolatedApprovals ?? 0,
        isolatedExposureMinor,
        lastEventAt: s === undefined || s.lastEventAt === 0 ? null : s.lastEventAt,
      }
    })

    // the first currency always, others once they carry something
    const exposure = currencies
      .map((currency) => {
        const limits = policy.currencies[currency]!
        let isolatedMinor = 0
        for (const r of t.bundle.roster)
          isolatedMinor += t.mesh.exposure.isolatedExposure(r.publicKeyHex, currency).amountMinor
        return {
          currency,
          venueMinor: t.mesh.exposure.venueExposure(currency, now - policy.queueDurationMs),
          venueCapMinor: limits.venueCapMinor,
          isolatedMinor,
          boundMinor: mesh.exposureBounds[currency] ?? 0,
          isolatedDeviceCapMinor: limits.isolatedDeviceCapMinor,
        }
      })
      .filter((e, i) => i === 0 || e.venueMinor > 0 || e.isolatedMinor > 0)

    const first = minuteOf(now) - (MINUTES - 1) * MINUTE_MS
    const minutes = Array.from({ length: MINUTES }, (_, i) => first + i * MINUTE_MS)
    const series = (m: Map<number, number>): number[] => minutes.map((k) => m.get(k) ?? 0)

    const recent = [...this.#payments.values()]
      .sort((a, b) => b.createdAt - a.createdAt)
      .slice(0, RECENT_PAYMENTS)
      .map((p) => ({
        paymentId: p.paymentId,
        createdAt: p.createdAt,
        amountMinor: p.amountMinor,
        currency: p.currency,
        status: p.status,
        mode: p.mode,
        declineCode: p.declineCode ?? null,
        settlement: p.settlement.status,
        syncDeclineCode: p.settlement.syncDeclineCode ?? null,
      }))

    const alerts: TerminalSnapshot['alerts'] = []
    const unknowns: string[] = []
    const unreachable = terminals.filter((x) => !x.self && x.link !== 'ready')
    if (status.mesh.mode === 'isolated') {
      const group = [self, ...terminals.filter((x) => x.link === 'ready').map((x) => x.id)]
      alerts.push({
        level: 'critical',
        text: `${self} is ISOLATED: ${group.length} of ${status.mesh.roster} terminals reachable (${group.join(', ')}), quorum needs ${status.mesh.quorum}. Approvals only within the isolated limits.`,
      })
      if (group.length > 1)
        alerts.push({
          level: 'warning',
          text: `Group without quorum: ${group.join(', ')} can reach each other but not a quorum.`,
        })
    }
    for (const x of unreachable)
      alerts.push({
        level: 'warning',
        text: `${x.id} is ${x.link === 'unknown' ? 'not confirmed reachable' : 'NOT REACHABLE'} from ${self}.`,
      })
    if (!status.online)
      alerts.push({
        level: 'warning',
        text: `Central is OFFLINE for ${self}: approvals queue here (${status.queue.count}) and settle when the link returns.`,
      })
    for (const p of this.#payments.values()) {
      if (p.settlement.syncDeclineCode === 'duplicate_nullifier')
        alerts.push({
          level: 'critical',
          text: `Partition loss: payment ${p.paymentId.slice(0, 12)}… (${formatMinor(p.amountMinor, p.currency)}) was approved on both sides of a partition; central settled it once.`,
        })
    }
    for (const e of exposure) {
      if (e.venueMinor > e.venueCapMinor)
        alerts.push({
          level: 'critical',
          text: `Policy violation: venue offline exposure ${formatMinor(e.venueMinor, e.currency)} is over its cap ${formatMinor(e.venueCapMinor, e.currency)}.`,
        })
      if (e.isolatedMinor > e.boundMinor)
        alerts.push({
          level: 'critical',
          text: `Policy violation: isolated approvals ${formatMinor(e.isolatedMinor, e.currency)} exceed the bound ${formatMinor(e.boundMinor, e.currency)}.`,
        })
    }
    if (unreachable.length > 0) {
      const cap = exposure[0]
      const ids = unreachable.map((x) => x.id)
      const one = ids.length === 1
      unknowns.push(
        `${ids.join(', ')}: ${one ? 'its' : 'their'} mode, queue and the payments ${one ? 'it takes' : 'they take'} from now on` +
          (cap === undefined
            ? ''
            : ` — while isolated ${one ? 'it' : 'each'} can approve at most ${formatMinor(cap.isolatedDeviceCapMinor, cap.currency)} more`) +
          '. They reach this ledger when the mesh heals.',
      )
    }
    if (unreachable.length > 0)
      unknowns.push(
        'The venue totals here (exposure, approvals, queues) count only what this terminal has received; the worst case is the isolated bound.',
      )
    if (!status.online)
      unknowns.push(
        'Settlement outcomes (completed / failed, partition losses found by central) and deny-list changes since central was last reached.',
      )

    return {
      kind: 'terminal',
      at: now,
      venueId: t.bundle.venueId,
      self,
      policyVersion: policy.version,
      online: status.online,
      mode: status.mesh.mode,
      quorum: status.mesh.quorum,
      roster: status.mesh.roster,
      peersReady: status.mesh.peers,
      decisionMode: status.decisionMode,
      lastCentralAt: this.#lastCentralAt,
      terminals,
      exposure,
      perMinute: {
        minutes,
        approvedVenue: series(this.#approvedVenue),
        approvedHere: series(this.#approvedHere),
        declinedHere: series(this.#declinedHere),
      },
      declinesByCode: Object.fromEntries([...this.#declinesByCode.entries()].sort((a, b) => b[1] - a[1])),
      settlement: status.settlement,
      recent,
      alerts,
      unknowns,
    }
  }
}

/**
 * GET /dashboard (HTML; `?token=` signs the browser in with a cookie), GET /v1/dashboard (the
 * snapshot as JSON), GET /v1/dashboard/stream (snapshots over Server-Sent Events) and the assets.
 * The API's auth hook already guards /v1/*; /dashboard checks the token itself (to show a sign-in
 * page instead of a JSON 401).
 */
export async function registerTerminalDashboard(
  app: FastifyInstance,
  terminal: Terminal,
  token: string,
): Promise<void> {
  const auth = createDashboardAuth(token)
  const view = new VenueView(terminal)
  const streams = snapshotStreams(
    () => view.snapshot(),
    (err) => log('dashboard snapshot failed: %o', err),
  )
  view.onChange = () => streams.changed()
  // started by the first dashboard request, not with the terminal: reading the ledger's history
  // costs about 1 s of CPU and tens of MiB per 100,000 events, which a terminal whose dashboard
  // nobody opens should not pay at every start (the view reads the history and the payments from
  // the ledger when it starts, so nothing before it is missed)
  const opened = (): VenueView => {
    void view.start()
    return view
  }
  app.addHook('preClose', async () => {
    streams.close()
    view.stop()
  })
  registerDashboardAssets(app)
  const title = `nullmesh ${terminal.id} — ${terminal.bundle.venueId}`
  app.get(DASHBOARD_PATH, { schema: HIDDEN }, async (req, reply) => {
    if (!handleLogin(auth, title, req, reply)) return reply
    const snapshot = await opened().snapshot()
    const views = await loadViews()
    return reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .serializer((s: unknown) => s as string)
      .send(
        page({
          title,
          kind: 'terminal',
          html: views.renderTerminal(snapshot),
          snapshot,
          stream: '/v1/dashboard/stream',
        }),
      )
  })
  app.get('/v1/dashboard', { schema: HIDDEN }, async () => opened().snapshot())
  app.get('/v1/dashboard/stream', { schema: HIDDEN }, (req, reply) => {
    opened()
    return streams.open(req, reply)
  })
}

export { createDashboardAuth }
