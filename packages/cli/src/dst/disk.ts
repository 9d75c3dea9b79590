import { type CatchupHave, catchupSummary, type LoadedState } from '@nullmesh/mesh/core'
import { type Reservation, type SignedAck, type SignedEvent, toHex } from './deps.js'

export interface Rec {
  event: SignedEvent
  held: boolean
  ackGiven?: SignedAck | undefined
}

/** A disk: a log of records; writes not yet made durable are lost on a crash. */
export class Disk {
  durable: Rec[] = []
  pending: {
    w: number
    recs: Rec[]
    sync: boolean
    relearning?: boolean | undefined
    learnedThrough?: number | undefined
  }[] = []
  /** the core's "relearning" mark, as durable (a write in the log like any other) */
  relearning = false
  /** the largest own seq a finished relearning took back (the ledger's cursor beside the mark) */
  learnedThrough = 0
  /** online attempts sent to central (the terminal's `online pending` cursor), durable at once */
  markers = new Set<string>()
  confirmed: Record<string, number> = {}
  private nextW = 1

  private cache: SignedEvent[] | undefined
  private cacheIds = new Set<string>()
  /** readable() and the catch-up marks, kept until the disk changes: a venue re-forming its mesh
   * asks them of every terminal once per peer (O(ledger) each) */
  private readableCache: SignedEvent[] | undefined
  private marksCache: CatchupHave | undefined

  private changed(): void {
    this.readableCache = undefined
    this.marksCache = undefined
  }

  append(recs: Rec[], sync: boolean, relearning?: boolean, learnedThrough?: number): number {
    const w = this.nextW++
    this.changed()
    this.pending.push({ w, recs, sync, relearning, learnedThrough })
    if (this.cache !== undefined)
      for (const r of recs)
        if (!this.cacheIds.has(r.event.idHex)) {
          this.cacheIds.add(r.event.idHex)
          this.cache.push(r.event)
        }
    return w
  }

  /** make everything up to write w durable (a sync write syncs the log before it too) */
  flush(w: number): void {
    this.changed()
    while (this.pending.length > 0 && this.pending[0]!.w <= w) {
      const p = this.pending.shift()!
      this.durable.push(...p.recs)
      if (p.relearning !== undefined) this.relearning = p.relearning
      if (p.learnedThrough !== undefined)
        this.learnedThrough = Math.max(this.learnedThrough, p.learnedThrough)
    }
  }

  crash(): void {
    this.changed()
    this.pending = []
    this.cache = undefined
  }

  wipe(): void {
    this.changed()
    this.durable = []
    this.pending = []
    this.relearning = false
    this.learnedThrough = 0
    this.markers = new Set()
    this.confirmed = {}
    this.cache = undefined
  }

  /** what a read sees (the store answers from its memtable: unsynced writes included) */
  *all(): Generator<Rec> {
    yield* this.durable
    for (const p of this.pending) yield* p.recs
  }

  /**
   * What another reader (catch-up, the sync with central) sees: durable records and unsynced
   * writes (in the memtable at once), but not a sync write before its fsync returned.
   */
  readable(): SignedEvent[] {
    if (this.readableCache !== undefined) return this.readableCache
    const seen = new Set<string>()
    const out: SignedEvent[] = []
    const add = (r: Rec) => {
      if (seen.has(r.event.idHex)) return
      seen.add(r.event.idHex)
      out.push(r.event)
    }
    for (const r of this.durable) add(r)
    for (const p of this.pending) if (!p.sync) for (const r of p.recs) add(r)
    this.readableCache = out
    return out
  }

  /** the per-origin contiguous marks of what is stored and the seqs held past them (a catch-up request's) */
  marks(): CatchupHave {
    this.marksCache ??= catchupSummary(this.events())
    return this.marksCache
  }

  /** the distinct events stored, in write order */
  events(): SignedEvent[] {
    if (this.cache === undefined) {
      this.cacheIds = new Set<string>()
      this.cache = []
      for (const r of this.all()) {
        if (this.cacheIds.has(r.event.idHex)) continue
        this.cacheIds.add(r.event.idHex)
        this.cache.push(r.event)
      }
    }
    return this.cache
  }
}

/**
 * What a restart reads back from durable records: merged by event id, in log order (a later write
 * may add a hold, and the last ack given stands, as in the ledger), our next seq, and our own
 * reservations with neither Commit nor Release. The simulator's boot runs it; the start-up
 * equivalence test (`dst-indexed-start.test.ts`) compares it with the ledger's indexed start.
 */
export function restore(
  records: readonly Rec[],
  me: string,
  opts: { confirmed: Record<string, number>; relearning: boolean; learnedThrough?: number },
): { state: LoadedState; ownPending: SignedEvent<Reservation>[] } {
  const byId = new Map<string, Rec>()
  const order: string[] = []
  for (const r of records) {
    // a Commit stored without its reservation (a refill cut by a crash): the ledger indexes the
    // reservation it carries, as held when it is our own (indexed start); so does the replay
    const e = r.event.event
    if (e.type === 'commit' && toHex(e.reservation.event.origin) === me && !byId.has(e.reservation.idHex)) {
      byId.set(e.reservation.idHex, { event: e.reservation, held: true })
      order.push(e.reservation.idHex)
    }
    const prev = byId.get(r.event.idHex)
    if (prev === undefined) {
      byId.set(r.event.idHex, { ...r })
      order.push(r.event.idHex)
    } else {
      prev.held ||= r.held
      prev.ackGiven = r.ackGiven ?? prev.ackGiven
    }
  }
  let nextSeq = 1
  const settled = new Set<string>()
  const own = (e: SignedEvent) => toHex(e.event.origin) === me
  for (const id of order) {
    const e = byId.get(id)!.event
    if (!own(e)) continue
    if (e.event.seq >= nextSeq) nextSeq = e.event.seq + 1
    if (e.event.type === 'commit') settled.add(e.event.reservation.idHex)
    if (e.event.type === 'release') settled.add(toHex(e.event.reservationId))
  }
  const recs = order.map((id) => byId.get(id)!)
  return {
    state: {
      events: recs.map((r) => ({ signed: r.event, held: r.held || own(r.event), ackGiven: r.ackGiven })),
      pruned: [],
      confirmedMarks: { ...opts.confirmed },
      nextSeq,
      relearning: opts.relearning,
      learnedThrough: opts.learnedThrough ?? 0,
    },
    ownPending: recs
      .map((r) => r.event)
      .filter(
        (e): e is SignedEvent<Reservation> =>
          e.event.type === 'reservation' && own(e) && !settled.has(e.idHex),
      ),
  }
}
