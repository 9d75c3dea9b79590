/** amount and count of entries at or after a time */
export interface WindowTotal {
  amountMinor: number
  count: number
}

interface Block {
  ts: number[]
  ids: string[]
  amounts: number[]
  amountMinor: number
}

// Blocks of a sorted list (sqrt decomposition): a window query sums whole blocks and scans one,
// so it costs O(n / BLOCK + BLOCK) however many entries the window holds.
const BLOCK = 128

function before(tsA: number, idA: string, tsB: number, idB: string): boolean {
  return tsA < tsB || (tsA === tsB && idA < idB)
}

/**
 * Entries (ts, id, amount) kept sorted by (ts, id), answering "total since T" fast. Ids are
 * unique; insertion is usually at the end (events arrive roughly in time order).
 */
export class WindowIndex {
  private readonly blocks: Block[] = []
  private entries = 0

  get size(): number {
    return this.entries
  }

  /** index of the block that holds, or would hold, (ts, id) */
  private blockFor(ts: number, id: string): number {
    let lo = 0
    let hi = this.blocks.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      const b = this.blocks[mid]!
      if (before(ts, id, b.ts[0]!, b.ids[0]!)) hi = mid - 1
      else lo = mid
    }
    return lo
  }

  private static position(b: Block, ts: number, id: string): number {
    let lo = 0
    let hi = b.ts.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (before(b.ts[mid]!, b.ids[mid]!, ts, id)) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  add(ts: number, id: string, amountMinor: number): void {
    if (this.blocks.length === 0) {
      this.blocks.push({ ts: [ts], ids: [id], amounts: [amountMinor], amountMinor })
      this.entries = 1
      return
    }
    const bi = this.blockFor(ts, id)
    const b = this.blocks[bi]!
    const at = WindowIndex.position(b, ts, id)
    if (b.ids[at] === id && b.ts[at] === ts) return
    b.ts.splice(at, 0, ts)
    b.ids.splice(at, 0, id)
    b.amounts.splice(at, 0, amountMinor)
    b.amountMinor += amountMinor
    this.entries++
    if (b.ts.length > 2 * BLOCK) {
      const half = b.ts.length >> 1
      const tail: Block = {
        ts: b.ts.splice(half),
        ids: b.ids.splice(half),
        amounts: b.amounts.splice(half),
        amountMinor: 0,
      }
      for (const a of tail.amounts) tail.amountMinor += a
      b.amountMinor -= tail.amountMinor
      this.blocks.splice(bi + 1, 0, tail)
    }
  }

  remove(ts: number, id: string): boolean {
    if (this.blocks.length === 0) return false
    const bi = this.blockFor(ts, id)
    const b = this.blocks[bi]!
    const at = WindowIndex.position(b, ts, id)
    if (b.ids[at] !== id || b.ts[at] !== ts) return false
    b.amountMinor -= b.amounts[at]!
    b.ts.splice(at, 1)
    b.ids.splice(at, 1)
    b.amounts.splice(at, 1)
    this.entries--
    if (b.ts.length === 0) this.blocks.splice(bi, 1)
    return true
  }

  /** total of entries with ts ≥ sinceTs */
  since(sinceTs: number): WindowTotal {
    let amountMinor = 0
    let count = 0
    for (let i = this.blocks.length - 1; i >= 0; i--) {
      const b = this.blocks[i]!
      if (b.ts[0]! >= sinceTs) {
        amountMinor += b.amountMinor
        count += b.ts.length
        continue
      }
      for (let j = b.ts.length - 1; j >= 0 && b.ts[j]! >= sinceTs; j--) {
        amountMinor += b.amounts[j]!
        count++
      }
      break
    }
    return { amountMinor, count }
  }

  /** ids of entries with ts ≥ sinceTs, in (ts, id) order */
  idsSince(sinceTs: number): string[] {
    const out: string[] = []
    for (let i = this.blocks.length - 1; i >= 0; i--) {
      const b = this.blocks[i]!
      let j = b.ts.length - 1
      while (j >= 0 && b.ts[j]! >= sinceTs) out.push(b.ids[j--]!)
      if (j >= 0) break
    }
    return out.reverse()
  }
}
