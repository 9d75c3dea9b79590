import { afterEach, describe, expect, it } from 'vitest'
import { LoopLag } from '../src/loop-lag.js'

const busy = (ms: number): void => {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // a starved event loop: nothing else runs meanwhile
  }
}

describe('the tap deadline keeps room for a starved event loop [loop lag]', () => {
  const lag = new LoopLag()
  afterEach(() => lag.stop())

  it('after the loop was blocked for 300 ms at a time, a decision keeps at least 200 ms, at most ¼ of the budget', async () => {
    lag.start()
    lag.start() // idempotent
    const until = performance.now() + 2_600
    while (performance.now() < until) {
      busy(300)
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(lag.recentP99Ms).toBeGreaterThan(100)
    expect(lag.reserveMs(2_000)).toBeGreaterThanOrEqual(200)
    expect(lag.reserveMs(2_000)).toBeLessThanOrEqual(500)
    lag.stop()
    expect(lag.reserveMs(2_000)).toBe(0)
  }, 20_000)
})
