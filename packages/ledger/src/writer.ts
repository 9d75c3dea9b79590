import { eventId, type Reservation, type SignedEvent, toHex } from '@nullmesh/protocol'
import { DEFAULT_EVENT_SYNC } from './constants.js'
import { LedgerError } from './errors.js'
import type { GroupCommit } from './group-commit.js'
import type { PaymentRecord, RecordEventOptions, RecordResult } from './index.js'
import { cardKey, eventKey, nullifierKey, plainArg, seqArg, statusKey } from './keys.js'
import { OriginState } from './origins.js'
import { type BatchOperation, del, put, type ReservationRecord, type Store } from './store.js'

interface RecordChange {
  before: ReservationRecord | undefined
  after: ReservationRecord | undefined
}

const NO_RESULT: RecordResult = Object.freeze({ inserted: false })

/**
 * One atomic write. Reads go through an overlay of this transaction's own pending writes, so a
 * bulk of events that depend on each other (a Reservation and its Commit, a duplicate) is
 * indexed correctly in a single batch, and through the group committer's overlay of earlier
 * transactions not yet written. The caller holds the locks of every origin and reservation id
 * involved until `commit` queued the batch; the origin states it changed become the base of the
 * next transaction at once (`latest`) and the ledger's durable ones once the batch is written.
 */
export class WriteTxn {
  readonly ops: BatchOperation[] = []
  readonly #store: Store
  /** origin states including transactions queued but not yet written */
  readonly #origins: Map<string, OriginState>
  readonly #group: GroupCommit
  readonly #touched = new Map<string, OriginState>()
  /** eventKey → idHex of events written by this transaction */
  readonly #written = new Map<string, string>()
  readonly #records = new Map<string, RecordChange>()
  readonly #payments = new Map<string, PaymentRecord | undefined>()
  readonly #idem = new Map<string, string | undefined>()

  constructor(store: Store, latest: Map<string, OriginState>, group: GroupCommit) {
    this.#store = store
    this.#origins = latest
    this.#group = group
  }

  /** This transaction's copy of an origin's state. */
  origin(originHex: string): OriginState {
    let state = this.#touched.get(originHex)
    if (state === undefined) {
      state = this.#origins.get(originHex)?.clone() ?? new OriginState()
      this.#touched.set(originHex, state)
    }
    return state
  }

  /** Load reservation records in one getMany (bulk writes). */
  async prefetch(reservationIds: string[]): Promise<void> {
    const ids = [...new Set(reservationIds)].filter((id) => !this.#records.has(id))
    if (ids.length === 0) return
    const values = await this.#group.getMany(this.#store.reservations, ids)
    ids.forEach((id, i) => {
      const before = values[i]
      this.#records.set(id, { before, after: before === undefined ? undefined : { ...before } })
    })
  }

  async #record(reservationId: string): Promise<RecordChange> {
    let change = this.#records.get(reservationId)
    if (change === undefined) {
      const before = await this.#group.get(this.#store.reservations, reservationId)
      change = { before, after: before === undefined ? undefined : { ...before } }
      this.#records.set(reservationId, change)
    }
    return change
  }

  /** The (mutable) record of a reservation, created as 'reserved' if absent. */
  async #ensure(reservationId: string): Promise<ReservationRecord> {
    const change = await this.#record(reservationId)
    change.after ??= { state: 'reserved' }
    return change.after
  }

  /** Record one event (and, for a Commit, its embedded Reservation) with its index effects. */
  async addEvent(ev: SignedEvent): Promise<RecordResult> {
    const e = ev.event
    const origin = toHex(e.origin)
    const key = eventKey(origin, seqArg(e.seq))
    const state = this.origin(origin)
    if (e.seq <= state.pruned) return NO_RESULT
    if (state.has(e.seq)) {
      const existing = await this.#existingId(key, ev.idHex)
      if (existing === undefined) return NO_RESULT
      if (existing !== ev.idHex) return { inserted: false, conflict: existing }
    }
    this.ops.push(put(this.#store.events, key, ev.bytes), put(this.#store.ids, ev.idHex, key))
    // transfers are never pruned and few: an index lets start-up rebuild the escrow shares from
    // them without decoding every event (a forgotten debit would create venue-cap capacity)
    if (e.type === 'transfer') this.ops.push(put(this.#store.transfers, key, ''))
    state.add(e.seq)
    this.#written.set(key, ev.idHex)
    await this.#applyEffects(ev, key)
    return { inserted: true }
  }

  /**
   * The id stored at an (origin, seq) the in-memory state says is present: undefined if it is
   * `idHex` itself, else the other id (equivocation).
   */
  async #existingId(key: string, idHex: string): Promise<string | undefined> {
    const inTxn = this.#written.get(key)
    if (inTxn !== undefined) return inTxn === idHex ? undefined : inTxn
    if ((await this.#group.get(this.#store.ids, idHex)) === key) return undefined
    const bytes = await this.#group.get(this.#store.events, key)
    if (bytes === undefined) {
      throw new LedgerError(
        'ERR_LEDGER_CORRUPT',
        `event ${key} is indexed as present but its body is missing`,
      )
    }
    return toHex(eventId(bytes))
  }

  async #applyEffects(ev: SignedEvent, key: string): Promise<void> {
    const e = ev.event
    switch (e.type) {
      case 'reservation':
        await this.#learnReservation(ev as SignedEvent<Reservation>, key)
        return
      case 'commit': {
        const reservation = e.reservation
        const result = await this.addEvent(reservation)
        // Also indexes a reservation whose (origin, seq) holds another event: the Commit proves
        // that its nullifier was used, which matters more than keeping the equivocator's first word.
        const embeddedKey = eventKey(toHex(reservation.event.origin), reservation.event.seq)
        await this.#learnReservation(reservation, result.conflict === undefined ? embeddedKey : undefined)
        const record = await this.#ensure(reservation.idHex)
        record.state = 'committed'
        if (!(record.modes ?? []).includes(e.mode)) record.modes = [...(record.modes ?? []), e.mode].sort()
        return
      }
      case 'release': {
        const record = await this.#ensure(toHex(e.reservationId))
        // A Commit is final: money moved. A later Release (a faulty origin) does not undo it.
        if (record.state !== 'committed') record.state = 'released'
        return
      }
    }
  }

  async #learnReservation(ev: SignedEvent<Reservation>, key: string | undefined): Promise<void> {
    const record = await this.#ensure(ev.idHex)
    if (record.nullifier !== undefined) return
    const r = ev.event
    record.nullifier = toHex(r.nullifier)
    record.cardKey = cardKey(toHex(r.cardKey), r.currency, r.ts, ev.idHex)
    record.amountMinor = r.amountMinor
    record.origin = toHex(r.origin)
    record.method = r.method
    if (key !== undefined) record.eventKey = key
  }

  /** held / ackGiven / payment of recordEvent, in the same batch. */
  async applyExtras(ev: SignedEvent, opts: RecordEventOptions): Promise<void> {
    const e = ev.event
    if (opts.held === true) {
      const reservationId =
        e.type === 'reservation' ? ev.idHex : e.type === 'commit' ? e.reservation.idHex : undefined
      if (reservationId !== undefined) (await this.#ensure(reservationId)).held = true
    }
    if (opts.ackGiven !== undefined) {
      this.ops.push(put(this.#store.acks, toHex(opts.ackGiven.ack.reservationId), opts.ackGiven.bytes))
    }
    if (opts.payment !== undefined) await this.putPayment(opts.payment)
  }

  async putPayment(p: PaymentRecord): Promise<void> {
    validatePayment(p)
    const existing = this.#payments.has(p.id)
      ? this.#payments.get(p.id)
      : await this.#group.get(this.#store.payments, p.id)
    const owner = this.#idem.has(p.idempotencyKey)
      ? this.#idem.get(p.idempotencyKey)
      : await this.#group.get(this.#store.idem, p.idempotencyKey)
    if (owner !== undefined && owner !== p.id) {
      throw new LedgerError(
        'ERR_IDEMPOTENCY_CONFLICT',
        `idempotency key ${p.idempotencyKey} already belongs to payment ${owner}`,
      )
    }
    const s = this.#store
    if (existing !== undefined && existing.idempotencyKey !== p.idempotencyKey) {
      this.ops.push(del(s.idem, existing.idempotencyKey))
      this.#idem.set(existing.idempotencyKey, undefined)
    }
    if (existing !== undefined && existing.status !== p.status) {
      this.ops.push(del(s.payStatus, statusKey(existing.status, p.id)))
    }
    this.ops.push(
      put(s.payments, p.id, p),
      put(s.idem, p.idempotencyKey, p.id),
      put(s.payStatus, statusKey(p.status, p.id), ''),
    )
    this.#payments.set(p.id, p)
    this.#idem.set(p.idempotencyKey, p.id)
  }

  /** Every operation of the transaction: the explicit ones, then the derived index updates. */
  #finish(): BatchOperation[] {
    const s = this.#store
    const ops = this.ops
    for (const [id, change] of this.#records) deriveRecordOps(s, ops, id, change)
    for (const [origin, next] of this.#touched) {
      const live = this.#origins.get(origin)
      if (live === undefined || live.hwm !== next.hwm) ops.push(put(s.hwm, origin, next.hwm))
      if ((live?.confirmed ?? 0) !== next.confirmed) ops.push(put(s.confirmed, origin, next.confirmed))
      if ((live?.pruned ?? 0) !== next.pruned) ops.push(put(s.pruned, origin, next.pruned))
    }
    return ops
  }

  /**
   * Queue the batch with the group committer; the new origin states are the base of the next
   * transaction from now on, and are published to `durable` once the batch is written. Returns
   * (synchronously, so the caller can release its locks) a promise of the write.
   */
  commit(durable: Map<string, OriginState>, sync = DEFAULT_EVENT_SYNC): Promise<void> {
    const ops = this.#finish()
    const touched = [...this.#touched]
    for (const [origin, next] of touched) this.#origins.set(origin, next)
    return this.#group.submit(ops, sync, () => {
      for (const [origin, next] of touched) durable.set(origin, next)
    })
  }
}

function counts(r: ReservationRecord): boolean {
  return r.state === 'committed' || (r.held === true && r.state !== 'released')
}

function sameRecord(a: ReservationRecord, b: ReservationRecord): boolean {
  return (
    a.state === b.state &&
    a.held === b.held &&
    a.nullifier === b.nullifier &&
    a.eventKey === b.eventKey &&
    a.cardKey === b.cardKey &&
    a.amountMinor === b.amountMinor
  )
}

/** The index entries that follow from a reservation record's change. */
function deriveRecordOps(s: Store, ops: BatchOperation[], id: string, { before, after }: RecordChange): void {
  if (after === undefined || (before !== undefined && sameRecord(before, after))) return
  ops.push(put(s.reservations, id, after))
  if (after.nullifier !== undefined && (before?.nullifier === undefined || before.state !== after.state)) {
    ops.push(put(s.nullifiers, nullifierKey(after.nullifier, id), after.state))
  }
  const wasCounted = before?.cardKey !== undefined && counts(before)
  const isCounted = after.cardKey !== undefined && counts(after)
  if (isCounted && !wasCounted) ops.push(put(s.cards, after.cardKey!, after.amountMinor ?? 0))
  else if (wasCounted && !isCounted) ops.push(del(s.cards, before!.cardKey!))
  const wasPending = before?.eventKey !== undefined && before.state === 'reserved'
  const isPending = after.eventKey !== undefined && after.state === 'reserved'
  if (isPending && !wasPending) ops.push(put(s.pending, after.eventKey!, id))
  else if (wasPending && !isPending) ops.push(del(s.pending, before!.eventKey!))
}

export function validatePayment(p: PaymentRecord): void {
  if (p === null || typeof p !== 'object')
    throw new LedgerError('ERR_INVALID_ARGUMENT', 'payment must be an object')
  if (typeof p.id !== 'string' || p.id.length === 0) {
    throw new LedgerError('ERR_INVALID_ARGUMENT', 'payment id must be a non-empty string')
  }
  if (typeof p.idempotencyKey !== 'string' || p.idempotencyKey.length === 0) {
    throw new LedgerError('ERR_INVALID_ARGUMENT', 'payment idempotencyKey must be a non-empty string')
  }
  plainArg(p.status, 'payment status')
  if (!Number.isFinite(p.createdAt))
    throw new LedgerError('ERR_INVALID_ARGUMENT', 'payment createdAt must be a number')
}
