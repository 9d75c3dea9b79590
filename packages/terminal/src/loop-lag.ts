import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks'
import { LOOP_LAG_RESOLUTION_MS, LOOP_LAG_WINDOW_MS } from './constants.js'

/**
 * The event loop's recent delay (p99 over the last window), so a decision on a starved process can
 * keep room for what it cannot see: the wait before its request reached the handler and before its
 * answer leaves. A terminal whose loop is idle reserves nothing. start/stop are idempotent.
 */
export class LoopLag {
  private histogram: IntervalHistogram | undefined
  private timer: ReturnType<typeof setInterval> | undefined
  /** p99 of the event loop delay over the last complete window, in ms */
  recentP99Ms = 0

  start(): void {
    if (this.histogram !== undefined) return
    const h = monitorEventLoopDelay({ resolution: LOOP_LAG_RESOLUTION_MS })
    h.enable()
    this.histogram = h
    this.timer = setInterval(() => {
      // the histogram counts the sampling resolution itself: subtract it
      this.recentP99Ms = Math.max(0, h.percentile(99) / 1e6 - LOOP_LAG_RESOLUTION_MS)
      h.reset()
    }, LOOP_LAG_WINDOW_MS)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    this.histogram?.disable()
    this.histogram = undefined
    this.recentP99Ms = 0
  }

  /** time a decision keeps before its tap deadline for a starved loop: twice the recent p99, ≤ ¼ budget */
  reserveMs(tapBudgetMs: number): number {
    return Math.min(Math.floor(tapBudgetMs / 4), Math.ceil(2 * this.recentP99Ms))
  }
}
