import type { Ledger } from '@nullmesh/ledger'
import { DOMAIN, type SignedEvent, type SignedRevocation, verifyDocument } from '@nullmesh/protocol'
import debug from 'debug'
import type { CentralLink, CentralPaymentStatus } from './central.js'
import type { ConnectivityMonitor } from './connectivity.js'
import {
  CURSORS,
  LOG_NAMESPACE,
  MAX_REMEMBERED_REJECTIONS,
  STATUS_BATCH_MAX,
  SYNC_DEFAULTS,
} from './constants.js'
import { TerminalError } from './errors.js'
import type { TerminalMetrics } from './metrics.js'
import { fetchAbandoned, fetchRevocations } from './notices.js'

const log = debug(`${LOG_NAMESPACE}:sync`)

export interface SyncOptions {
  /** events per POST /v1/sync (default 50, at most 500) */
  batchSize: number
  /** pause between rounds while online (each payment also wakes the agent) */
  intervalMs: number
  statusPollLimit: number
  statusPollMinIntervalMs: number
  statusPollConcurrency: number
  denylistRefreshMs: number
  /** delete event bodies central confirmed (default off) */
  prune: boolean
}

/** The venue deny list as central signs it (operator key, DOMAIN.denylist). */
export interface Denylist {
  venueId: string
  version: number
  blockedBins: string[]
  denylistCardKeys: string[]
}

export interface SyncRoundResult {
  /** events sent (across batches) */
  sent: number
  stored: number
  duplicate: number
  rejected: number
  batches: number
  /** origins whose next event central refused for now (retried next round) */
  held: string[]
  /** settlement statuses received (sync answers and polls) */
  statuses: number
}

/**
 * Central rejections that retrying can never fix (the bytes or the signatures are bad, or the
 * origin equivocated). The agent records the event id and moves past it. Any other rejection
 * (unknown venue, not enrolled: configuration that may still change) holds that origin's stream
 * at the event until central accepts it, so nothing is skipped by mistake.
 */
const PERMANENT_REJECTIONS: ReadonlySet<string> = new Set([
  'ERR_BAD_ENCODING',
  'ERR_TOO_LARGE',
  'ERR_BAD_VERSION',
  'ERR_MALFORMED',
  'ERR_NON_CANONICAL',
  'ERR_BAD_FIELD',
  'ERR_BAD_SIGNATURE',
  'ERR_QUORUM',
  'ERR_SEQ_CONFLICT',
  'ERR_NOT_ORIGIN',
  'ERR_WRONG_TYPE',
])

export interface SyncAgentInit {
  ledger: Ledger
  link: CentralLink
  monitor: ConnectivityMonitor
  /** this terminal's public key (hex): its own events go first */
  origin: string
  venueId: string
  operatorPublicKey: Uint8Array
  metrics: TerminalMetrics
  options?: Partial<SyncOptions>
  /** apply central's statuses to own payments */
  onStatuses: (statuses: CentralPaymentStatus[]) => Promise<number>
  /** own payments still waiting for a final status */
  unsettled: () => AsyncIterable<{ id: string; status: string }>
  onDenylist: (denylist: Denylist) => Promise<void>
  /** void at central the online attempts left without an answer (run at the start of every round) */
  resolvePending?: (signal: AbortSignal | undefined) => Promise<unknown>
  /** central confirmed these origins' events up to seq (after the marks are durable) */
  onConfirmed?: (marks: Record<string, number>) => void
  currentDenylistVersion: () => number
  /** operator revocations, verified (issue 17, item 2): fetched with the deny list */
  onRevocations?: (docs: SignedRevocation[]) => Promise<void>
  /** central's abandoned reservations, verified (issue 17, item 5): fetched with the deny list */
  onAbandoned?: (reservationIds: string[]) => Promise<void>
  /** sign a sync checkpoint at this time (the terminal's key); none: no checkpoints */
  signCheckpoint?: (at: number) => unknown
}

function isDenylist(value: unknown): value is Denylist {
  const d = value as Partial<Denylist> | null
  return (
    d !== null &&
    typeof d === 'object' &&
    typeof d.venueId === 'string' &&
    Number.isSafeInteger(d.version) &&
    Array.isArray(d.blockedBins) &&
    d.blockedBins.every((b) => typeof b === 'string' && /^[0-9]{1,8}$/.test(b)) &&
    Array.isArray(d.denylistCardKeys) &&
    d.denylistCardKeys.every((k) => typeof k === 'string' && /^[0-9a-f]{32}$/.test(k))
  )
}

/**
 * The terminal's sync agent. While central is reachable it flushes every event of the ledger —
 * its own first, then its peers' — in per-origin seq order, in batches, and moves the ledger's
 * `confirmed` marks (the cursor) only past events central answered `stored` or `duplicate`.
 * Killed mid-batch, it resends the batch next time and central's idempotent ingest makes that a
 * no-op: nothing is lost (the cursor never passes an unacknowledged event) and nothing is
 * duplicated. It applies the payment statuses central returns (and polls the unsettled ones),
 * refreshes the signed deny list, and prunes only what central confirmed.
 */
export class SyncAgent {
  readonly #init: SyncAgentInit
  readonly #opts: SyncOptions
  #running = false
  #controller: AbortController | undefined
  #loop: Promise<void> | undefined
  #wake: (() => void) | undefined
  #kicked = false
  #chain: Promise<unknown> = Promise.resolve()
  #denylistAt = 0
  readonly #polledAt = new Map<string, number>()
  /** central answers POST /v1/payments/status (until a 404 says otherwise) */
  #batchStatus = true
  /**
   * Per origin, past a hole of this ledger (a seq it lacks): the highest seq up to which central
   * acknowledged every event held here, and the holes below it. In memory: after a restart what
   * lies past a hole is sent once more (central answers `duplicate`).
   */
  readonly #past = new Map<string, { through: number; holes: Set<number> }>()
  readonly #onChange = (): void => this.kick()

  constructor(init: SyncAgentInit) {
    this.#init = init
    this.#opts = { ...SYNC_DEFAULTS, ...init.options }
    if (!Number.isInteger(this.#opts.batchSize) || this.#opts.batchSize < 1 || this.#opts.batchSize > 500) {
      throw new TerminalError('invalid_config', 'sync batchSize must be an integer in [1, 500]')
    }
  }

  /** Idempotent. */
  start(): void {
    if (this.#running) return
    this.#running = true
    this.#controller = new AbortController()
    this.#init.monitor.addEventListener('change', this.#onChange)
    this.#loop = this.#run(this.#controller.signal)
  }

  /** Idempotent. Aborts a batch in flight (it is resent next time) and waits for the loop to end. */
  async stop(): Promise<void> {
    if (!this.#running) return
    this.#running = false
    this.#init.monitor.removeEventListener('change', this.#onChange)
    this.#controller?.abort(new TerminalError('not_ready', 'the terminal is stopping'))
    this.kick()
    await this.#loop
    await this.#chain.catch(() => {})
    this.#loop = undefined
    this.#controller = undefined
  }

  /** Run a round soon (new events, connectivity came back). */
  kick(): void {
    this.#kicked = true
    this.#wake?.()
  }

  /** One full round now, serialised with the background loop: flush, statuses, deny list. */
  async syncNow(opts: { signal?: AbortSignal } = {}): Promise<SyncRoundResult> {
    return this.#serial(() => this.#round(opts.signal, true))
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(fn, fn)
    this.#chain = next.catch(() => {})
    return next
  }

  async #run(signal: AbortSignal): Promise<void> {
    while (this.#running) {
      this.#kicked = false
      if (this.#init.monitor.online) {
        try {
          await this.#serial(() => this.#round(signal, false))
        } catch (err: unknown) {
          if (!this.#running) break
          this.#init.metrics.syncErrors.inc()
          if (err instanceof TerminalError && err.code === 'central_unavailable')
            this.#init.monitor.reportFailure(err)
          log('sync round failed: %s', (err as Error).message)
        }
      }
      if (!this.#running) break
      if (!this.#kicked) await this.#sleep(this.#init.monitor.online ? this.#opts.intervalMs : 60_000)
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done(): void {
        clearTimeout(timer)
        resolve()
      }
      this.#wake = () => {
        this.#wake = undefined
        done()
      }
    })
  }

  async #round(signal: AbortSignal | undefined, forceDenylist: boolean): Promise<SyncRoundResult> {
    // unanswered online attempts first: each may be a charge for a payment the POS saw declined
    await this.#init.resolvePending?.(signal)
    // what the ledger holds now is what this round flushes (a checkpoint claims no more)
    const startedAt = Date.now()
    // checkpoints and notices at the deny list's pace: abandonment is not urgent, central's load is
    const refresh = forceDenylist || startedAt - this.#denylistAt >= this.#opts.denylistRefreshMs
    const result = await this.#flush(signal)
    if (refresh) await this.#checkpoint(result, startedAt, signal)
    result.statuses += await this.#pollStatuses(signal)
    const now = Date.now()
    if (refresh) {
      await this.#refreshDenylist(signal)
      await this.#refreshNotices(signal)
      this.#denylistAt = now
    }
    if (this.#opts.prune) await this.#init.ledger.prune({ signal })
    this.#init.monitor.reportSuccess()
    return result
  }

  /** Send everything central has not confirmed, in order, in batches. */
  async #flush(signal: AbortSignal | undefined): Promise<SyncRoundResult> {
    const { ledger, link, metrics, origin: self } = this.#init
    const result: SyncRoundResult = {
      sent: 0,
      stored: 0,
      duplicate: 0,
      rejected: 0,
      batches: 0,
      held: [],
      statuses: 0,
    }
    const confirmed = await ledger.confirmedMarks({ signal })
    // each origin's largest seq, past gaps: a seq this ledger lacks does not stop it (below)
    const top = await ledger.maxSeqs({ signal })
    // Per origin in seq order from the confirmed mark. A seq this ledger lacks is passed over (a
    // hole), not waited at: catch-up may fill it later (it is sent then), but it may never come —
    // an own event that died with its origin's disk before it left (the simulator: a wiped
    // terminal's later approvals never reached central while every ledger waited at its hole).
    // Central takes events in any order. The confirmed mark (the durable cursor) stays contiguous;
    // what central acknowledged past a hole is remembered in memory (#past), so it is not resent
    // every round.
    const next = new Map<string, number>()
    for (const [o, h] of Object.entries(top)) {
      const c = confirmed[o] ?? 0
      const past = this.#past.get(o)
      if (past !== undefined && past.through <= c) this.#past.delete(o)
      const start = Math.max(c, this.#past.get(o)?.through ?? 0) + 1
      if (h >= start || (this.#past.get(o)?.holes.size ?? 0) > 0) next.set(o, start)
    }
    const origins = [...next.keys()].sort((a, b) => (a === self ? -1 : b === self ? 1 : a < b ? -1 : 1))
    const held = new Set<string>()
    /** holes looked at again this round (filled by catch-up since, or still missing), per origin */
    const retried = new Map<string, Set<number>>()
    for (;;) {
      const batch: { origin: string; seq: number; event: SignedEvent; hole: boolean }[] = []
      for (const o of origins) {
        if (held.has(o)) continue
        const past = this.#past.get(o)
        if (past !== undefined && past.holes.size > 0) {
          // a gap catch-up is filling may be thousands of seqs: batches stay within batchSize
          const seen = retried.get(o) ?? new Set<number>()
          retried.set(o, seen)
          for (const seq of [...past.holes].sort((x, y) => x - y)) {
            if (batch.length >= this.#opts.batchSize) break
            if (seen.has(seq)) continue
            seen.add(seq)
            const event = await ledger.getEventAt(o, seq, { signal })
            if (event !== undefined) batch.push({ origin: o, seq, event, hole: true })
          }
        }
        let seq = next.get(o)!
        while (seq <= top[o]! && batch.length < this.#opts.batchSize) {
          const event = await ledger.getEventAt(o, seq, { signal })
          if (event === undefined) this.#pastOf(o, confirmed[o] ?? 0).holes.add(seq)
          else batch.push({ origin: o, seq, event, hole: false })
          seq++
        }
        next.set(o, seq)
        if (batch.length >= this.#opts.batchSize) break
      }
      if (batch.length === 0) break
      const answer = await link.sync(
        batch.map((b) => b.event.bytes),
        { signal },
      )
      metrics.syncBatches.inc()
      result.batches++
      result.sent += batch.length
      const byId = new Map(answer.results.map((r) => [r.id, r]))
      const rejected: string[] = []
      const touched = new Set<string>()
      let progressed = false
      for (const item of batch) {
        if (held.has(item.origin)) continue
        const r = byId.get(item.event.idHex)
        if (r?.status === 'stored' || r?.status === 'duplicate') {
          result[r.status]++
          metrics.syncEvents.inc({ result: r.status })
        } else if (r?.status === 'rejected' && r.code !== undefined && PERMANENT_REJECTIONS.has(r.code)) {
          result.rejected++
          metrics.syncEvents.inc({ result: 'rejected' })
          rejected.push(`${item.event.idHex}:${r.code}`)
          log(
            'central rejected %s#%d for good (%s): moving past it',
            item.origin.slice(0, 8),
            item.seq,
            r.code,
          )
        } else {
          // not answered, or refused for a reason that may go away: hold this origin here
          if (r?.status === 'rejected') {
            result.rejected++
            metrics.syncEvents.inc({ result: 'rejected' })
            log('central refused %s#%d (%s): holding that origin', item.origin.slice(0, 8), item.seq, r.code)
          }
          held.add(item.origin)
          continue
        }
        const past = this.#pastOf(item.origin, confirmed[item.origin] ?? 0)
        if (item.hole) past.holes.delete(item.seq)
        else past.through = Math.max(past.through, item.seq)
        touched.add(item.origin)
        progressed = true
      }
      if (rejected.length > 0) await this.#rememberRejected(rejected)
      // the durable cursor: contiguous, up to the first hole still open
      const marks: Record<string, number> = {}
      for (const o of touched) {
        const past = this.#past.get(o)!
        let m = confirmed[o] ?? 0
        while (m < past.through && !past.holes.has(m + 1)) m++
        if (m > (confirmed[o] ?? 0)) {
          marks[o] = m
          confirmed[o] = m
        }
        if (past.holes.size === 0 && past.through <= m) this.#past.delete(o)
      }
      if (Object.keys(marks).length > 0) {
        await ledger.markConfirmed(marks, { signal })
        this.#init.onConfirmed?.(marks)
      }
      result.statuses += await this.#init.onStatuses(answer.payments)
      if (!progressed && held.size === 0) break
    }
    result.held = [...held]
    if (result.sent > 0)
      log(
        'flushed %d events in %d batches (%d stored, %d duplicate, %d rejected)',
        result.sent,
        result.batches,
        result.stored,
        result.duplicate,
        result.rejected,
      )
    return result
  }

  #pastOf(origin: string, confirmed: number): { through: number; holes: Set<number> } {
    let past = this.#past.get(origin)
    if (past === undefined) {
      past = { through: confirmed, holes: new Set() }
      this.#past.set(origin, past)
    }
    return past
  }

  async #rememberRejected(entries: string[]): Promise<void> {
    const { ledger } = this.#init
    const previous = await ledger.getCursor(CURSORS.syncRejected)
    let list: string[] = []
    try {
      list = previous === undefined ? [] : (JSON.parse(previous) as string[])
    } catch {
      list = []
    }
    list.push(...entries)
    await ledger.setCursor(CURSORS.syncRejected, JSON.stringify(list.slice(-MAX_REMEMBERED_REJECTIONS)), {
      sync: true,
    })
  }

  /** Ask central about own payments that are not final yet, least recently asked first. */
  async #pollStatuses(signal: AbortSignal | undefined): Promise<number> {
    const candidates: { id: string; at: number }[] = []
    const live = new Set<string>()
    for await (const p of this.#init.unsettled()) {
      live.add(p.id)
      candidates.push({ id: p.id, at: this.#polledAt.get(p.id) ?? 0 })
    }
    for (const id of this.#polledAt.keys()) if (!live.has(id)) this.#polledAt.delete(id)
    const due = Date.now() - this.#opts.statusPollMinIntervalMs
    const pick = candidates
      .filter((c) => c.at <= due)
      .sort((a, b) => a.at - b.at)
      .slice(0, this.#opts.statusPollLimit)
    if (pick.length === 0) return 0
    const { link } = this.#init
    if (link.payments !== undefined && this.#batchStatus) {
      const at = Date.now()
      for (const c of pick) this.#polledAt.set(c.id, at)
      try {
        const statuses: CentralPaymentStatus[] = []
        for (let i = 0; i < pick.length; i += STATUS_BATCH_MAX) {
          const ids = pick.slice(i, i + STATUS_BATCH_MAX).map((c) => c.id)
          statuses.push(...(await link.payments(ids, { signal })))
        }
        return this.#init.onStatuses(statuses)
      } catch (err: unknown) {
        if (!(err instanceof TerminalError && err.upstreamStatus === 404)) throw err
        // a central from before POST /v1/payments/status: one GET per payment from now on
        log('central has no batch status route: polling payments one by one')
        this.#batchStatus = false
      }
    }
    const statuses: CentralPaymentStatus[] = []
    let index = 0
    const worker = async (): Promise<void> => {
      while (index < pick.length) {
        const { id } = pick[index++]!
        this.#polledAt.set(id, Date.now())
        const status = await this.#init.link.payment(id, { signal })
        if (status !== undefined) statuses.push({ ...status, paymentId: status.paymentId ?? id })
      }
    }
    await Promise.all(Array.from({ length: Math.min(this.#opts.statusPollConcurrency, pick.length) }, worker))
    return this.#init.onStatuses(statuses)
  }

  /**
   * Issue 17, item 5: after a round that left nothing behind (no origin held), tell central
   * the ledger flushed everything it held when the round began. Central abandons a reservation
   * only once every enrolled, non-revoked terminal has checkpointed past it.
   */
  async #checkpoint(result: SyncRoundResult, at: number, signal: AbortSignal | undefined): Promise<void> {
    const { link, signCheckpoint } = this.#init
    // a hole in the ledger does not matter: what lies past it was sent too ("Sync past a hole")
    if (signCheckpoint === undefined || link.checkpoint === undefined || result.held.length > 0) return
    try {
      await link.checkpoint(signCheckpoint(at), signal === undefined ? {} : { signal })
    } catch (err: unknown) {
      if (!(err instanceof TerminalError && err.code === 'central_rejected')) throw err
      log('checkpoint refused: %s', err.message)
    }
  }

  async #refreshNotices(signal: AbortSignal | undefined): Promise<void> {
    const { link, venueId, operatorPublicKey, onRevocations, onAbandoned } = this.#init
    const target = { link, venueId, operatorPublicKey }
    if (onRevocations !== undefined) await onRevocations(await fetchRevocations(target, signal))
    if (onAbandoned !== undefined) await onAbandoned(await fetchAbandoned(target, signal))
  }

  async #refreshDenylist(signal: AbortSignal | undefined): Promise<void> {
    const { link, venueId, operatorPublicKey } = this.#init
    let doc: unknown
    try {
      doc = await link.denylist(venueId, { signal })
    } catch (err: unknown) {
      if (err instanceof TerminalError && err.code === 'central_rejected') {
        log('deny list not available: %s', err.message)
        return
      }
      throw err
    }
    const verified = verifyDocument<Denylist>(DOMAIN.denylist, doc, operatorPublicKey)
    if (!verified.ok) {
      log('deny list refused: %s', verified.error.message)
      return
    }
    const payload = verified.value.payload
    if (!isDenylist(payload) || payload.venueId !== venueId) {
      log('deny list refused: unexpected payload')
      return
    }
    if (payload.version <= this.#init.currentDenylistVersion()) return
    await this.#init.onDenylist(payload)
    log(
      'deny list version %d: %d BINs, %d cards',
      payload.version,
      payload.blockedBins.length,
      payload.denylistCardKeys.length,
    )
  }
}
