import { currencyLimits } from './policy.js'
import type { VenuePolicy } from './types.js'

/**
 * Escrow of the venue-wide offline exposure cap (a bounded counter, as in Antidote's escrow CRDT).
 * The cap of each currency is split into per-terminal shares; a terminal approves offline only
 * within its own share, so the venue total is exact without any coordination on the hot path.
 * Unused share moves between terminals by signed transfer events (protocol ExposureTransfer):
 *
 *   share(t) = initial(t) + Σ transfers to t that t holds − Σ transfers t signed
 *
 * The giver's debit takes effect when it signs (before the event is durable, and it is sent only
 * once durable); the receiver's credit only when it holds the signed event. Every credit therefore
 * has a durable debit behind it: at any moment, and across crashes, Σ share(t) ≤ cap. A transfer
 * lost in a crash before its fsync takes its debit with it (it was never sent); one lost after is
 * capacity in limbo until catch-up delivers it — lost capacity, never created capacity.
 */

/**
 * A terminal's initial share of `cap`: an even split over the roster (sorted keys), the remainder
 * one unit each to the first members, so the shares add up to exactly the cap.
 */
export function initialShare(cap: number, members: readonly string[], member: string): number {
  const n = members.length
  if (n === 0) return 0
  const i = members.indexOf(member)
  if (i < 0) return 0
  const base = Math.floor(cap / n)
  return base + (i < cap - base * n ? 1 : 0)
}

/** One transfer as the escrow book needs it. */
export interface TransferFacts {
  id: string
  from: string
  to: string
  currency: string
  amountMinor: number
}

/**
 * The escrow shares as one terminal knows them: every transfer it holds, applied once. Exact for
 * its own share (it signed all its debits and holds all its credits); for other terminals a
 * lower-or-equal estimate of their credits (gossip may not have delivered them yet).
 */
export class EscrowBook {
  private readonly members: readonly string[]
  /** member → position in the sorted roster: a share is asked per member per rebalance turn, and
   * initialShare's indexOf made that turn quadratic in the roster */
  private readonly position = new Map<string, number>()
  private readonly seen = new Set<string>()
  /** member → currency → (credits − debits) */
  private readonly delta = new Map<string, Map<string, number>>()

  constructor(
    private readonly policy: VenuePolicy,
    members: Iterable<string>,
  ) {
    this.members = [...new Set(members)].sort()
    for (const [i, m] of this.members.entries()) this.position.set(m, i)
  }

  private add(member: string, currency: string, amount: number): void {
    let m = this.delta.get(member)
    if (m === undefined) {
      m = new Map()
      this.delta.set(member, m)
    }
    m.set(currency, (m.get(currency) ?? 0) + amount)
  }

  /** apply a transfer once (idempotent by id) */
  apply(t: TransferFacts): void {
    if (this.seen.has(t.id)) return
    this.seen.add(t.id)
    this.add(t.from, t.currency, -t.amountMinor)
    this.add(t.to, t.currency, t.amountMinor)
  }

  initial(member: string, currency: string): number {
    const limits = currencyLimits(this.policy, currency)
    const i = this.position.get(member)
    if (limits === undefined || i === undefined) return 0
    // initialShare, without its indexOf
    const cap = limits.venueCapMinor
    const base = Math.floor(cap / this.members.length)
    return base + (i < cap - base * this.members.length ? 1 : 0)
  }

  /** the member's share of the venue cap in `currency` */
  share(member: string, currency: string): number {
    return this.initial(member, currency) + (this.delta.get(member)?.get(currency) ?? 0)
  }
}
