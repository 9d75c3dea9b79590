/** A small seeded PRNG (sfc32): one seed decides a whole simulated run. */
export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number) {
    this.a = 0x9e3779b9
    this.b = 0x243f6a88
    this.c = 0xb7e15162
    this.d = seed >>> 0
    for (let i = 0; i < 15; i++) this.next()
  }

  /** uniform in [0, 1) */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return (t >>> 0) / 4294967296
  }

  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  range(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo)
  }

  chance(p: number): boolean {
    return this.next() < p
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = this.int(256)
    return out
  }

  /** a child generator, so that adding draws in one place does not shift another's */
  fork(): Rng {
    return new Rng(this.int(0x7fffffff) ^ 0x5bd1e995)
  }
}

/**
 * Binary min-heap on (at, seq): a total order (seq is unique), so the pop order does not depend on
 * how the heap is laid out. Sifts move a hole instead of swapping pairs (one step in three is a
 * push and a pop).
 */
export class Queue<T extends { at: number; seq: number }> {
  private readonly h: T[] = []

  get size(): number {
    return this.h.length
  }

  push(x: T): void {
    const h = this.h
    let i = h.length
    h.push(x)
    while (i > 0) {
      const p = (i - 1) >> 1
      const parent = h[p]!
      if (!less(x, parent)) break
      h[i] = parent
      i = p
    }
    h[i] = x
  }

  pop(): T | undefined {
    const h = this.h
    if (h.length === 0) return undefined
    const top = h[0]!
    const last = h.pop()!
    const n = h.length
    if (n > 0) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= n) break
        const r = l + 1
        const c = r < n && less(h[r]!, h[l]!) ? r : l
        const child = h[c]!
        if (!less(child, last)) break
        h[i] = child
        i = c
      }
      h[i] = last
    }
    return top
  }
}

function less(a: { at: number; seq: number }, b: { at: number; seq: number }): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}
