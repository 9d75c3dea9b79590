import type { CommitMode, SignedEvent } from '@nullmesh/protocol'
import { toHex } from '@nullmesh/protocol'

/** One approval as the ledgers record it: a Commit and the facts of its Reservation. */
export interface CommitFact {
  commitId: string
  reservationId: string
  /** origin public key hex */
  origin: string
  mode: CommitMode
  /** an online Commit without acks: sent to central with no quorum holding it (isolated budget) */
  unheld: boolean
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
  readonly byType = { reservation: 0, commit: 0, release: 0, transfer: 0 }
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
        unheld: e.mode === 'online' && e.acks.length === 0,
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
  /**
   * of those, nullifiers none of whose approvals was isolated (or online with no quorum holding
   * it, which the isolated budget covers): no partition explains them
   */
  withoutIsolated: number
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
  const report: DuplicateReport = {
    count: 0,
    withoutIsolated: 0,
    extraApprovals: 0,
    extraMinor: 0,
    nullifiers: [],
  }
  for (const [nullifier, list] of byNullifier) {
    if (list.length < 2) continue
    report.count++
    if (!list.some((c) => c.mode === 'isolated' || c.unheld)) report.withoutIsolated++
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

/** Offline approvals (quorum and isolated commits) per card key and currency, each sorted by ts. */
function offlineByCard(commits: Iterable<CommitFact>): CommitFact[][] {
  const groups = new Map<string, CommitFact[]>()
  for (const c of uniqueReservations(commits)) {
    if (c.mode !== 'quorum' && c.mode !== 'isolated') continue
    const k = `${c.cardKey}/${c.currency}`
    const list = groups.get(k)
    if (list === undefined) groups.set(k, [c])
    else list.push(c)
  }
  const out = [...groups.values()]
  for (const list of out) list.sort((a, b) => a.ts - b.ts)
  return out
}

/** The worst sum and count of any window of `windowMs` (by ts) over a ts-sorted list. */
function worstWindow(list: CommitFact[], windowMs: number): { amountMinor: number; count: number } {
  let amountMinor = 0
  let count = 0
  let sum = 0
  let lo = 0
  for (let hi = 0; hi < list.length; hi++) {
    sum += list[hi]!.amountMinor
    while (list[hi]!.ts - list[lo]!.ts >= windowMs) sum -= list[lo++]!.amountMinor
    amountMinor = Math.max(amountMinor, sum)
    count = Math.max(count, hi - lo + 1)
  }
  return { amountMinor, count }
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
  const report: OverCapReport = { cards: 0, maxOverMinor: 0, maxWindowTotalMinor: 0, details: [] }
  for (const list of offlineByCard(commits)) {
    const worst = worstWindow(list, cardWindowMs).amountMinor
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

export interface OverCountReport {
  /** cards (card key and currency) with more offline approvals within one card window than the count cap */
  cards: number
  /** the most offline approvals of any card within one card window */
  maxWindowCount: number
  details: Array<{ cardKey: string; currency: string; windowCount: number; capCount: number }>
}

/**
 * Offline approvals (quorum and isolated commits) per card and currency, counted over the worst
 * window of `cardWindowMs` (by reservation time), against the policy's `cardCapCount`.
 */
export function overCountCards(
  commits: Iterable<CommitFact>,
  capCount: number,
  cardWindowMs: number,
): OverCountReport {
  const report: OverCountReport = { cards: 0, maxWindowCount: 0, details: [] }
  for (const list of offlineByCard(commits)) {
    const worst = worstWindow(list, cardWindowMs).count
    report.maxWindowCount = Math.max(report.maxWindowCount, worst)
    if (worst > capCount) {
      report.cards++
      const first = list[0]!
      report.details.push({ cardKey: first.cardKey, currency: first.currency, windowCount: worst, capCount })
    }
  }
  return report
}

/**
 * What isolated mode approved in a currency, each reservation once: its isolated commits, and the
 * online ones no quorum held at what they use of the isolated budget (unheldOnlineExposure).
 */
export function isolatedApprovedMinor(
  commits: Iterable<CommitFact>,
  currency: string,
  unheldExposure: (c: CommitFact) => number,
): number {
  let sum = 0
  for (const c of uniqueReservations(commits)) {
    if (c.currency !== currency) continue
    if (c.mode === 'isolated') sum += c.amountMinor
    else if (c.unheld) sum += unheldExposure(c)
  }
  return sum
}

/**
 * Payments central settled (completed) under a payment id no client saw approved: money taken for
 * a payment whose customer was never told it went through.
 */
export function settledNotApproved(
  central: Iterable<{ paymentId: string; status: string }>,
  approvedIds: ReadonlySet<string>,
): number {
  let n = 0
  for (const p of central) if (p.status === 'completed' && !approvedIds.has(p.paymentId)) n++
  return n
}
