import {
  createExposureState,
  type EscrowBook,
  type ExposureState,
  type ReservationFacts,
} from '@nullmesh/policy'
import {
  type CommitMode,
  type Reservation,
  type SignedAck,
  type SignedEvent,
  toHex,
} from '@nullmesh/protocol'
import { IdsAt } from './ids-at.js'

export function facts(signed: SignedEvent<Reservation>): ReservationFacts {
  const r = signed.event
  return {
    id: signed.idHex,
    origin: toHex(r.origin),
    nullifier: toHex(r.nullifier),
    cardKey: toHex(r.cardKey),
    amountMinor: r.amountMinor,
    currency: r.currency,
    method: r.method,
    ts: r.ts,
  }
}

/**
 * The shared view of one terminal: every event it knows, what it holds, its own sequence
 * numbers. Changed only synchronously, so a decision and the state change it implies are atomic.
 */
export class View {
  readonly exposure: ExposureState = createExposureState()
  readonly known = new Set<string>()
  readonly idsAt = new IdsAt()
  readonly reservationOrigin = new Map<string, string>()
  readonly acksGiven = new Map<string, SignedAck>()
  /** reservations neither committed nor released yet (any origin) */
  readonly inflight = new Set<string>()
  /** reservations with a known Commit or Release */
  readonly settled = new Set<string>()
  /** own isolated commits central has not confirmed yet: they use the isolated budget */
  ownIsolated: { seq: number; reservationId: string; ts: number }[] = []
  nextSeq = 1
  /**
   * May this node sign events? Not before it knows its own high-water mark: a terminal whose disk
   * was lost (same key, empty ledger) must learn from a quorum what it signed before, or it would
   * sign two events with one (origin, seq). See docs/protocol.md, "Restarts and lost disks".
   */
  seqKnown = false
  /** the escrow shares of the venue cap (set by the core): every transfer known is applied */
  escrow: EscrowBook | undefined
  /**
   * The isolated budget an own online Commit without acks uses (set by the core from the policy:
   * unheldOnlineExposure). Such a Commit was approved by central with no quorum holding its
   * reservation; see docs/protocol.md, "Online without a quorum".
   */
  unheldExposure: ((f: ReservationFacts) => number) | undefined

  constructor(readonly me: string) {}

  apply(signed: SignedEvent, held: boolean): void {
    const e = signed.event
    this.known.add(signed.idHex)
    const origin = toHex(e.origin)
    this.idsAt.set(origin, e.seq, signed.idHex)
    // our own events coming back (catch-up after a lost disk): never sign at their seq again
    if (origin === this.me && e.seq >= this.nextSeq) this.nextSeq = e.seq + 1
    switch (e.type) {
      case 'reservation':
        this.reservationOrigin.set(signed.idHex, origin)
        if (!this.settled.has(signed.idHex)) this.inflight.add(signed.idHex)
        this.exposure.addReservation(facts(signed as SignedEvent<Reservation>), held)
        break
      case 'commit': {
        const inner = e.reservation
        if (!this.known.has(inner.idHex)) this.apply(inner, false)
        this.inflight.delete(inner.idHex)
        this.settled.add(inner.idHex)
        // online commits hold their nullifier (a replay offline is refused) but the policy does
        // not count them toward the offline caps
        const f = facts(inner)
        this.exposure.addCommit(f, e.mode)
        if (origin === this.me) this.ownCommit(e.mode, e.acks.length, f, e.seq)
        break
      }
      case 'release': {
        const id = toHex(e.reservationId)
        this.inflight.delete(id)
        this.settled.add(id)
        this.exposure.addRelease(id)
        break
      }
      case 'transfer':
        // the giver's debit applies as it signs (appendOwn, before the fsync), the recipient's
        // credit as it learns the signed event: every credit has a debit behind it
        this.escrow?.apply({
          id: signed.idHex,
          from: origin,
          to: toHex(e.to),
          currency: e.currency,
          amountMinor: e.amountMinor,
        })
        break
    }
  }

  /**
   * Our own Commit: an isolated one, or an online one no quorum held (no acks: it was sent to
   * central without a quorum round), uses the isolated budget until central confirms it.
   */
  ownCommit(mode: CommitMode, acks: number, f: ReservationFacts, seq: number): void {
    if (mode === 'online') {
      if (acks > 0 || this.unheldExposure === undefined) return
      this.exposure.exposeUnheld(f.id, this.unheldExposure(f))
    } else if (mode !== 'isolated') return
    this.ownIsolated.push({ seq, reservationId: f.id, ts: f.ts })
  }

  /** Central confirmed our events up to marks[me]: their isolated approvals stop using the budget. */
  confirmed(marks: Record<string, number>): void {
    const mark = marks[this.me]
    if (mark === undefined || this.ownIsolated.length === 0) return
    this.confirmWhere((c) => c.seq <= mark)
  }

  confirmWhere(pred: (c: { seq: number; ts: number }) => boolean): void {
    const keep: typeof this.ownIsolated = []
    for (const c of this.ownIsolated) {
      if (pred(c)) this.exposure.confirmIsolated(c.reservationId)
      else keep.push(c)
    }
    this.ownIsolated = keep
  }
}
