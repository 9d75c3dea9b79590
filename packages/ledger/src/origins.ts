import { seqRanges } from '@nullmesh/protocol'
/**
 * What the ledger keeps in memory per origin so that recordEvent needs no range scan: which
 * seqs are present (all of 1..hwm except the pruned prefix, plus the `above` set past a gap),
 * and the largest seq seen. Loaded at open from the `hwm`, `pruned` and `confirmed` sublevels
 * and the few event keys past each high-water mark.
 */
export class OriginState {
  /** contiguous high-water mark: 1..hwm were all recorded */
  hwm = 0
  /** largest recorded seq */
  maxSeq = 0
  /** seqs recorded past a gap (> hwm + 1) */
  above = new Set<number>()
  /** central confirmed 1..confirmed */
  confirmed = 0
  /** bodies of 1..pruned were deleted (pruned <= min(hwm, confirmed)) */
  pruned = 0

  has(seq: number): boolean {
    return seq <= this.hwm || this.above.has(seq)
  }

  add(seq: number): void {
    if (this.has(seq)) return
    if (seq > this.maxSeq) this.maxSeq = seq
    if (seq !== this.hwm + 1) {
      this.above.add(seq)
      return
    }
    this.hwm = seq
    while (this.above.delete(this.hwm + 1)) this.hwm++
  }

  /**
   * The seqs held past a gap as ascending inclusive ranges, flat [from, to, from, to, …], at most
   * `max` ranges (the lowest: a range left out only costs a resend, never a loss).
   */
  rangesAbove(max: number): number[] {
    if (this.above.size === 0 || max <= 0) return []
    return seqRanges(
      [...this.above].sort((a, b) => a - b),
      max,
    )
  }

  /** events stored (not pruned) */
  get count(): number {
    return this.hwm - this.pruned + this.above.size
  }

  clone(): OriginState {
    const copy = new OriginState()
    copy.hwm = this.hwm
    copy.maxSeq = this.maxSeq
    copy.above = new Set(this.above)
    copy.confirmed = this.confirmed
    copy.pruned = this.pruned
    return copy
  }
}
