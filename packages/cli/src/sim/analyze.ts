import type { CommitMode, SignedEvent } from '@nullmesh/protocol'
import { toHex } from '@nullmesh/protocol'

/** One approval as the ledgers record it: a Commit and the facts of its Reservation. */
export interface CommitFact {
  commitId: string
  reservationId: string
  /** origin public key hex */
  origin: string
  mode: CommitMode
  nullifier: string
  cardKey: string
  currency: string
  amountMinor: number
  /** the reservation's ts (when the card was presented) */
  ts: number
}

/** The union of several ledgers: every event once (by id), with the commits extracted. */
export class LedgerUnion {
  readonly eventIds = new Set<string>()
  readonly commits = new Map<string, CommitFact>()
  readonly byType = { reservation: 0, commit: 0, release: 0 }
  readonly byOrigin = new Map<string, number>()

  add(ev: SignedEvent): boolean {
    if (this.eventIds.has(ev.idHex)) return false
    this.eventIds.add(ev.idHex)
    const e = ev.event
    this.byType[e.type]++
    const origin = toHex(e.origin)
    this.byOrigin.set(origin, (this.byOrigin.get(origin) ?? 0) + 1)
    if (e.type === 'commit') {
      const r = e.reservation.event
      this.commits.set(ev.idHex, {
        commitId: ev.idHex,
        reservationId: e.reservation.idHex,
        origin,
        mode: e.mode,
        nullifier: toHex(r.nullifier),
        cardKey: toHex(r.cardKey),
        currency: r.currency,
        amountMinor: r.amountMinor,
        ts: r.ts,
      })
    }
    return true
  }

  /** commits by mode, each reservation once */
  commitsByMode(): Record<CommitMode, number> {
    const out: Record<CommitMode, number> = { quorum: 0, isolated: 0, online: 0 }
    for (const c of uniqueReservations(this.commits.values())) out[c.mode]++
    return out
  }
}

/** one fact per reservation id (an origin that re-committed the same reservation approved one payment) */
export function uniqueReservations(commits: Iterable<CommitFact>): CommitFact[] {
  const seen = new Map<string, CommitFact>()
  for (const c of commits) if (!seen.has(c.reservationId)) seen.set(c.reservationId, c)
  return [...seen.values()]
}

export interface DuplicateReport {
  /** nullifiers committed for more than one reservation: one credential use approved twice */
  count: number
  /** the extra approvals (approvals minus nullifiers) */
  extraApprovals: number
  extraMinor: number
  nullifiers: string[]
}

/** Nullifiers committed more than once across the union of the ledgers (any commit mode). */
export function duplicateApprovals(commits: Iterable<CommitFact>): DuplicateReport {
  const byNullifier = new Map<string, CommitFact[]>()
  for (const c of uniqueReservations(commits)) {
    const list = byNullifier.get(c.nullifier)
    if (list === undefined) byNullifier.set(c.nullifier, [c])
    else list.push(c)
  }
  const report: DuplicateReport = { count: 0, extraApprovals: 0, extraMinor: 0, nullifiers: [] }
  for (const [nullifier, list] of byNullifier) {
    if (list.length < 2) continue
    report.count++
    report.extraApprovals += list.length - 1
    list.sort((a, b) => a.ts - b.ts)
    for (const c of list.slice(1)) report.extraMinor += c.amountMinor
    report.nullifiers.push(nullifier)
  }
  return report
}

export interface OverCapReport {
  /** cards (card key and currency) whose offline approvals within one card window exceed the cap */
  cards: number
  /** the largest excess over the cap, minor units */
  maxOverMinor: number
  /** the largest windowed offline total of any card, minor units */
  maxWindowTotalMinor: number
  details: Array<{ cardKey: string; currency: string; windowTotalMinor: number; capMinor: number }>
}

/**
 * Offline approvals (quorum and isolated commits) per card and currency, summed over the worst
 * window of `cardWindowMs` (by reservation time), against the currency's `cardCapMinor`.
 */
export function overCapCards(
  commits: Iterable<CommitFact>,
  caps: Record<string, number>,
  cardWindowMs: number,
): OverCapReport {
  const groups = new Map<string, CommitFact[]>()
  for (const c of uniqueReservations(commits)) {
    if (c.mode !== 'quorum' && c.mode !== 'isolated') continue
    const k = `${c.cardKey}/${c.currency}`
    const list = groups.get(k)
    if (list === undefined) groups.set(k, [c])
    else list.push(c)
  }
  const report: OverCapReport = { cards: 0, maxOverMinor: 0, maxWindowTotalMinor: 0, details: [] }
  for (const list of groups.values()) {
    list.sort((a, b) => a.ts - b.ts)
    let worst = 0
    let sum = 0
    let lo = 0
    for (let hi = 0; hi < list.length; hi++) {
      sum += list[hi]!.amountMinor
      while (list[hi]!.ts - list[lo]!.ts >= cardWindowMs) sum -= list[lo++]!.amountMinor
      worst = Math.max(worst, sum)
    }
    const first = list[0]!
    const cap = caps[first.currency]
    report.maxWindowTotalMinor = Math.max(report.maxWindowTotalMinor, worst)
    if (cap !== undefined && worst > cap) {
      report.cards++
      report.maxOverMinor = Math.max(report.maxOverMinor, worst - cap)
      report.details.push({
        cardKey: first.cardKey,
        currency: first.currency,
        windowTotalMinor: worst,
        capMinor: cap,
      })
    }
  }
  return report
}
