/**
 * @packageDocumentation
 *
 * A terminal's durable ledger of every signed event it has seen, on LevelDB (`level`), with the
 * indexes the barrier and sync paths need as point reads: ids, nullifiers, reservation states,
 * windowed card exposure, per-origin high-water marks, pending reservations, acks given, and the
 * terminal's own payment records. Every write is one atomic batch across keyspaces.
 *
 * @example
 * ```ts
 * import { createLedger } from '@nullmesh/ledger'
 *
 * const ledger = createLedger({ path: './data/ledger' })
 * await ledger.open()
 * const { inserted, conflict } = await ledger.recordEvent(signedReservation, { held: true })
 * await ledger.close()
 * ```
 */

import type { SignedAck, SignedEvent } from '@nullmesh/protocol'
import { NullmeshLedger } from './ledger.js'

export { LedgerError, type LedgerErrorCode } from './errors.js'
export type { GroupCommitStats } from './group-commit.js'

/** Clearing the relearning mark: the largest own seq learned back (kept with it, never lowered). */
export interface RelearningOptions {
  learnedThrough?: number
}

export interface LedgerInit {
  /** directory of the LevelDB database (created if missing); a label for the memory backend */
  path: string
  /** 'level' (default): LevelDB on disk. 'memory': memory-level, for unit tests. */
  backend?: 'level' | 'memory'
}

export interface AbortOptions {
  signal?: AbortSignal
}

export interface SyncOptions extends AbortOptions {
  /** fsync before resolving */
  sync?: boolean
}

export interface RecordEventOptions extends SyncOptions {
  /** mark the event's reservation (a Reservation's own, a Commit's embedded one) as held here */
  held?: boolean
  /** the ack this terminal gave for a reservation, stored under ack.reservationId */
  ackGiven?: SignedAck
  /** a payment record written in the same batch */
  payment?: PaymentRecord
}

export interface RecordResult {
  /** false if the event was already present (or pruned after central confirmed it), or on conflict */
  inserted: boolean
  /** id of the different event already stored at this (origin, seq): the origin equivocated */
  conflict?: string
}

export interface RecordManyResult {
  inserted: number
  /** events refused because another event holds their (origin, seq) */
  conflicts: number
}

export type ReservationState = 'reserved' | 'committed' | 'released'

export interface NullifierUse {
  reservationId: string
  state: ReservationState
}

export interface Exposure {
  amountMinor: number
  count: number
}

export interface EventsOptions extends AbortOptions {
  /** only this origin's events */
  origin?: string
}

export interface EventsAfterOptions extends AbortOptions {
  /** at most this many events */
  limit?: number
  /**
   * Seqs past the marks to leave out, per origin: ascending inclusive ranges, flat
   * [from, to, from, to, …] (what the asking peer already holds past a gap, CatchupSummary.held)
   */
  held?: Record<string, readonly number[]>
}

/** What a catch-up request states this store holds (taken at one instant). */
export interface CatchupSummary {
  /** highWaterMarks() */
  marks: Record<string, number>
  /** per origin, the seqs held past its mark's gap, as EventsAfterOptions.held ranges */
  held: Record<string, number[]>
}

export interface PaymentsOptions extends AbortOptions {
  /** only payments with this status (ordered by id); otherwise all, ordered by id */
  status?: string
  limit?: number
}

export interface PruneOptions extends SyncOptions {
  /** delete at most this many event bodies */
  limit?: number
}

/**
 * What the ledger keeps of a reservation whose body was pruned (central confirmed it): enough to
 * rebuild a terminal's view — the nullifier stays held, the card's window stays counted.
 */
export interface ReservationSummary {
  id: string
  state: ReservationState
  held: boolean
  nullifier: string
  cardKey: string
  currency: string
  ts: number
  amountMinor: number
  /** absent for records written before these fields existed */
  origin?: string | undefined
  method?: string | undefined
  modes: string[]
}

/** A reservation as the ledger's indexes know it, whether or not its body is still stored. */
export interface ReservationEntry {
  id: string
  state: ReservationState
  /** held here (it may since have been released) */
  held: boolean
  /** its event body is stored (not pruned, and it holds its own (origin, seq)) */
  bodyStored: boolean
  /** absent when only a Release of it is known */
  summary?: ReservationSummary
}

/** Where an event is stored. */
export interface EventLocation {
  id: string
  origin: string
  seq: number
}

export interface LedgerStats {
  /** event bodies stored (pruned ones excluded) */
  events: number
  payments: number
  /** origins with at least one recorded event */
  origins: number
}

/** The terminal's own payment records: generic JSON (no binary fields). */
export interface PaymentRecord {
  id: string
  idempotencyKey: string
  /** must not contain '!' */
  status: string
  createdAt: number
  [k: string]: unknown
}

export interface Ledger {
  readonly path: string

  /** Idempotent. Throws LedgerError ERR_LEDGER_LOCKED if another process holds the directory. */
  open(opts?: AbortOptions): Promise<void>
  /** Idempotent. Waits for in-flight calls, then releases the directory. */
  close(opts?: AbortOptions): Promise<void>

  /**
   * Record an event (stored as its wire bytes) and update every index in one atomic batch,
   * with the extras in the same batch. Idempotent by (origin, seq) and id. If (origin, seq)
   * holds a different event the first one is kept and its id is returned as `conflict` (the
   * extras are then not written). A Commit marks its reservation committed and also records
   * the embedded Reservation if absent; a Release marks it released (unless committed).
   * Point reads only. `sync` defaults to true.
   */
  recordEvent(ev: SignedEvent, opts?: RecordEventOptions): Promise<RecordResult>
  /** Record many events (catch-up, sync) in one batch. `sync` defaults to true. */
  recordEvents(evs: SignedEvent[], opts?: SyncOptions): Promise<RecordManyResult>

  getEvent(idHex: string, opts?: AbortOptions): Promise<SignedEvent | undefined>
  getEventAt(originHex: string, seq: number, opts?: AbortOptions): Promise<SignedEvent | undefined>

  /** The reservations that used this nullifier, and their states (kept after pruning). */
  nullifier(nullifierHex: string, opts?: AbortOptions): Promise<NullifierUse[]>
  reservationState(reservationIdHex: string, opts?: AbortOptions): Promise<ReservationState | undefined>

  /** Contiguous high-water mark per origin: the largest s such that 1..s were all recorded. */
  highWaterMarks(opts?: AbortOptions): Promise<Record<string, number>>
  /** Largest seq recorded per origin, past any gap (≥ its high-water mark). */
  maxSeqs(opts?: AbortOptions): Promise<Record<string, number>>
  /**
   * The marks and the seqs held above them (at most `maxRanges` ranges in all, the lowest of each
   * origin first), read at one instant.
   */
  catchupSummary(maxRanges: number, opts?: AbortOptions): Promise<CatchupSummary>
  /**
   * Events with seq > marks[origin] (absent origins: all) and outside opts.held, ordered by origin
   * then seq.
   */
  eventsAfter(marks: Record<string, number>, opts?: EventsAfterOptions): AsyncIterable<SignedEvent>
  /** Every stored event, ordered by origin then seq. */
  events(opts?: EventsOptions): AsyncIterable<SignedEvent>
  /** Largest seq recorded for this origin, plus one. */
  nextSeq(originHex: string, opts?: AbortOptions): Promise<number>

  /**
   * Sum and count of a card's reservations in `currency` with ts >= sinceTs that are committed,
   * or held here and not released.
   */
  cardExposure(cardKeyHex: string, currency: string, sinceTs: number, opts?: AbortOptions): Promise<Exposure>
  /** This origin's reservations with neither Commit nor Release, ordered by seq. */
  pendingReservations(originHex: string, opts?: AbortOptions): Promise<SignedEvent[]>
  ackGiven(reservationIdHex: string, opts?: AbortOptions): Promise<SignedAck | undefined>
  /**
   * Every ack this terminal gave for a reservation still held here (held and not released), by
   * reservation id: one pass over the acks instead of an isHeld + ackGiven per reservation at start.
   */
  heldAcks(opts?: AbortOptions): Promise<Map<string, SignedAck>>
  /** Held here and not released. */
  isHeld(reservationIdHex: string, opts?: AbortOptions): Promise<boolean>

  /** Insert or update a payment; throws ERR_IDEMPOTENCY_CONFLICT if its key belongs to another. */
  putPayment(p: PaymentRecord, opts?: SyncOptions): Promise<void>
  getPayment(id: string, opts?: AbortOptions): Promise<PaymentRecord | undefined>
  getPaymentByIdempotencyKey(key: string, opts?: AbortOptions): Promise<PaymentRecord | undefined>
  payments(opts?: PaymentsOptions): AsyncIterable<PaymentRecord>

  getCursor(name: string, opts?: AbortOptions): Promise<string | undefined>
  setCursor(name: string, value: string, opts?: SyncOptions): Promise<void>

  /** Whether the relearning mark is set: the store is being refilled after a lost disk. */
  relearning(opts?: AbortOptions): Promise<boolean>
  /**
   * Set or clear the relearning mark (fsync'd by default), after every call made before it has
   * finished: once durable, so is every write those calls made.
   */
  setRelearning(on: boolean, opts?: SyncOptions & RelearningOptions): Promise<void>
  /** The largest own seq learned back after a lost disk (`setRelearning(false, { learnedThrough })`), 0 if none. */
  learnedThrough(opts?: AbortOptions): Promise<number>

  /** Central confirmed every event of these origins up to seq (inclusive). Marks only move up. */
  markConfirmed(marks: Record<string, number>, opts?: SyncOptions): Promise<void>
  confirmedMarks(opts?: AbortOptions): Promise<Record<string, number>>
  /**
   * Delete the bodies (events, ids, acks) of events central confirmed, per origin up to
   * min(confirmed, high-water mark) and stopping before the first pending reservation. The
   * nullifier, reservation-state and card-exposure entries are kept.
   */
  prune(opts?: PruneOptions): Promise<{ pruned: number }>

  stats(opts?: AbortOptions): Promise<LedgerStats>
  /**
   * Group commit counters since construction: transactions submitted, LevelDB batches written,
   * and how many of those were fsync'd. Concurrent writes share a batch (and its fsync); each
   * call still resolves only once its own batch was written.
   */
  commitStats(): import('./group-commit.js').GroupCommitStats
  /**
   * Every reservation record of the indexes (start-up from the indexes instead of the events):
   * state, held, and the facts the view needs when the reservation's body is known.
   */
  reservationEntries(opts?: AbortOptions): AsyncIterable<ReservationEntry>
  /** Id, origin and seq of every stored event, without decoding it. */
  eventIds(opts?: AbortOptions): AsyncIterable<EventLocation>
  /** Every stored escrow transfer event (never pruned), in key order, from their own index. */
  transferEvents(opts?: AbortOptions): AsyncIterable<SignedEvent>
  /** Reservations whose body was pruned, from the indexes kept after pruning. */
  prunedReservations(opts?: AbortOptions): AsyncIterable<ReservationSummary>
}

export function createLedger(init: LedgerInit): Ledger {
  return new NullmeshLedger(init)
}
