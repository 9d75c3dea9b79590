import { decodeAck, decodeEvent, eventId, type SignedAck, type SignedEvent, toHex } from '@nullmesh/protocol'
import debug from 'debug'
import { Level } from 'level'
import { MemoryLevel } from 'memory-level'
import {
  DEFAULT_CONFIRM_SYNC,
  DEFAULT_CURSOR_SYNC,
  DEFAULT_EVENT_SYNC,
  DEFAULT_PAYMENT_SYNC,
  DEFAULT_PRUNE_SYNC,
  DEFAULT_RELEARNING_SYNC,
  HELD_ACKS_CHUNK,
  KEY_END,
  KEY_SEPARATOR,
  LEARNED_THROUGH_CURSOR,
  LOG_NAMESPACE,
  MAX_SEQ,
  PRUNE_BATCH_SIZE,
  RELEARNING_CURSOR,
} from './constants.js'
import { LedgerError } from './errors.js'
import { GroupCommit, type GroupCommitStats, readOne } from './group-commit.js'
import type {
  AbortOptions,
  CatchupSummary,
  EventLocation,
  EventsAfterOptions,
  EventsOptions,
  Exposure,
  Ledger,
  LedgerInit,
  LedgerStats,
  NullifierUse,
  PaymentRecord,
  PaymentsOptions,
  PruneOptions,
  RecordEventOptions,
  RecordManyResult,
  RecordResult,
  RelearningOptions,
  ReservationEntry,
  ReservationState,
  ReservationSummary,
  SyncOptions,
} from './index.js'
import {
  cardPrefix,
  cardSince,
  eventKey,
  flat,
  hexArg,
  parseEventKey,
  plainArg,
  prefixRange,
  seqArg,
} from './keys.js'
import { KeyedLocks } from './locks.js'
import { OriginState } from './origins.js'
import {
  type BatchOptions,
  type DelOptions,
  del,
  openStore,
  type PutOptions,
  type RootDatabase,
  type Store,
} from './store.js'
import { WriteTxn } from './writer.js'

const log = debug(LOG_NAMESPACE)
const logError = debug(`${LOG_NAMESPACE}:error`)

type Status = 'closed' | 'opening' | 'open' | 'closing'

const originLock = (originHex: string): string => `o:${originHex}`
const reservationLock = (idHex: string): string => `r:${idHex}`

/** The locks a recordEvent of `ev` needs: every origin and reservation whose state it reads. */
function addEventLocks(ev: SignedEvent, keys: Set<string>): void {
  const e = ev.event
  keys.add(originLock(toHex(e.origin)))
  if (e.type === 'reservation') {
    keys.add(reservationLock(ev.idHex))
  } else if (e.type === 'commit') {
    keys.add(originLock(toHex(e.reservation.event.origin)))
    keys.add(reservationLock(e.reservation.idHex))
  } else if (e.type === 'release') {
    keys.add(reservationLock(toHex(e.reservationId)))
  }
}

function addPaymentLocks(p: PaymentRecord, keys: Set<string>): void {
  keys.add(`p:${p.id}`)
  keys.add(`k:${p.idempotencyKey}`)
}

function limitArg(limit: number | undefined): number {
  if (limit === undefined) return Number.POSITIVE_INFINITY
  if (!(Number.isInteger(limit) || limit === Number.POSITIVE_INFINITY) || limit < 0) {
    throw new LedgerError('ERR_INVALID_ARGUMENT', 'limit must be a non-negative integer')
  }
  return limit
}

/** A plain Uint8Array copy: backends hand out Buffers, and memory-level its stored one. */
function own(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes)
}

function decodeStored(bytes: Uint8Array, where: string): SignedEvent {
  const decoded = decodeEvent(own(bytes))
  if (!decoded.ok) {
    throw new LedgerError(
      'ERR_LEDGER_CORRUPT',
      `stored event ${where} does not decode: ${decoded.error.message}`,
    )
  }
  return decoded.value
}

function isLocked(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if ((e as { code?: unknown }).code === 'LEVEL_LOCKED') return true
  }
  return false
}

export class NullmeshLedger implements Ledger {
  readonly path: string
  readonly #db: RootDatabase
  #store: Store | undefined
  #status: Status = 'closed'
  #transition: Promise<void> | undefined
  /** per-origin state as written (what reads and marks report) */
  readonly #origins = new Map<string, OriginState>()
  /** the same including transactions queued for the next batch (what writers build on) */
  readonly #latest = new Map<string, OriginState>()
  #group: GroupCommit | undefined
  /** counters of the group committers of every open since construction */
  readonly #commitStats: GroupCommitStats = { submitted: 0, batches: 0, syncs: 0 }
  readonly #locks = new KeyedLocks()
  readonly #inflight = new Set<Promise<unknown>>()

  constructor(init: LedgerInit) {
    if (
      init === null ||
      typeof init !== 'object' ||
      typeof init.path !== 'string' ||
      init.path.length === 0
    ) {
      throw new LedgerError('ERR_INVALID_ARGUMENT', 'LedgerInit.path must be a non-empty string')
    }
    const backend = init.backend ?? 'level'
    this.path = init.path
    if (backend === 'level') this.#db = new Level<string, string>(init.path)
    else if (backend === 'memory') this.#db = new MemoryLevel<string, string>()
    else throw new LedgerError('ERR_INVALID_ARGUMENT', `unknown ledger backend ${String(backend)}`)
  }

  async open(opts: AbortOptions = {}): Promise<void> {
    opts.signal?.throwIfAborted()
    while (this.#transition !== undefined) await this.#transition.catch(() => {})
    if (this.#status === 'open') return
    await this.#transit('opening', () => this.#open(), 'open')
  }

  /**
   * Run an open or close. The status and `#transition` change together, in one synchronous
   * step at each end, so a caller that sees a transitional status always has a promise to await.
   */
  #transit(
    during: 'opening' | 'closing',
    work: () => Promise<void>,
    after: 'open' | 'closed',
  ): Promise<void> {
    this.#status = during
    const transition = work().then(
      () => {
        this.#status = after
        this.#transition = undefined
      },
      (err: unknown) => {
        this.#status = 'closed'
        this.#transition = undefined
        throw err
      },
    )
    this.#transition = transition
    return transition
  }

  async #open(): Promise<void> {
    try {
      await this.#db.open()
    } catch (err: unknown) {
      if (isLocked(err)) {
        throw new LedgerError(
          'ERR_LEDGER_LOCKED',
          `ledger directory ${this.path} is already in use by another process`,
          { cause: err },
        )
      }
      throw new LedgerError('ERR_LEDGER_OPEN_FAILED', `cannot open ledger at ${this.path}: ${String(err)}`, {
        cause: err,
      })
    }
    try {
      const store = openStore(this.#db)
      await this.#loadOrigins(store)
      for (const [origin, s] of this.#origins) this.#latest.set(origin, s)
      this.#group = new GroupCommit(this.#db, this.#commitStats)
      this.#store = store
    } catch (err: unknown) {
      this.#origins.clear()
      this.#latest.clear()
      await this.#db.close().catch(() => {})
      throw err
    }
    log('opened %s (%d origins)', this.path, this.#origins.size)
  }

  /** Rebuild per-origin state: marks from their sublevels, then the few seqs past each hwm. */
  async #loadOrigins(store: Store): Promise<void> {
    this.#origins.clear()
    const state = (origin: string): OriginState => {
      let s = this.#origins.get(origin)
      if (s === undefined) {
        s = new OriginState()
        this.#origins.set(origin, s)
      }
      return s
    }
    for await (const [origin, hwm] of store.hwm.iterator()) state(origin).hwm = hwm
    for await (const [origin, seq] of store.confirmed.iterator()) state(origin).confirmed = seq
    for await (const [origin, seq] of store.pruned.iterator()) state(origin).pruned = seq
    for (const [origin, s] of this.#origins) {
      s.maxSeq = s.hwm
      const stored = s.hwm
      for await (const key of store.events.keys({ gt: eventKey(origin, s.hwm), lt: origin + KEY_END })) {
        s.add(parseEventKey(key).seq)
      }
      if (s.hwm !== stored) logError('origin %s: stored hwm %d, events say %d', origin, stored, s.hwm)
    }
  }

  async close(_opts: AbortOptions = {}): Promise<void> {
    while (this.#transition !== undefined) await this.#transition.catch(() => {})
    if (this.#status === 'closed') return
    await this.#transit(
      'closing',
      async () => {
        try {
          await Promise.allSettled([...this.#inflight])
          await this.#db.close()
        } finally {
          this.#store = undefined
          this.#group = undefined
          this.#origins.clear()
          this.#latest.clear()
          log('closed %s', this.path)
        }
      },
      'closed',
    )
  }

  /** Run a call against the open store, so that close() waits for it. */
  #run<T>(signal: AbortSignal | undefined, fn: (store: Store) => Promise<T>): Promise<T> {
    try {
      signal?.throwIfAborted()
    } catch (err) {
      return Promise.reject(err)
    }
    const store = this.#store
    if (this.#status !== 'open' || store === undefined) {
      return Promise.reject(new LedgerError('ERR_LEDGER_NOT_OPEN', `ledger ${this.path} is not open`))
    }
    const promise = fn(store)
    this.#inflight.add(promise)
    const forget = (): void => {
      this.#inflight.delete(promise)
    }
    promise.then(forget, forget)
    return promise
  }

  /** The store for an iterator: checked when iteration starts, not when it is created. */
  #storeForIteration(signal: AbortSignal | undefined): Store {
    signal?.throwIfAborted()
    if (this.#status !== 'open' || this.#store === undefined) {
      throw new LedgerError('ERR_LEDGER_NOT_OPEN', `ledger ${this.path} is not open`)
    }
    return this.#store
  }

  /**
   * Take the locks, build one transaction, queue it for the next group commit, release the
   * locks (the next writer reads through the queue), then wait until it is written.
   */
  async #write<T>(
    store: Store,
    keys: Set<string>,
    signal: AbortSignal | undefined,
    sync: boolean,
    build: (txn: WriteTxn, group: GroupCommit) => Promise<T>,
  ): Promise<T> {
    const group = this.#group!
    const release = await this.#locks.acquire(keys, signal)
    let result: T
    let written: Promise<void>
    try {
      signal?.throwIfAborted()
      const txn = new WriteTxn(store, this.#latest, group)
      result = await build(txn, group)
      written = txn.commit(this.#origins, sync)
    } finally {
      release()
    }
    await written
    return result
  }

  /** Transactions submitted, batches written and fsync'd since construction (group commit). */
  commitStats(): GroupCommitStats {
    return { ...this.#commitStats }
  }

  recordEvent(ev: SignedEvent, opts: RecordEventOptions = {}): Promise<RecordResult> {
    return this.#run(opts.signal, async (store) => {
      const keys = new Set<string>()
      addEventLocks(ev, keys)
      if (opts.ackGiven !== undefined) keys.add(reservationLock(toHex(opts.ackGiven.ack.reservationId)))
      if (opts.payment !== undefined) addPaymentLocks(opts.payment, keys)
      const result = await this.#write(
        store,
        keys,
        opts.signal,
        opts.sync ?? DEFAULT_EVENT_SYNC,
        async (txn) => {
          const result = await txn.addEvent(ev)
          if (result.conflict === undefined) await txn.applyExtras(ev, opts)
          return result
        },
      )
      if (result.conflict !== undefined) {
        log(
          'conflict: %s#%d is %s, kept; refused %s',
          toHex(ev.event.origin),
          ev.event.seq,
          result.conflict,
          ev.idHex,
        )
      }
      return result
    })
  }

  recordEvents(evs: SignedEvent[], opts: SyncOptions = {}): Promise<RecordManyResult> {
    return this.#run(opts.signal, async (store) => {
      if (evs.length === 0) return { inserted: 0, conflicts: 0 }
      const keys = new Set<string>()
      const reservationIds: string[] = []
      for (const ev of evs) {
        addEventLocks(ev, keys)
        const e = ev.event
        if (e.type === 'reservation') reservationIds.push(ev.idHex)
        else if (e.type === 'commit') reservationIds.push(e.reservation.idHex)
        else if (e.type === 'release') reservationIds.push(toHex(e.reservationId))
      }
      const result = await this.#write(
        store,
        keys,
        opts.signal,
        opts.sync ?? DEFAULT_EVENT_SYNC,
        async (txn) => {
          await txn.prefetch(reservationIds)
          let inserted = 0
          let conflicts = 0
          for (const ev of evs) {
            const r = await txn.addEvent(ev)
            if (r.inserted) inserted++
            if (r.conflict !== undefined) {
              conflicts++
              log(
                'conflict: %s#%d is %s, kept; refused %s',
                toHex(ev.event.origin),
                ev.event.seq,
                r.conflict,
                ev.idHex,
              )
            }
          }
          return { inserted, conflicts }
        },
      )
      log('recorded %d of %d events in one batch', result.inserted, evs.length)
      return result
    })
  }

  getEvent(idHex: string, opts: AbortOptions = {}): Promise<SignedEvent | undefined> {
    return this.#run(opts.signal, async (store) => {
      const key = await readOne(store.ids, hexArg(idHex, 'idHex'))
      if (key === undefined) return undefined
      const bytes = await readOne(store.events, key)
      return bytes === undefined ? undefined : decodeStored(bytes, key)
    })
  }

  getEventAt(originHex: string, seq: number, opts: AbortOptions = {}): Promise<SignedEvent | undefined> {
    return this.#run(opts.signal, async (store) => {
      const key = eventKey(hexArg(originHex, 'originHex'), seqArg(seq))
      const bytes = await readOne(store.events, key)
      return bytes === undefined ? undefined : decodeStored(bytes, key)
    })
  }

  nullifier(nullifierHex: string, opts: AbortOptions = {}): Promise<NullifierUse[]> {
    return this.#run(opts.signal, async (store) => {
      const hex = hexArg(nullifierHex, 'nullifierHex')
      const uses: NullifierUse[] = []
      for await (const [key, state] of store.nullifiers.iterator({
        ...prefixRange(hex),
        signal: opts.signal,
      })) {
        uses.push({ reservationId: key.slice(hex.length + 1), state })
      }
      return uses
    })
  }

  reservationState(reservationIdHex: string, opts: AbortOptions = {}): Promise<ReservationState | undefined> {
    return this.#run(opts.signal, async (store) => {
      return (await readOne(store.reservations, hexArg(reservationIdHex, 'reservationIdHex')))?.state
    })
  }

  highWaterMarks(opts: AbortOptions = {}): Promise<Record<string, number>> {
    return this.#run(opts.signal, async () => this.#marks((s) => (s.maxSeq > 0 ? s.hwm : undefined)))
  }

  maxSeqs(opts: AbortOptions = {}): Promise<Record<string, number>> {
    return this.#run(opts.signal, async () => this.#marks((s) => (s.maxSeq > 0 ? s.maxSeq : undefined)))
  }

  catchupSummary(maxRanges: number, opts: AbortOptions = {}): Promise<CatchupSummary> {
    return this.#run(opts.signal, async () => {
      const marks = this.#marks((s) => (s.maxSeq > 0 ? s.hwm : undefined))
      const held: Record<string, number[]> = {}
      let left = Math.max(0, Math.floor(maxRanges))
      for (const origin of Object.keys(marks)) {
        if (left <= 0) break
        const ranges = this.#origins.get(origin)!.rangesAbove(left)
        if (ranges.length === 0) continue
        held[origin] = ranges
        left -= ranges.length / 2
      }
      return { marks, held }
    })
  }

  /** per-origin marks in origin order; origins for which `pick` gives undefined are left out */
  #marks(pick: (s: OriginState) => number | undefined): Record<string, number> {
    const marks: Record<string, number> = {}
    for (const origin of [...this.#origins.keys()].sort()) {
      const m = pick(this.#origins.get(origin)!)
      if (m !== undefined) marks[origin] = m
    }
    return marks
  }

  async *eventsAfter(
    marks: Record<string, number>,
    opts: EventsAfterOptions = {},
  ): AsyncGenerator<SignedEvent> {
    const store = this.#storeForIteration(opts.signal)
    let remaining = limitArg(opts.limit)
    for (const origin of [...this.#origins.keys()].sort()) {
      if (remaining <= 0) return
      const mark = marks[origin]
      const after = typeof mark === 'number' && Number.isFinite(mark) ? Math.max(0, Math.floor(mark)) : 0
      // the spans between the ranges the asker holds: held events are not even read
      const held = opts.held?.[origin] ?? []
      let from = after
      for (let i = 0; i <= held.length; i += 2) {
        if (remaining <= 0) return
        // a range past the keys' digits is not stored here: read to the end
        const lo = held[i] !== undefined && held[i]! <= MAX_SEQ ? held[i] : undefined
        const range =
          lo === undefined
            ? { gt: eventKey(origin, from), lt: origin + KEY_END }
            : { gt: eventKey(origin, from), lt: eventKey(origin, lo) }
        if (lo === undefined || lo > from + 1)
          for await (const [key, bytes] of store.events.iterator({
            ...range,
            limit: remaining,
            signal: opts.signal,
          })) {
            remaining--
            yield decodeStored(bytes, key)
          }
        const hi = held[i + 1] ?? MAX_SEQ
        if (lo === undefined || hi >= MAX_SEQ) break
        from = Math.max(from, hi)
      }
    }
  }

  async *prunedReservations(opts: AbortOptions = {}): AsyncGenerator<ReservationSummary> {
    for await (const entry of this.reservationEntries(opts)) {
      if (!entry.bodyStored && entry.summary !== undefined) yield entry.summary
    }
  }

  async *reservationEntries(opts: AbortOptions = {}): AsyncGenerator<ReservationEntry> {
    const store = this.#storeForIteration(opts.signal)
    for await (const [id, r] of store.reservations.iterator({ signal: opts.signal })) {
      // bodies are deleted only by prune, which moves its origin's mark past them: whether a body
      // is still stored needs no read (this runs at every start)
      let bodyStored = false
      let origin = r.origin
      if (r.eventKey !== undefined) {
        const at = parseEventKey(r.eventKey)
        bodyStored = at.seq > (this.#origins.get(at.origin)?.pruned ?? 0)
        origin ??= at.origin
      }
      const entry: ReservationEntry = { id: flat(id), state: r.state, held: r.held === true, bodyStored }
      if (r.nullifier !== undefined && r.cardKey !== undefined && r.amountMinor !== undefined) {
        const parts = r.cardKey.split(KEY_SEPARATOR)
        const cardKeyHex = parts[0] === undefined ? undefined : flat(parts[0])
        const currency = parts[1]
        const ts = Number(parts[2])
        if (cardKeyHex !== undefined && currency !== undefined && Number.isFinite(ts)) {
          entry.summary = {
            id: entry.id,
            state: r.state,
            held: r.held === true,
            nullifier: r.nullifier,
            cardKey: cardKeyHex,
            currency,
            ts,
            amountMinor: r.amountMinor,
            origin,
            method: r.method,
            modes: r.modes ?? [],
          }
        }
      }
      yield entry
    }
  }

  async *eventIds(opts: AbortOptions = {}): AsyncGenerator<EventLocation> {
    const store = this.#storeForIteration(opts.signal)
    const origins = new Map<string, string>()
    for await (const [id, key] of store.ids.iterator({ signal: opts.signal })) {
      const at = parseEventKey(key)
      let origin = origins.get(at.origin)
      if (origin === undefined) {
        origin = flat(at.origin)
        origins.set(origin, origin)
      }
      yield { id: flat(id), origin, seq: at.seq }
    }
  }

  async *transferEvents(opts: AbortOptions = {}): AsyncGenerator<SignedEvent> {
    const store = this.#storeForIteration(opts.signal)
    for await (const key of store.transfers.keys({ signal: opts.signal })) {
      const bytes = await readOne(store.events, key)
      if (bytes === undefined) {
        throw new LedgerError('ERR_LEDGER_CORRUPT', `transfer ${key} is indexed but its event is missing`)
      }
      yield decodeStored(bytes, key)
    }
  }

  async *events(opts: EventsOptions = {}): AsyncGenerator<SignedEvent> {
    const store = this.#storeForIteration(opts.signal)
    const range = opts.origin === undefined ? {} : prefixRange(hexArg(opts.origin, 'origin'))
    for await (const [key, bytes] of store.events.iterator({ ...range, signal: opts.signal })) {
      yield decodeStored(bytes, key)
    }
  }

  nextSeq(originHex: string, opts: AbortOptions = {}): Promise<number> {
    return this.#run(
      opts.signal,
      async () => (this.#origins.get(hexArg(originHex, 'originHex'))?.maxSeq ?? 0) + 1,
    )
  }

  cardExposure(
    cardKeyHex: string,
    currency: string,
    sinceTs: number,
    opts: AbortOptions = {},
  ): Promise<Exposure> {
    return this.#run(opts.signal, async (store) => {
      const card = hexArg(cardKeyHex, 'cardKeyHex')
      plainArg(currency, 'currency')
      if (typeof sinceTs !== 'number' || Number.isNaN(sinceTs)) {
        throw new LedgerError('ERR_INVALID_ARGUMENT', 'sinceTs must be a number')
      }
      const range = { gte: cardSince(card, currency, sinceTs), lt: cardPrefix(card, currency) + KEY_END }
      let amountMinor = 0
      let count = 0
      for await (const amount of store.cards.values({ ...range, signal: opts.signal })) {
        amountMinor += amount
        count++
      }
      return { amountMinor, count }
    })
  }

  pendingReservations(originHex: string, opts: AbortOptions = {}): Promise<SignedEvent[]> {
    return this.#run(opts.signal, async (store) => {
      const origin = hexArg(originHex, 'originHex')
      const entries = await store.pending.iterator({ ...prefixRange(origin), signal: opts.signal }).all()
      if (entries.length === 0) return []
      const bodies = await store.events.getMany(entries.map(([key]) => key))
      const out: SignedEvent[] = []
      entries.forEach(([key, reservationId], i) => {
        const bytes = bodies[i]
        if (bytes === undefined) return
        const ev = decodeStored(bytes, key)
        if (ev.idHex === reservationId) out.push(ev)
      })
      return out
    })
  }

  ackGiven(reservationIdHex: string, opts: AbortOptions = {}): Promise<SignedAck | undefined> {
    return this.#run(opts.signal, async (store) => {
      const bytes = await readOne(store.acks, hexArg(reservationIdHex, 'reservationIdHex'))
      if (bytes === undefined) return undefined
      const decoded = decodeAck(own(bytes))
      if (!decoded.ok) {
        throw new LedgerError('ERR_LEDGER_CORRUPT', `stored ack for ${reservationIdHex} does not decode`)
      }
      return decoded.value
    })
  }

  heldAcks(opts: AbortOptions = {}): Promise<Map<string, SignedAck>> {
    return this.#run(opts.signal, async (store) => {
      const out = new Map<string, SignedAck>()
      let chunk: [string, Uint8Array][] = []
      const flush = async (): Promise<void> => {
        const records = await store.reservations.getMany(chunk.map(([id]) => id))
        chunk.forEach(([id, bytes], i) => {
          const r = records[i]
          if (r?.held !== true || r.state === 'released') return
          const decoded = decodeAck(own(bytes))
          if (!decoded.ok) throw new LedgerError('ERR_LEDGER_CORRUPT', `stored ack for ${id} does not decode`)
          out.set(id, decoded.value)
        })
        chunk = []
      }
      for await (const entry of store.acks.iterator({ signal: opts.signal })) {
        chunk.push(entry)
        if (chunk.length >= HELD_ACKS_CHUNK) await flush()
      }
      if (chunk.length > 0) await flush()
      return out
    })
  }

  isHeld(reservationIdHex: string, opts: AbortOptions = {}): Promise<boolean> {
    return this.#run(opts.signal, async (store) => {
      const record = await readOne(store.reservations, hexArg(reservationIdHex, 'reservationIdHex'))
      return record?.held === true && record.state !== 'released'
    })
  }

  putPayment(p: PaymentRecord, opts: SyncOptions = {}): Promise<void> {
    return this.#run(opts.signal, async (store) => {
      const keys = new Set<string>()
      addPaymentLocks(p, keys)
      await this.#write(store, keys, opts.signal, opts.sync ?? DEFAULT_PAYMENT_SYNC, (txn) =>
        txn.putPayment(p),
      )
    })
  }

  getPayment(id: string, opts: AbortOptions = {}): Promise<PaymentRecord | undefined> {
    return this.#run(opts.signal, (store) => readOne(store.payments, id))
  }

  getPaymentByIdempotencyKey(key: string, opts: AbortOptions = {}): Promise<PaymentRecord | undefined> {
    return this.#run(opts.signal, async (store) => {
      const id = await readOne(store.idem, key)
      return id === undefined ? undefined : readOne(store.payments, id)
    })
  }

  async *payments(opts: PaymentsOptions = {}): AsyncGenerator<PaymentRecord> {
    const store = this.#storeForIteration(opts.signal)
    const limit = limitArg(opts.limit)
    if (opts.status === undefined) {
      yield* store.payments.values({ limit, signal: opts.signal })
      return
    }
    const status = plainArg(opts.status, 'status')
    for await (const key of store.payStatus.keys({ ...prefixRange(status), limit, signal: opts.signal })) {
      const payment = await readOne(store.payments, key.slice(status.length + 1))
      if (payment !== undefined) yield payment
    }
  }

  getCursor(name: string, opts: AbortOptions = {}): Promise<string | undefined> {
    return this.#run(opts.signal, (store) => readOne(store.cursors, name))
  }

  setCursor(name: string, value: string, opts: SyncOptions = {}): Promise<void> {
    return this.#run(opts.signal, async (store) => {
      if (typeof name !== 'string' || typeof value !== 'string') {
        throw new LedgerError('ERR_INVALID_ARGUMENT', 'cursor name and value must be strings')
      }
      const options: PutOptions<string> = { sync: opts.sync ?? DEFAULT_CURSOR_SYNC }
      await store.cursors.put(name, value, options)
    })
  }

  relearning(opts: AbortOptions = {}): Promise<boolean> {
    return this.#run(
      opts.signal,
      async (store) => (await readOne(store.cursors, RELEARNING_CURSOR)) !== undefined,
    )
  }

  setRelearning(on: boolean, opts: SyncOptions & RelearningOptions = {}): Promise<void> {
    const through = opts.learnedThrough
    if (through !== undefined && (on || !Number.isSafeInteger(through) || through < 0)) {
      return Promise.reject(
        new LedgerError(
          'ERR_INVALID_ARGUMENT',
          'learnedThrough is a seq ≥ 0, given when the mark is cleared',
        ),
      )
    }
    // the calls already running (an unsynced refill among them): this write's fsync must cover theirs
    const earlier = [...this.#inflight]
    return this.#run(opts.signal, async (store) => {
      await Promise.allSettled(earlier)
      const sync = opts.sync ?? DEFAULT_RELEARNING_SYNC
      if (on) await store.cursors.put(RELEARNING_CURSOR, '1', { sync } as PutOptions<string>)
      else if (through === undefined) await store.cursors.del(RELEARNING_CURSOR, { sync } as DelOptions)
      else {
        // one atomic batch: a store without the mark always knows what it learned back
        const before = Number((await readOne(store.cursors, LEARNED_THROUGH_CURSOR)) ?? 0)
        await store.cursors.batch(
          [
            { type: 'del', key: RELEARNING_CURSOR },
            { type: 'put', key: LEARNED_THROUGH_CURSOR, value: String(Math.max(before, through)) },
          ],
          { sync } as BatchOptions,
        )
      }
    })
  }

  learnedThrough(opts: AbortOptions = {}): Promise<number> {
    return this.#run(opts.signal, async (store) =>
      Number((await readOne(store.cursors, LEARNED_THROUGH_CURSOR)) ?? 0),
    )
  }

  markConfirmed(marks: Record<string, number>, opts: SyncOptions = {}): Promise<void> {
    return this.#run(opts.signal, async (store) => {
      const entries = Object.entries(marks).map(([origin, seq]): [string, number] => [
        hexArg(origin, 'origin'),
        seqArg(seq, 'confirmed seq'),
      ])
      if (entries.length === 0) return
      const keys = new Set(entries.map(([origin]) => originLock(origin)))
      await this.#write(store, keys, opts.signal, opts.sync ?? DEFAULT_CONFIRM_SYNC, async (txn) => {
        for (const [origin, seq] of entries) {
          const s = txn.origin(origin)
          if (seq > s.confirmed) s.confirmed = seq
        }
      })
    })
  }

  confirmedMarks(opts: AbortOptions = {}): Promise<Record<string, number>> {
    return this.#run(opts.signal, async () => this.#marks((s) => (s.confirmed > 0 ? s.confirmed : undefined)))
  }

  prune(opts: PruneOptions = {}): Promise<{ pruned: number }> {
    return this.#run(opts.signal, async (store) => {
      let remaining = limitArg(opts.limit)
      let pruned = 0
      for (const origin of [...this.#origins.keys()].sort()) {
        while (remaining > 0) {
          const n = await this.#pruneChunk(store, origin, Math.min(remaining, PRUNE_BATCH_SIZE), opts)
          if (n === 0) break
          pruned += n
          remaining -= n
        }
      }
      if (pruned > 0) log('pruned %d confirmed events', pruned)
      return { pruned }
    })
  }

  /** Delete up to `max` confirmed bodies of one origin in one batch, under its lock. */
  async #pruneChunk(store: Store, origin: string, max: number, opts: PruneOptions): Promise<number> {
    return this.#write(
      store,
      new Set([originLock(origin)]),
      opts.signal,
      opts.sync ?? DEFAULT_PRUNE_SYNC,
      async (txn, group) => {
        // the range reads below see the store only: let queued writes land first (the lock
        // keeps new ones on this origin out meanwhile)
        await group.idle()
        const s = txn.origin(origin)
        let target = Math.min(s.confirmed, s.hwm, s.pruned + max)
        if (target <= s.pruned) return 0
        // A pending reservation is still needed for crash recovery: stop right before it.
        const from = eventKey(origin, s.pruned)
        for await (const key of store.pending.keys({ gt: from, lte: eventKey(origin, target), limit: 1 })) {
          target = parseEventKey(key).seq - 1
        }
        if (target <= s.pruned) return 0
        for await (const [key, bytes] of store.events.iterator({ gt: from, lte: eventKey(origin, target) })) {
          // escrow transfers are kept: the shares a terminal acts on after a restart are rebuilt
          // from them, and a forgotten debit would create venue-cap capacity (docs/protocol.md)
          const d = decodeEvent(bytes)
          if (d.ok && d.value.event.type === 'transfer') continue
          const id = toHex(eventId(bytes))
          txn.ops.push(del(store.events, key), del(store.ids, id), del(store.acks, id))
        }
        const n = target - s.pruned
        s.pruned = target
        return n
      },
    )
  }

  stats(opts: AbortOptions = {}): Promise<LedgerStats> {
    return this.#run(opts.signal, async (store) => {
      let events = 0
      let origins = 0
      for (const s of this.#origins.values()) {
        events += s.count
        if (s.maxSeq > 0) origins++
      }
      let payments = 0
      for await (const _ of store.payments.keys({ signal: opts.signal })) payments++
      return { events, payments, origins }
    })
  }
}
