import { randomBytes } from 'node:crypto'
import {
  type Commit,
  decodeEvent,
  eventId,
  type Release,
  type Reservation,
  type Result,
  type SignedAck,
  type SignedEvent,
  toBase64url,
  toHex,
  type VerifyPool,
  verifyAckSignature,
  verifyEventSignature,
  verifyQuorumCertificate,
} from '@nullmesh/protocol'
import { lateCommitOfAbandoned } from './abandon.js'
import { commitPolicyViolation, violatedPayment } from './commit-policy.js'
import { DEFAULT_ISSUER_TIMEOUT_MS, DEFAULT_SETTLE_LEASE_MS, OFFLINE_SYNC_FAILURE } from './constants.js'
import { CentralError, type RejectCode } from './errors.js'
import { BatchVerifier, readSetOf } from './ingest-batch.js'
import type { AuthorizeResult, IssuerAdapter } from './issuer.js'
import type { Logger } from './logger.js'
import type { Mutex, RunOptions } from './mutex.js'
import { revokedAtSigning, revokedCommitViolation } from './revocations.js'
import { type CentralStore, type ReadSet, type ReadSetRequest, StoreConflict, type StoreOp } from './store.js'
import {
  type AbortOptions,
  type PaymentRecord,
  type PaymentStatusView,
  type PendingRelease,
  type StoredEvent,
  type SyncDeclineCode,
  toStatusView,
  type WebhookEndpoint,
} from './types.js'
import type { VenueContext, VenueRegistry } from './venues.js'
import { outboxOpsFor } from './webhooks.js'

/** a customer is waiting on these: ahead of queued sync batches (mutex.ts) */
const HIGH: RunOptions = { priority: 'high' }

export interface EventResult {
  /** hex sha256 of the event's wire bytes */
  id: string
  status: 'stored' | 'duplicate' | 'rejected'
  code?: RejectCode
  message?: string
}

export interface IngestResult {
  results: EventResult[]
  /** the payments this batch touched, as they stand after it */
  payments: PaymentStatusView[]
}

export interface VoidResult {
  paymentId: string
  /** voided: the customer is not charged for it; committed: a Commit of it was merged first and stands */
  status: 'voided' | 'committed'
}

export interface OnlineAuthorization {
  paymentId: string
  status: 'approved' | 'declined'
  declineCode?: string
}

const SYNC_CODES: ReadonlySet<string> = new Set([
  'insufficient_funds',
  'lost_or_stolen',
  'expired',
  'issuer_declined',
])

class Rejection extends Error {
  readonly code: RejectCode
  constructor(code: RejectCode, message: string) {
    super(message)
    this.code = code
  }
}

/**
 * A unit of work: reads see its own writes, and everything it wrote is applied as one atomic
 * batch at the end, so a crash mid-request leaves the store as it was before the request.
 */
class Tx {
  readonly ops: StoreOp[] = []
  private readonly events = new Map<string, StoredEvent>()
  private readonly eventIds = new Map<string, StoredEvent>()
  private readonly payments = new Map<string, PaymentRecord>()
  /** null: freed in this transaction */
  private readonly nullifiers = new Map<string, string | null>()
  private readonly releases = new Map<string, PendingRelease | null>()
  private endpoints: WebhookEndpoint[] | undefined
  /** transitions with a webhook, applied with the batch */
  private readonly notify: Array<{ record: PaymentRecord; previous: PaymentRecord['status'] | undefined }> =
    []

  constructor(
    private readonly store: CentralStore,
    readonly now: number,
  ) {}

  async getEvent(origin: string, seq: number): Promise<StoredEvent | undefined> {
    const key = `${origin}!${seq}`
    const own = this.events.get(key)
    if (own !== undefined) return own
    const pre = this.pre.events.get(key)
    return pre !== undefined ? (pre ?? undefined) : this.store.getEvent(origin, seq)
  }

  /**
   * What the store held under these keys, read in one go at the start of the unit (null: nothing):
   * the reads below answer from it as the store would have (the unit's own writes first, as ever).
   */
  private readonly pre = {
    ids: new Map<string, StoredEvent | null>(),
    events: new Map<string, StoredEvent | null>(),
    payments: new Map<string, PaymentRecord | null>(),
    nullifiers: new Map<string, string | null>(),
    releases: new Map<string, PendingRelease | null>(),
  }

  async prefetch(req: ReadSetRequest): Promise<void> {
    const got: ReadSet = await this.store.readSet(req)
    for (const id of req.ids) this.pre.ids.set(id, null)
    for (const k of req.events) this.pre.events.set(`${k.origin}!${k.seq}`, null)
    for (const e of got.events) {
      this.pre.events.set(`${e.origin}!${e.seq}`, e)
      this.pre.ids.set(e.id, e)
    }
    for (const id of req.payments) this.pre.payments.set(id, null)
    for (const p of got.payments) this.pre.payments.set(p.paymentId, p)
    for (const n of req.nullifiers) this.pre.nullifiers.set(n, got.nullifiers.get(n) ?? null)
    for (const id of req.releases) this.pre.releases.set(id, null)
    for (const r of got.releases) this.pre.releases.set(r.reservationId, r)
  }

  async getEventById(id: string): Promise<StoredEvent | undefined> {
    const own = this.eventIds.get(id)
    if (own !== undefined) return own
    const pre = this.pre.ids.get(id)
    return pre !== undefined ? (pre ?? undefined) : this.store.getEventById(id)
  }

  putEvent(signed: SignedEvent): void {
    const e = signed.event
    const stored: StoredEvent = {
      id: signed.idHex,
      origin: toHex(e.origin),
      seq: e.seq,
      venue: e.venue,
      type: e.type,
      bytes: toBase64url(signed.bytes),
      receivedAt: this.now,
    }
    this.events.set(`${stored.origin}!${stored.seq}`, stored)
    this.eventIds.set(stored.id, stored)
    this.ops.push({ op: 'putEvent', event: stored })
  }

  async getPayment(id: string): Promise<PaymentRecord | undefined> {
    const own = this.payments.get(id)
    if (own !== undefined) return own
    const pre = this.pre.payments.get(id)
    return pre !== undefined ? (pre ?? undefined) : this.store.getPayment(id)
  }

  /** Record a payment; a status change with a webhook type also queues its deliveries. */
  putPayment(p: PaymentRecord, previous: PaymentRecord['status'] | undefined): void {
    const record = { ...p, updatedAt: this.now }
    this.payments.set(p.paymentId, record)
    this.ops.push({ op: 'putPayment', payment: record })
    if (previous !== record.status) this.notify.push({ record, previous })
  }

  async getNullifier(n: string): Promise<string | undefined> {
    const local = this.nullifiers.get(n)
    if (local === null) return undefined
    if (local !== undefined) return local
    const pre = this.pre.nullifiers.get(n)
    return pre !== undefined ? (pre ?? undefined) : this.store.getNullifier(n)
  }

  claimNullifier(nullifier: string, paymentId: string): void {
    this.nullifiers.set(nullifier, paymentId)
    this.ops.push({ op: 'claimNullifier', nullifier, paymentId })
  }

  /** Give the nullifier back if this payment holds it (another payment's claim stays). */
  async freeNullifier(nullifier: string, paymentId: string): Promise<void> {
    if ((await this.getNullifier(nullifier)) !== paymentId) return
    this.nullifiers.set(nullifier, null)
    this.ops.push({ op: 'delNullifier', nullifier, paymentId })
  }

  async getRelease(reservationId: string): Promise<PendingRelease | undefined> {
    const local = this.releases.get(reservationId)
    if (local === null) return undefined
    if (local !== undefined) return local
    const pre = this.pre.releases.get(reservationId)
    return pre !== undefined ? (pre ?? undefined) : this.store.getPendingRelease(reservationId)
  }

  putRelease(release: PendingRelease): void {
    this.releases.set(release.reservationId, release)
    this.ops.push({ op: 'putRelease', release })
  }

  delRelease(reservationId: string): void {
    this.releases.set(reservationId, null)
    this.ops.push({ op: 'delRelease', reservationId })
  }

  payment(id: string): PaymentRecord | undefined {
    return this.payments.get(id)
  }

  /** The full batch: writes, then one outbox entry per endpoint for each payment transition. */
  async finish(): Promise<StoreOp[]> {
    if (this.notify.length > 0) {
      this.endpoints ??= await this.store.listWebhooks()
      const logged: StoreOp[] = []
      const deliveries: StoreOp[] = []
      for (const { record, previous } of this.notify) {
        // only the state it ends in: a payment created and failed in one batch notifies 'failed'
        if (this.payments.get(record.paymentId) !== record) continue
        for (const o of outboxOpsFor(record, this.endpoints, this.now, previous))
          (o.op === 'putWebhookEvent' ? logged : deliveries).push(o)
      }
      // one statement for the log entries, then the deliveries (each in the log's order)
      this.ops.push(...logged, ...deliveries)
      this.notify.length = 0
    }
    return this.ops
  }
}

export interface EngineInit {
  store: CentralStore
  venues: VenueRegistry
  issuer: IssuerAdapter
  mutex: Mutex
  now: () => number
  log: Logger
  issuerTimeoutMs?: number
  /** a transition was written with deliveries for these endpoints: wake their lanes */
  onOutbox: (endpointIds: Set<string>) => void
  /** payments were queued: wake the settlement loop */
  onQueued: () => void
  /** how long a settlement claim on a payment holds against other processes (default 30 s) */
  settleLeaseMs?: number
  /** verifies sync batches on worker threads; without one (or while it is stopped) ingest verifies inline */
  verifyPool?: VerifyPool
}

/** a unit of work that lost a race to another process is redone at most this often */
const MAX_ATTEMPTS = 50

export type SettleOutcome = 'completed' | 'failed' | 'pending' | 'skipped'

/** Verification, dedup, the payment state machine and settlement steps. Transport-free. */
export class Engine {
  private readonly store: CentralStore
  private readonly venues: VenueRegistry
  private readonly issuer: IssuerAdapter
  private readonly mutex: Mutex
  private readonly now: () => number
  private readonly log: Logger
  private readonly issuerTimeoutMs: number
  private readonly onOutbox: (endpointIds: Set<string>) => void
  private readonly onQueued: () => void
  private readonly leaseMs: number
  private readonly batchVerifier: BatchVerifier | undefined
  /** this process's name on settlement claims */
  readonly owner = `central-${process.pid}-${randomBytes(6).toString('hex')}`

  constructor(init: EngineInit) {
    this.store = init.store
    this.venues = init.venues
    this.issuer = init.issuer
    this.mutex = init.mutex
    this.now = init.now
    this.log = init.log
    this.issuerTimeoutMs = init.issuerTimeoutMs ?? DEFAULT_ISSUER_TIMEOUT_MS
    this.onOutbox = init.onOutbox
    this.onQueued = init.onQueued
    this.leaseMs = init.settleLeaseMs ?? DEFAULT_SETTLE_LEASE_MS
    this.batchVerifier =
      init.verifyPool === undefined
        ? undefined
        : new BatchVerifier({ pool: init.verifyPool, store: init.store, log: init.log })
  }

  /**
   * Run a unit of work on a fresh Tx and commit it; if another writer changed what it read
   * (StoreConflict), nothing was written: read again and redo it. `work` has no effects but tx.
   */
  private async unit<T>(opts: AbortOptions, work: (tx: Tx) => Promise<T>): Promise<{ tx: Tx; result: T }> {
    for (let attempt = 1; ; attempt++) {
      opts.signal?.throwIfAborted()
      const tx = new Tx(this.store, this.now())
      const result = await work(tx)
      try {
        await this.commit(tx, opts)
        return { tx, result }
      } catch (err: unknown) {
        if (!(err instanceof StoreConflict) || attempt >= MAX_ATTEMPTS) throw err
        this.log('lost a race to another writer (%s), redoing (attempt %d)', err.message, attempt + 1)
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(100, 2 ** attempt)))
      }
    }
  }

  /**
   * issue 17, item 5: mark these payments `abandoned` if they are still `created` (no Commit, no
   * Release); abandon.ts decides which. In turn with ingest, so a Commit merged first wins.
   */
  async abandon(ids: string[], opts: AbortOptions = {}): Promise<string[]> {
    if (ids.length === 0) return []
    return this.mutex.run(
      async () =>
        (
          await this.unit(opts, async (tx) => {
            const done: string[] = []
            for (const id of ids) {
              const p = await tx.getPayment(id)
              if (p === undefined || p.status !== 'created' || p.commitId !== undefined) continue
              tx.putPayment({ ...p, status: 'abandoned', completedAt: tx.now }, p.status)
              done.push(id)
            }
            return done
          })
        ).result,
    )
  }

  /** issue 17: add a flag to these payments (status unchanged); how many got it. */
  async flag(ids: string[], flag: string, opts: AbortOptions = {}): Promise<number> {
    if (ids.length === 0) return 0
    return this.mutex.run(
      async () =>
        (
          await this.unit(opts, async (tx) => {
            let n = 0
            for (const id of ids) {
              const p = await tx.getPayment(id)
              if (p === undefined || p.flags.includes(flag)) continue
              tx.putPayment({ ...p, flags: [...p.flags, flag] }, p.status)
              n++
            }
            return n
          })
        ).result,
    )
  }

  /** Give back every settlement claim this process holds (when stopping). */
  async releaseClaims(): Promise<void> {
    await this.store.releasePayments(this.owner)
  }

  private async commit(tx: Tx, opts: AbortOptions): Promise<void> {
    const ops = await tx.finish()
    if (ops.length === 0) return
    opts.signal?.throwIfAborted()
    await this.store.apply(ops)
    const endpoints = new Set<string>()
    for (const o of ops) if (o.op === 'putOutbox') endpoints.add(o.entry.endpointId)
    if (endpoints.size > 0) this.onOutbox(endpoints)
    if (ops.some((o) => o.op === 'putPayment' && o.payment.status === 'queued')) this.onQueued()
  }

  /** Verify, store and apply a batch of wire events. All of it is written atomically, or none. */
  async ingest(batch: Uint8Array[], opts: AbortOptions = {}): Promise<IngestResult> {
    const ids = batch.map((bytes) => toHex(eventId(bytes)))
    // signatures are checked on the pool's threads before the batch takes the mutex, so one sync's
    // verification overlaps another's store work; the checks below then only read the answers
    const checks = await this.batchVerifier?.check(batch, ids)
    return this.mutex.run(async () => {
      const { tx, result } = await this.unit(opts, async (tx) => {
        const results: EventResult[] = []
        const touched = new Set<string>()
        // what the batch will read, in a few queries: its ids, then the keys its new events touch
        await tx.prefetch({ ids, events: [], payments: [], nullifiers: [], releases: [] })
        const decoded = await Promise.all(
          batch.map(async (bytes, i) =>
            (await tx.getEventById(ids[i] as string)) === undefined ? decodeEvent(bytes) : undefined,
          ),
        )
        await tx.prefetch(readSetOf(decoded))
        for (let i = 0; i < batch.length; i++) {
          const bytes = batch[i] as Uint8Array
          const id = ids[i] as string
          try {
            const existing = await tx.getEventById(id)
            if (existing !== undefined) {
              results.push({ id, status: 'duplicate' })
              const pid = await this.paymentIdOf(tx, existing)
              if (pid !== undefined) touched.add(pid)
              continue
            }
            const { signed, venue } = this.verify(bytes, tx.now, checks?.[i], decoded[i])
            const pid = await this.apply(tx, signed, venue)
            results.push({ id, status: 'stored' })
            if (pid !== undefined) touched.add(pid)
          } catch (err: unknown) {
            if (!(err instanceof Rejection)) throw err
            results.push({ id, status: 'rejected', code: err.code, message: err.message })
          }
        }
        return { results, touched }
      })
      const { results, touched } = result
      const payments: PaymentStatusView[] = []
      const unwritten = [...touched].filter((pid) => tx.payment(pid) === undefined)
      const read =
        unwritten.length === 0
          ? new Map<string, PaymentRecord>()
          : new Map(
              (
                await this.store.readSet({
                  ids: [],
                  events: [],
                  payments: unwritten,
                  nullifiers: [],
                  releases: [],
                })
              ).payments.map((p) => [p.paymentId, p]),
            )
      for (const pid of touched) {
        const p = tx.payment(pid) ?? read.get(pid)
        if (p !== undefined) payments.push(toStatusView(p))
      }
      const stored = results.filter((r) => r.status === 'stored').length
      this.log(
        'ingested %d events: %d stored, %d rejected',
        batch.length,
        stored,
        results.filter((r) => r.status === 'rejected').length,
      )
      return { results, payments }
    })
  }

  private async paymentIdOf(tx: Tx, e: StoredEvent): Promise<string | undefined> {
    if (e.type === 'reservation') return e.id
    const d = decodeEvent(Buffer.from(e.bytes, 'base64url'))
    if (!d.ok) return undefined
    const ev = d.value.event
    if (ev.type === 'commit') return ev.reservation.idHex
    if (ev.type === 'release') {
      const rid = toHex(ev.reservationId)
      return (await tx.getPayment(rid)) !== undefined ? rid : undefined
    }
    return undefined
  }

  /**
   * Decode and check an event against the venue's roster and policy. Throws Rejection.
   * Certificates are judged when each signature was made (the event's ts for its origin, each ack's
   * ts for its acker), so a payment approved while everyone was enrolled still settles when it
   * syncs after a certificate expired. Those times are bounded: none may be more than
   * maxClockSkewMs ahead of `now`, and an ack must lie near the reservation it acks.
   */
  private verify(
    bytes: Uint8Array,
    now: number,
    precomputed?: boolean[],
    already?: Result<SignedEvent>,
  ): { signed: SignedEvent; venue: VenueContext } {
    const decoded = already ?? decodeEvent(bytes)
    if (!decoded.ok) throw new Rejection(decoded.error.code as RejectCode, decoded.error.message)
    const signed = decoded.value
    const e = signed.event
    // answers from the verification pool, in this order: own signature, embedded reservation's,
    // each ack's; a shape that does not match this event is ignored and everything checked here
    const sig =
      precomputed !== undefined && precomputed.length === (e.type === 'commit' ? 2 + e.acks.length : 1)
        ? precomputed
        : undefined
    const venue = this.venues.get(e.venue)
    if (venue === undefined) throw new Rejection('ERR_UNKNOWN_VENUE', `venue ${e.venue} is not served here`)
    this.checkSignedBy(venue, e.origin, e.ts, now, e.type)
    if (!(sig === undefined ? verifyEventSignature(signed) : sig[0] === true))
      throw new Rejection('ERR_BAD_SIGNATURE', 'event signature invalid')
    if (e.type === 'commit') {
      const res = e.reservation.event
      if (!(sig === undefined ? verifyEventSignature(e.reservation) : sig[1] === true)) {
        throw new Rejection('ERR_BAD_SIGNATURE', 'signature of the committed reservation invalid')
      }
      this.checkSignedBy(venue, res.origin, res.ts, now, 'committed reservation')
      const skew = venue.policy.maxClockSkewMs
      for (const a of e.acks) {
        if (a.ack.ts > now + skew)
          throw new Rejection(
            'ERR_FUTURE_TS',
            `an ack is dated ${a.ack.ts - now} ms ahead of central's clock`,
          )
      }
      // an ack is given during the barrier, within the acker's clock skew of the reservation: one
      // dated far from it (an old key's ack re-used, a back-dated one) is not counted
      const window = skew + venue.policy.barrier.timeoutMs
      const acks = e.acks.filter((a) => Math.abs(a.ack.ts - res.ts) <= window)
      const ackOk = new Map<SignedAck, boolean>()
      if (sig !== undefined) for (const [i, a] of e.acks.entries()) ackOk.set(a, sig[2 + i] === true)
      const q = verifyQuorumCertificate(acks.length === e.acks.length ? e : { ...e, acks }, {
        // issue 17: an ack signed at or after its acker's revocation certifies nothing (the
        // origin's own ack aside: its revoked Commit is stored and failed as a violation of it)
        isEnrolled: (hex, signedAt) =>
          this.venues.isEnrolled(venue, hex, signedAt) &&
          (hex === toHex(e.origin) || !this.venues.isRevoked(venue, hex, signedAt)),
        // acks count only from the card's custodian group (docs/protocol.md, "Custodian groups")
        group: (cardKey) => venue.groups.of(cardKey),
        quorum: venue.quorum,
        verifyAck: (a) => ackOk.get(a) ?? verifyAckSignature(a),
      })
      if (!q.ok) {
        const dropped = e.acks.length - acks.length
        const note = dropped > 0 ? ` (${dropped} ack(s) dated too far from the reservation not counted)` : ''
        throw new Rejection('ERR_QUORUM', `${q.error.message}${note}`)
      }
    }
    return { signed, venue }
  }

  /** `origin` held a valid enrollment when it signed at `ts`, and `ts` is not in central's future. */
  private checkSignedBy(
    venue: VenueContext,
    origin: Uint8Array,
    ts: number,
    now: number,
    what: string,
  ): void {
    if (ts > now + venue.policy.maxClockSkewMs) {
      throw new Rejection(
        'ERR_FUTURE_TS',
        `${what} is dated ${ts - now} ms ahead of central's clock (max ${venue.policy.maxClockSkewMs})`,
      )
    }
    const originHex = toHex(origin)
    if (!this.venues.isEnrolled(venue, originHex, ts)) {
      throw new Rejection(
        'ERR_NOT_ENROLLED',
        `${what}: origin ${originHex.slice(0, 16)}… held no valid enrollment certificate of ${venue.id} when it signed`,
      )
    }
  }

  /** Apply one verified, not yet stored event. Returns the payment it concerns. */
  private async apply(tx: Tx, signed: SignedEvent, venue: VenueContext): Promise<string | undefined> {
    const e = signed.event
    const origin = toHex(e.origin)
    const clash = await tx.getEvent(origin, e.seq)
    if (clash !== undefined) {
      throw new Rejection(
        'ERR_SEQ_CONFLICT',
        `origin already has another event at seq ${e.seq} (${clash.id.slice(0, 16)}…)`,
      )
    }
    switch (e.type) {
      case 'reservation':
        tx.putEvent(signed)
        await this.onReservation(tx, signed as SignedEvent<Reservation>)
        return signed.idHex
      case 'commit':
        return this.onCommit(tx, signed as SignedEvent<Commit>, venue)
      case 'release':
        return this.onRelease(tx, signed as SignedEvent<Release>)
      case 'transfer':
        // escrow bookkeeping between terminals: kept in the origin's log (the seq must stay
        // gap-free at central), no payment concerns it
        tx.putEvent(signed)
        return undefined
    }
  }

  private async onReservation(tx: Tx, signed: SignedEvent<Reservation>): Promise<PaymentRecord> {
    const existing = await tx.getPayment(signed.idHex)
    if (existing !== undefined) return existing
    const r = signed.event
    const origin = toHex(r.origin)
    const release = await tx.getRelease(signed.idHex)
    const released = release !== undefined && release.origin === origin
    if (release !== undefined) tx.delRelease(signed.idHex)
    const p: PaymentRecord = {
      paymentId: signed.idHex,
      venue: r.venue,
      origin,
      seq: r.seq,
      nullifier: toHex(r.nullifier),
      cardKey: toHex(r.cardKey),
      amountMinor: r.amountMinor,
      currency: r.currency,
      method: r.method,
      policyVersion: r.policyVersion,
      queuedAt: r.ts,
      status: released ? 'released' : 'created',
      // issue 17: signed by its terminal after the operator revoked it
      flags: revokedAtSigning(this.venues, r.venue, origin, r.ts) ? ['terminal_revoked'] : [],
      createdAt: tx.now,
      updatedAt: tx.now,
    }
    tx.putPayment(p, undefined)
    return p
  }

  private async onCommit(tx: Tx, signed: SignedEvent<Commit>, venue: VenueContext): Promise<string> {
    const c = signed.event
    const res = c.reservation
    const origin = toHex(c.origin)
    // the Commit carries its reservation: store it too, so arrival order never matters
    const stored = await tx.getEvent(origin, res.event.seq)
    if (stored !== undefined && stored.id !== res.idHex) {
      throw new Rejection(
        'ERR_SEQ_CONFLICT',
        `origin has another event at the reservation's seq ${res.event.seq}`,
      )
    }
    if (stored === undefined) tx.putEvent(res)
    tx.putEvent(signed)
    const p = await this.onReservation(tx, res)
    if (p.status === 'voided') {
      // its terminal voided the reservation at central (and so declined it): never settled
      tx.putPayment(
        {
          ...p,
          commitId: signed.idHex,
          mode: c.mode,
          status: 'failed',
          declineCode: OFFLINE_SYNC_FAILURE,
          syncDeclineCode: 'voided',
          completedAt: tx.now,
        },
        p.status,
      )
      return p.paymentId
    }
    if (p.status === 'abandoned') {
      // issue 17, item 5: central had abandoned it (no ledger held a Commit): never settled
      tx.putPayment(lateCommitOfAbandoned(p, signed, tx.now), p.status)
      return p.paymentId
    }
    if (p.commitId !== undefined || (p.status !== 'created' && p.status !== 'released')) {
      // already committed, or authorised online: never a second settlement
      if (p.commitId === undefined)
        tx.putPayment({ ...p, commitId: signed.idHex, mode: p.mode ?? c.mode }, p.status)
      return p.paymentId
    }
    // issue 17: a Commit outside the policy is failed, never settled, flagged for its terminal
    const violation =
      revokedCommitViolation(this.venues, venue, signed) ?? (await commitPolicyViolation(tx, venue, signed))
    if (violation !== undefined) {
      tx.putPayment(violatedPayment(p, signed, violation, tx.now), p.status)
      return p.paymentId
    }
    const flags = [...p.flags]
    if (c.mode === 'isolated') flags.push('isolated')
    if (c.mode === 'online') flags.push('online_unverified')
    const committed: PaymentRecord = { ...p, commitId: signed.idHex, mode: c.mode, flags }
    const holder = await tx.getNullifier(p.nullifier)
    if (holder !== undefined && holder !== p.paymentId) {
      this.log(
        'partition loss at %s: nullifier %s already committed by %s',
        venue.id,
        p.nullifier.slice(0, 16),
        holder,
      )
      tx.putPayment(
        {
          ...committed,
          status: 'failed',
          declineCode: OFFLINE_SYNC_FAILURE,
          syncDeclineCode: 'duplicate_nullifier',
          partitionLoss: true,
          completedAt: tx.now,
        },
        p.status,
      )
    } else {
      tx.claimNullifier(p.nullifier, p.paymentId)
      tx.putPayment({ ...committed, status: 'queued' }, p.status)
    }
    return p.paymentId
  }

  private async onRelease(tx: Tx, signed: SignedEvent<Release>): Promise<string | undefined> {
    const r = signed.event
    const origin = toHex(r.origin)
    const rid = toHex(r.reservationId)
    const p = await tx.getPayment(rid)
    if (p !== undefined && p.origin !== origin) {
      throw new Rejection('ERR_NOT_ORIGIN', 'only the origin of a reservation can release it')
    }
    tx.putEvent(signed)
    if (p === undefined) {
      tx.putRelease({ reservationId: rid, origin, eventId: signed.idHex })
      return undefined
    }
    // a Commit is final: releasing a committed reservation changes nothing
    if (p.status === 'created') tx.putPayment({ ...p, status: 'released' }, p.status)
    return rid
  }

  /** The online path: verify a reservation, dedup its nullifier, authorise it with the issuer now. */
  async authorize(bytes: Uint8Array, opts: AbortOptions = {}): Promise<OnlineAuthorization> {
    const { paymentId, settle } = await this.mutex.run(async () => {
      const { result } = await this.unit(opts, async (tx) => {
        const p = await this.onReservation(tx, await this.takeReservation(tx, bytes))
        let settle = p.status === 'queued' || p.status === 'processing'
        if (p.status === 'created' || p.status === 'released') {
          const holder = await tx.getNullifier(p.nullifier)
          if (holder !== undefined && holder !== p.paymentId) {
            tx.putPayment(
              {
                ...p,
                mode: 'online',
                status: 'failed',
                declineCode: 'duplicate_nullifier',
                completedAt: tx.now,
              },
              p.status,
            )
          } else {
            tx.claimNullifier(p.nullifier, p.paymentId)
            tx.putPayment({ ...p, mode: 'online', status: 'processing' }, p.status)
            settle = true
          }
        }
        return { paymentId: p.paymentId, settle }
      })
      return result
    }, HIGH)
    if (settle) {
      const outcome = await this.settleOne(paymentId, opts)
      if (outcome === 'pending')
        throw new CentralError('ERR_ISSUER_UNAVAILABLE', 'the issuer could not be reached; retry', 503)
    }
    const p = await this.store.getPayment(paymentId)
    if (p === undefined) throw new CentralError('ERR_STORE', 'payment vanished', 500)
    if (p.status === 'completed') return { paymentId, status: 'approved' }
    if (p.status === 'failed' || p.status === 'voided')
      return { paymentId, status: 'declined', declineCode: p.syncDeclineCode ?? p.declineCode ?? 'other' }
    if (p.status === 'abandoned') return { paymentId, status: 'declined', declineCode: 'abandoned' }
    throw new CentralError('ERR_ISSUER_UNAVAILABLE', 'the payment is still being settled; retry', 503)
  }

  /**
   * A reservation handed in on its own (online authorisation, void): verified (unless already
   * stored) and stored in tx. Bad input throws CentralError 422 with the rejection's code.
   */
  private async takeReservation(tx: Tx, bytes: Uint8Array): Promise<SignedEvent<Reservation>> {
    const id = toHex(eventId(bytes))
    try {
      const stored = (await tx.getEventById(id)) !== undefined
      const signed = stored ? decodeOk(bytes) : this.verify(bytes, tx.now).signed
      if (signed.event.type !== 'reservation')
        throw new Rejection('ERR_WRONG_TYPE', 'reservation: expected a signed Reservation')
      if (!stored) {
        const clash = await tx.getEvent(toHex(signed.event.origin), signed.event.seq)
        if (clash !== undefined)
          throw new Rejection(
            'ERR_SEQ_CONFLICT',
            `origin already has another event at seq ${signed.event.seq}`,
          )
        tx.putEvent(signed)
      }
      return signed as SignedEvent<Reservation>
    } catch (err: unknown) {
      if (err instanceof Rejection) throw new CentralError(err.code, `reservation: ${err.message}`, 422)
      throw err
    }
  }

  /**
   * Void a reservation its terminal will not approve (it asked for an online authorisation and got
   * no answer): afterwards the customer is not charged for it, whatever central had done. Unknown
   * here → recorded voided, so a late authorisation declines and a late Commit fails; authorised
   * online → the issuer reverses it first, then voided; a Commit already merged → the offline
   * approval stands ('committed', nothing changes). A voided payment gives its nullifier back, so
   * the customer can tap again. Idempotent by reservation id.
   */
  async void(bytes: Uint8Array, opts: AbortOptions = {}): Promise<VoidResult> {
    const first = await this.mutex.run(
      async () => (await this.unit(opts, (tx) => this.voidStep(tx, bytes, false))).result,
      HIGH,
    )
    if (first.reverse === undefined) return first.result
    // reversed before it is marked voided: a crash in between leaves a payment that looks charged
    // and is not (the terminal retries the void until answered), never a voided one still charged
    await this.reverseCharge(first.reverse, opts)
    return (
      await this.mutex.run(
        async () => (await this.unit(opts, (tx) => this.voidStep(tx, bytes, true))).result,
        HIGH,
      )
    ).result
  }

  private async voidStep(
    tx: Tx,
    bytes: Uint8Array,
    reversed: boolean,
  ): Promise<{ result: VoidResult; reverse?: string }> {
    const p = await this.onReservation(tx, await this.takeReservation(tx, bytes))
    const paymentId = p.paymentId
    const online = p.commitId === undefined && p.mode === 'online'
    if (p.commitId !== undefined && !reversed) return { result: { paymentId, status: 'committed' } }
    if (online && (p.status === 'processing' || p.status === 'completed') && !reversed)
      return { result: { paymentId, status: 'voided' }, reverse: paymentId }
    if (p.commitId !== undefined) {
      // committed while the issuer was reversing (a terminal must not do both): it fails unsettled
      tx.putPayment(
        {
          ...p,
          status: 'failed',
          declineCode: OFFLINE_SYNC_FAILURE,
          syncDeclineCode: 'voided',
          completedAt: tx.now,
        },
        p.status,
      )
    } else if (p.status !== 'voided' && p.status !== 'failed') {
      // a failed (declined online) payment was never charged: it stays as it is
      tx.putPayment({ ...p, status: 'voided', declineCode: 'voided', completedAt: tx.now }, p.status)
    }
    await tx.freeNullifier(p.nullifier, paymentId)
    this.log('voiding %s (was %s)', paymentId, p.status)
    return { result: { paymentId, status: 'voided' } }
  }

  private async reverseCharge(paymentId: string, opts: AbortOptions): Promise<void> {
    if (this.issuer.reverse === undefined)
      throw new CentralError(
        'ERR_REVERSAL_UNSUPPORTED',
        'the payment was authorised online and the issuer adapter cannot reverse it',
        501,
      )
    const timeout = AbortSignal.timeout(this.issuerTimeoutMs)
    const signal = opts.signal === undefined ? timeout : AbortSignal.any([opts.signal, timeout])
    try {
      await this.issuer.reverse(paymentId, { signal })
    } catch (err: unknown) {
      opts.signal?.throwIfAborted()
      this.log(
        'issuer reversal of %s failed: %s',
        paymentId,
        err instanceof Error ? err.message : String(err),
      )
      throw new CentralError('ERR_ISSUER_UNAVAILABLE', 'the issuer could not reverse the payment; retry', 503)
    }
  }

  /** Settle one payment (see settleMany). */
  async settleOne(paymentId: string, opts: AbortOptions = {}): Promise<SettleOutcome> {
    const outcomes = await this.settleMany([paymentId], opts)
    return outcomes.get(paymentId) ?? 'skipped'
  }

  /**
   * Drive payments a step further: queued → processing (or failed/expired), then the issuer calls
   * (idempotent by paymentId, so re-driving a `processing` payment after a crash never charges twice),
   * then completed or failed. Each of the two transitions is one atomic batch for all the payments.
   */
  async settleMany(
    paymentIds: string[],
    opts: AbortOptions & { concurrency?: number } = {},
  ): Promise<Map<string, SettleOutcome>> {
    const outcomes = new Map<string, SettleOutcome>()
    const claimed: string[] = []
    try {
      await this.settleClaimed(paymentIds, claimed, outcomes, opts)
    } finally {
      await this.store.releasePayments(this.owner, claimed).catch((err: unknown) => {
        this.log('releasing settlement claims failed (they lapse): %s', (err as Error).message)
      })
    }
    return outcomes
  }

  private async settleClaimed(
    candidates: string[],
    claimed: string[],
    outcomes: Map<string, SettleOutcome>,
    opts: AbortOptions & { concurrency?: number },
  ): Promise<void> {
    const first = await this.mutex.run(async () => {
      // claimed by this process (FOR UPDATE SKIP LOCKED) right before its first step, so waiting
      // for the mutex does not eat the lease; another process's live claims are skipped
      claimed.push(...(await this.store.claimPayments(candidates, this.owner, this.now(), this.leaseMs)))
      const paymentIds = claimed
      const { result } = await this.unit(opts, async (tx) => {
        const calls: PaymentRecord[] = []
        const decided = new Map<string, SettleOutcome>()
        for (const id of paymentIds) {
          const p = await tx.getPayment(id)
          if (p === undefined || (p.status !== 'queued' && p.status !== 'processing')) {
            decided.set(id, 'skipped')
            continue
          }
          if (p.status === 'processing') {
            calls.push(p)
            continue
          }
          const venue = this.venues.get(p.venue)
          if (venue === undefined) {
            this.log.error('payment %s: venue %s is no longer configured; left queued', id, p.venue)
            decided.set(id, 'skipped')
            continue
          }
          if (tx.now - p.queuedAt > venue.policy.queueDurationMs) {
            tx.putPayment(
              {
                ...p,
                status: 'failed',
                declineCode: OFFLINE_SYNC_FAILURE,
                syncDeclineCode: 'expired',
                completedAt: tx.now,
              },
              p.status,
            )
            decided.set(id, 'failed')
            continue
          }
          const next: PaymentRecord = { ...p, status: 'processing' }
          tx.putPayment(next, p.status)
          calls.push(next)
        }
        return { calls, decided }
      })
      return result
    })
    const mine = new Set(claimed)
    for (const id of candidates) if (!mine.has(id)) outcomes.set(id, 'skipped')
    for (const [id, o] of first.decided) outcomes.set(id, o)
    const toCall = first.calls
    const results = new Map<string, AuthorizeResult>()
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < toCall.length) {
        const p = toCall[next++]!
        const timeout = AbortSignal.timeout(this.issuerTimeoutMs)
        const signal = opts.signal === undefined ? timeout : AbortSignal.any([opts.signal, timeout])
        try {
          const result = await this.issuer.authorize(
            {
              paymentId: p.paymentId,
              venue: p.venue,
              cardKey: p.cardKey,
              nullifier: p.nullifier,
              amountMinor: p.amountMinor,
              currency: p.currency,
            },
            { signal },
          )
          results.set(p.paymentId, result)
        } catch (err: unknown) {
          this.log(
            'issuer call for %s failed, will retry: %s',
            p.paymentId,
            err instanceof Error ? err.message : String(err),
          )
          outcomes.set(p.paymentId, 'pending')
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 8, toCall.length) }, worker))
    if (results.size === 0) return
    const final = await this.mutex.run(async () => {
      const { result } = await this.unit({}, async (tx) => {
        const decided = new Map<string, SettleOutcome>()
        for (const [id, result] of results) {
          const current = await tx.getPayment(id)
          if (current === undefined || current.status !== 'processing') {
            decided.set(id, 'skipped')
            continue
          }
          const online = current.mode === 'online' && !current.flags.includes('online_unverified')
          if (result.approved) {
            tx.putPayment(
              {
                ...current,
                status: 'completed',
                authorizationCode: result.authorizationCode,
                completedAt: tx.now,
              },
              current.status,
            )
          } else {
            const code: SyncDeclineCode = SYNC_CODES.has(result.code)
              ? (result.code as SyncDeclineCode)
              : 'issuer_declined'
            const failed: PaymentRecord = { ...current, status: 'failed', completedAt: tx.now }
            if (online) failed.declineCode = code
            else {
              failed.declineCode = OFFLINE_SYNC_FAILURE
              failed.syncDeclineCode = code
            }
            tx.putPayment(failed, current.status)
          }
          decided.set(id, result.approved ? 'completed' : 'failed')
        }
        return decided
      })
      return result
    })
    for (const [id, o] of final) outcomes.set(id, o)
  }

  /** Write something outside the payment flow (webhook endpoints, deny lists) in turn with everything else. */
  write(ops: StoreOp[]): Promise<void> {
    return this.mutex.run(() => this.store.apply(ops))
  }
}

function decodeOk(bytes: Uint8Array): SignedEvent {
  const d = decodeEvent(bytes)
  if (!d.ok) throw new Rejection(d.error.code as RejectCode, d.error.message)
  return d.value
}
