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
    expect(lag.recentMaxMs).toBeGreaterThan(100)
    expect(lag.reserveMs(2_000)).toBeGreaterThanOrEqual(200)
    expect(lag.reserveMs(2_000)).toBeLessThanOrEqual(500)
    lag.stop()
    expect(lag.reserveMs(2_000)).toBe(0)
  }, 20_000)
})

describe('a stall counts at once [loop lag now]', () => {
  const lag = new LoopLag()
  afterEach(() => lag.stop())

  it('one 300 ms stall, long before its 2 s window completes, already keeps room in the next decision', async () => {
    lag.start()
    await new Promise((r) => setTimeout(r, 120))
    expect(lag.reserveMs(2_000)).toBeLessThan(50) // an idle loop reserves (next to) nothing
    busy(300)
    await new Promise((r) => setTimeout(r, 60)) // the overdue tick runs
    expect(lag.recentMaxMs).toBe(0) // no window has completed yet
    expect(lag.reserveMs(2_000)).toBeGreaterThanOrEqual(400)
  })
})

describe('a request read after a busy stretch is taken to have waited through it [arrival behind a busy loop]', () => {
  const lag = new LoopLag()
  afterEach(() => lag.stop())

  it('a tick on time: arrival is now; a tick overdue by a 300 ms stall: arrival is when the tick was due', async () => {
    expect(lag.arrival(1234)).toBe(1234) // not started: nothing known
    lag.start()
    await new Promise((r) => setTimeout(r, 120))
    const idle = performance.now()
    expect(lag.arrival(idle)).toBe(idle)
    const before = performance.now()
    busy(300)
    const now = performance.now()
    const arrived = lag.arrival(now)
    // the stall began within one tick period of `before`: the request may have waited ≥ 250 ms
    expect(arrived).toBeLessThanOrEqual(before + 50)
    expect(now - arrived).toBeGreaterThanOrEqual(250)
    // the overdue tick runs first; a request read right after it (5 ms after the stall ended: the
    // read time is given, so a late timer on a loaded machine cannot skip the check) still waited
    await new Promise((r) => setTimeout(r, 0))
    expect(lag.arrival(now + 5)).toBeLessThanOrEqual(before + 50)
    // once the loop has run freely for a while, a request is taken as it comes
    await new Promise((r) => setTimeout(r, 120))
    const later = performance.now()
    expect(lag.arrival(later)).toBe(later)
  })
})
