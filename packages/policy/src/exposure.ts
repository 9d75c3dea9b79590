import type { CommitMode, PaymentMethod } from '@nullmesh/protocol'
import { WindowIndex, type WindowTotal } from './window.js'

/** What the exposure state needs from a signed Reservation, as hex strings. */
export interface ReservationFacts {
  /** event id (hex) */
  id: string
  /** origin terminal public key (hex) */
  origin: string
  nullifier: string
  cardKey: string
  amountMinor: number
  currency: string
  method: PaymentMethod
  /** origin time, ms since the epoch */
  ts: number
}

/** Everything known about one reservation id. */
export interface ExposureRecord {
  id: string
  /** undefined while only a hold or release for the id has been seen */
  facts: ReservationFacts | undefined
  /** originated or acked by this terminal (or by a terminal whose state was merged in) */
  held: boolean
  released: boolean
  /** commit modes seen for it, sorted */
  commitModes: CommitMode[]
  /** central confirmed (ingested) it: an isolated commit no longer uses its origin's isolated budget */
  confirmed: boolean
  /**
   * An online reservation its origin made without a quorum round (no quorum reachable): while
   * active and not confirmed it uses the origin's isolated budget at this amount (exposeUnheld)
   */
  unheldMinor?: number | undefined
}

export interface ExposureSnapshot {
  records: ExposureRecord[]
}

/**
 * A grow-only set of facts from signed events. Merge is set union, so it is commutative,
 * associative and idempotent: terminals that saw the same events agree, in whatever order.
 *
 * A reservation is active when committed, or held and not released. Active reservations hold
 * their nullifier; active offline ones (not only committed online) count toward the caps.
 * Isolated commits also use their origin's isolated budget until central confirms them, whatever
 * their time: that is what makes partitionExposureBound hold across any duration and clock jump.
 */
export interface ExposureState {
  /** held = originated by me or acked by me */
  addReservation(r: ReservationFacts, held: boolean): void
  /** mark as held (e.g. I acked it after first seeing it by gossip) */
  hold(reservationId: string): void
  /** commits always hold the nullifier and count, even if a release is also seen */
  addCommit(r: ReservationFacts, mode: CommitMode): void
  addRelease(reservationId: string): void
  /**
   * Central confirmed (ingested) this commit: if isolated, it stops counting toward its origin's
   * isolated limits (isolatedExposure, isolatedCardCount); nothing else changes. Idempotent; a
   * confirmation seen before the commit applies when the commit arrives. Like a release it is a
   * grow-only flag, so merge ORs it: a confirmation known to either state is known to the join.
   * A terminal that loses confirmations (e.g. on restart) counts those commits again: the safe side.
   */
  confirmIsolated(reservationId: string): void
  /**
   * An online reservation of this origin that no quorum holds (it was made while none was
   * reachable): while active and not confirmed by central it uses the origin's isolated budget
   * (isolatedExposure, isolatedCardCount) at `amountMinor` — what a duplicate offline approval of
   * its credential use elsewhere could cost (docs/protocol.md, "Online without a quorum").
   * Grow-only like a confirmation: merge keeps the larger amount.
   */
  exposeUnheld(reservationId: string, amountMinor: number): void
  merge(other: ExposureState): void
  isActive(reservationId: string): boolean
  /** id of an active reservation with this nullifier (other than `excludeId`), smallest id first */
  nullifierHolder(nullifier: string, excludeId?: string): string | undefined
  cardExposure(cardKey: string, currency: string, sinceTs: number): WindowTotal
  deviceExposure(origin: string, currency: string, sinceTs: number): WindowTotal
  venueExposure(currency: string, sinceTs: number): number
  /** offline approvals of this origin since sinceTs, all currencies */
  deviceQueued(origin: string, sinceTs: number): number
  /** isolated-mode commits of this origin central has not confirmed, whatever their time */
  isolatedExposure(origin: string, currency: string): WindowTotal
  /** isolated-mode commits of this origin and card central has not confirmed, whatever their time */
  isolatedCardCount(origin: string, cardKey: string): number
  /** ids of the active offline reservations of a card since sinceTs, sorted by (ts, id) */
  cardReservations(cardKey: string, currency: string, sinceTs: number): string[]
  get(reservationId: string): ExposureRecord | undefined
  records(): IterableIterator<ExposureRecord>
  readonly size: number
  /** canonical summary (sorted by id) for equality tests */
  snapshot(): ExposureSnapshot
}

const MODE_BITS: Record<CommitMode, number> = { quorum: 1, isolated: 2, online: 4 }
const MODES: CommitMode[] = ['isolated', 'online', 'quorum']

interface Entry {
  id: string
  facts: ReservationFacts | undefined
  held: boolean
  released: boolean
  modes: number
  confirmed: boolean
  /** indexed by nullifier */
  active: boolean
  /** indexed in the cap windows */
  counted: boolean
  /** indexed in the isolated-mode totals (an isolated commit not confirmed by central) */
  isolated: boolean
  /** see ExposureRecord.unheldMinor */
  unheldMinor: number | undefined
  /** the amount indexed in the isolated-mode totals while `isolated` */
  isolatedMinor: number
}

function total(index: WindowIndex | undefined, sinceTs: number): WindowTotal {
  return index === undefined ? { amountMinor: 0, count: 0 } : index.since(sinceTs)
}

class MemoryExposureState implements ExposureState {
  private readonly entries = new Map<string, Entry>()
  /** active reservation ids per nullifier: the id itself while there is one (almost always), a set beyond */
  private readonly byNullifier = new Map<string, string | Set<string>>()
  // keys join hex strings and currency codes with '|', which neither contains
  private readonly cards = new Map<string, WindowIndex>()
  private readonly devices = new Map<string, WindowIndex>()
  private readonly queues = new Map<string, WindowIndex>()
  private readonly venue = new Map<string, WindowIndex>()
  private readonly isolatedDevices = new Map<string, WindowIndex>()
  private readonly isolatedCards = new Map<string, WindowIndex>()

  get size(): number {
    return this.entries.size
  }

  private entry(id: string): Entry {
    let e = this.entries.get(id)
    if (e === undefined) {
      e = {
        id,
        facts: undefined,
        held: false,
        released: false,
        modes: 0,
        confirmed: false,
        active: false,
        counted: false,
        isolated: false,
        unheldMinor: undefined,
        isolatedMinor: 0,
      }
      this.entries.set(id, e)
    }
    return e
  }

  private static index(map: Map<string, WindowIndex>, key: string): WindowIndex {
    let index = map.get(key)
    if (index === undefined) {
      index = new WindowIndex()
      map.set(key, index)
    }
    return index
  }

  private static unindex(map: Map<string, WindowIndex>, key: string, f: ReservationFacts): void {
    const index = map.get(key)
    if (index === undefined) return
    index.remove(f.ts, f.id)
    if (index.size === 0) map.delete(key)
  }

  /** bring the indexes in line with the entry's flags */
  private update(e: Entry): void {
    const f = e.facts
    if (f === undefined) return
    const active = e.modes !== 0 || (e.held && !e.released)
    // approved online only: the issuer took the risk, so no offline exposure
    const counted = active && e.modes !== MODE_BITS.online
    if (active !== e.active) {
      e.active = active
      const ids = this.byNullifier.get(f.nullifier)
      if (active) {
        if (ids === undefined) this.byNullifier.set(f.nullifier, f.id)
        else if (typeof ids === 'string') this.byNullifier.set(f.nullifier, new Set([ids, f.id]))
        else ids.add(f.id)
      } else if (ids === f.id) {
        this.byNullifier.delete(f.nullifier)
      } else if (typeof ids === 'object') {
        ids.delete(f.id)
        if (ids.size === 0) this.byNullifier.delete(f.nullifier)
      }
    }
    if (counted !== e.counted) {
      e.counted = counted
      const keys: Array<[Map<string, WindowIndex>, string]> = [
        [this.cards, `${f.cardKey}|${f.currency}`],
        [this.devices, `${f.origin}|${f.currency}`],
        [this.queues, f.origin],
        [this.venue, f.currency],
      ]
      for (const [map, key] of keys) {
        if (counted) MemoryExposureState.index(map, key).add(f.ts, f.id, f.amountMinor)
        else MemoryExposureState.unindex(map, key, f)
      }
    }
    // An isolated commit enters these once and leaves when central confirms it; an online
    // reservation made without a quorum round is in them while active (until released, or
    // confirmed once committed), at its exposure amount rather than its own (exposeUnheld)
    const isolatedCommit = (e.modes & MODE_BITS.isolated) !== 0
    const isolated = !e.confirmed && (isolatedCommit || (e.unheldMinor !== undefined && active))
    const amount = isolatedCommit ? f.amountMinor : (e.unheldMinor ?? 0)
    if (isolated !== e.isolated || (isolated && amount !== e.isolatedMinor)) {
      const keys: Array<[Map<string, WindowIndex>, string]> = [
        [this.isolatedDevices, `${f.origin}|${f.currency}`],
        [this.isolatedCards, `${f.origin}|${f.cardKey}`],
      ]
      for (const [map, key] of keys) {
        if (e.isolated) MemoryExposureState.unindex(map, key, f)
        if (isolated) MemoryExposureState.index(map, key).add(f.ts, f.id, amount)
      }
      e.isolated = isolated
      e.isolatedMinor = isolated ? amount : 0
    }
  }

  private setFacts(e: Entry, r: ReservationFacts): void {
    // an id is the hash of the signed event, so its facts never change: the first copy stays
    if (e.facts !== undefined) return
    e.facts = {
      id: r.id,
      origin: r.origin,
      nullifier: r.nullifier,
      cardKey: r.cardKey,
      amountMinor: r.amountMinor,
      currency: r.currency,
      method: r.method,
      ts: r.ts,
    }
  }

  addReservation(r: ReservationFacts, held: boolean): void {
    const e = this.entry(r.id)
    this.setFacts(e, r)
    if (held) e.held = true
    this.update(e)
  }

  hold(reservationId: string): void {
    const e = this.entry(reservationId)
    e.held = true
    this.update(e)
  }

  addCommit(r: ReservationFacts, mode: CommitMode): void {
    const e = this.entry(r.id)
    this.setFacts(e, r)
    e.modes |= MODE_BITS[mode]
    this.update(e)
  }

  addRelease(reservationId: string): void {
    const e = this.entry(reservationId)
    e.released = true
    this.update(e)
  }

  confirmIsolated(reservationId: string): void {
    const e = this.entry(reservationId)
    e.confirmed = true
    this.update(e)
  }

  exposeUnheld(reservationId: string, amountMinor: number): void {
    const e = this.entry(reservationId)
    if (e.unheldMinor !== undefined && e.unheldMinor >= amountMinor) return
    e.unheldMinor = amountMinor
    this.update(e)
  }

  merge(other: ExposureState): void {
    if (other === this) return
    for (const r of other.records()) {
      const e = this.entry(r.id)
      if (r.facts !== undefined) this.setFacts(e, r.facts)
      if (r.held) e.held = true
      if (r.released) e.released = true
      if (r.confirmed) e.confirmed = true
      if (r.unheldMinor !== undefined && (e.unheldMinor === undefined || r.unheldMinor > e.unheldMinor))
        e.unheldMinor = r.unheldMinor
      for (const m of r.commitModes) e.modes |= MODE_BITS[m]
      this.update(e)
    }
  }

  isActive(reservationId: string): boolean {
    return this.entries.get(reservationId)?.active ?? false
  }

  nullifierHolder(nullifier: string, excludeId?: string): string | undefined {
    const ids = this.byNullifier.get(nullifier)
    if (ids === undefined) return undefined
    if (typeof ids === 'string') return ids === excludeId ? undefined : ids
    let best: string | undefined
    for (const id of ids) if (id !== excludeId && (best === undefined || id < best)) best = id
    return best
  }

  cardExposure(cardKey: string, currency: string, sinceTs: number): WindowTotal {
    return total(this.cards.get(`${cardKey}|${currency}`), sinceTs)
  }

  deviceExposure(origin: string, currency: string, sinceTs: number): WindowTotal {
    return total(this.devices.get(`${origin}|${currency}`), sinceTs)
  }

  venueExposure(currency: string, sinceTs: number): number {
    return total(this.venue.get(currency), sinceTs).amountMinor
  }

  deviceQueued(origin: string, sinceTs: number): number {
    return total(this.queues.get(origin), sinceTs).count
  }

  isolatedExposure(origin: string, currency: string): WindowTotal {
    return total(this.isolatedDevices.get(`${origin}|${currency}`), Number.NEGATIVE_INFINITY)
  }

  isolatedCardCount(origin: string, cardKey: string): number {
    return total(this.isolatedCards.get(`${origin}|${cardKey}`), Number.NEGATIVE_INFINITY).count
  }

  cardReservations(cardKey: string, currency: string, sinceTs: number): string[] {
    return this.cards.get(`${cardKey}|${currency}`)?.idsSince(sinceTs) ?? []
  }

  private static record(e: Entry): ExposureRecord {
    return {
      id: e.id,
      facts: e.facts === undefined ? undefined : { ...e.facts },
      held: e.held,
      released: e.released,
      commitModes: MODES.filter((m) => (e.modes & MODE_BITS[m]) !== 0),
      confirmed: e.confirmed,
      ...(e.unheldMinor === undefined ? {} : { unheldMinor: e.unheldMinor }),
    }
  }

  get(reservationId: string): ExposureRecord | undefined {
    const e = this.entries.get(reservationId)
    return e === undefined ? undefined : MemoryExposureState.record(e)
  }

  *records(): IterableIterator<ExposureRecord> {
    for (const e of this.entries.values()) yield MemoryExposureState.record(e)
  }

  snapshot(): ExposureSnapshot {
    const ids = [...this.entries.keys()].sort()
    return { records: ids.map((id) => MemoryExposureState.record(this.entries.get(id)!)) }
  }
}

export function createExposureState(): ExposureState {
  return new MemoryExposureState()
}
