/**
 * Token buckets by key (a peer id): `rate` tokens a second, at most `burst` saved up. A key that
 * has not been seen for a while costs nothing: buckets that are full again are dropped lazily.
 * Issue 17, item 6: barrier requests per peer per second.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Take one token for `key`: false when its bucket is empty (the caller drops or refuses the request). */
  take(key: string): boolean {
    const now = this.now()
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate)
    b.at = now
    if (b.tokens < 1) {
      this.buckets.set(key, b)
      return false
    }
    b.tokens -= 1
    this.buckets.set(key, b)
    if (this.buckets.size > 1024) this.prune(now)
    return true
  }

  private prune(now: number): void {
    for (const [key, b] of this.buckets)
      if (b.tokens + ((now - b.at) / 1000) * this.rate >= this.burst) this.buckets.delete(key)
  }
}
