import {
  LOOP_LAG_READ_WINDOW_MS,
  LOOP_LAG_RESOLUTION_MS,
  LOOP_LAG_STALL_SLACK_MS,
  LOOP_LAG_WINDOW_MS,
} from './constants.js'

/**
 * The event loop's recent delay, so a decision on a starved process can keep room for what it
 * cannot see: the wait before its request reached the handler and before its answer leaves.
 *
 * One timer ticks every LOOP_LAG_RESOLUTION_MS; how late each tick fires is the loop's delay at that
 * moment (a blocked loop, or a process the OS did not run, delays the tick by as long). It gives two
 * things: the largest delay over the last complete window (`recentMaxMs`; with ~40 ticks a window
 * its p99 is its maximum), which sets every tap's deadline earlier; and, for a request read now,
 * whether the tick is overdue — then the loop has been busy since the tick was due, and the request
 * may have been waiting in its socket all that time (`arrival`). A terminal whose loop is idle
 * reserves nothing. start/stop are idempotent.
 */
export class LoopLag {
  private timer: ReturnType<typeof setInterval> | undefined
  private lastTickAt = 0
  private windowStart = 0
  private windowMax = 0
  /** when the last stall a tick found began, and when that tick saw it (the loop was free again) */
  private stallSince: number | undefined
  private stallSeenAt = 0
  /** the largest tick delay over the last complete window, in ms */
  recentMaxMs = 0

  start(): void {
    if (this.timer !== undefined) return
    const now = performance.now()
    this.lastTickAt = now
    this.windowStart = now
    this.windowMax = 0
    this.timer = setInterval(() => this.tick(), LOOP_LAG_RESOLUTION_MS)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    this.stallSince = undefined
    this.recentMaxMs = 0
    this.windowMax = 0
  }

  private tick(): void {
    const now = performance.now()
    const due = this.lastTickAt + LOOP_LAG_RESOLUTION_MS
    const late = Math.max(0, now - due)
    this.lastTickAt = now
    if (late > LOOP_LAG_STALL_SLACK_MS) {
      // what arrived during the stall is read after this tick, in a socket poll soon after it
      this.stallSince = due
      this.stallSeenAt = now
    }
    if (late > this.windowMax) this.windowMax = late
    if (now - this.windowStart >= LOOP_LAG_WINDOW_MS) {
      this.recentMaxMs = this.windowMax
      this.windowMax = 0
      this.windowStart = now
    }
  }

  /**
   * The earliest a request read at `now` may have arrived. The loop reads a socket only between
   * tasks: if the tick due at `due` has not run yet, the loop (or the process) was busy from then on,
   * and bytes that came in meanwhile waited unread — a catch-up's frames, a burst of acks. The
   * request is taken to have arrived when that busy stretch began (conservative: its deadline comes
   * no later than it should). The same holds just after the stretch, when the overdue tick has run
   * but the sockets are read only in a poll after it (which one depends on libuv's phase order, so
   * the rule is by time: LOOP_LAG_READ_WINDOW_MS). A tick on time changes nothing.
   */
  arrival(now: number = performance.now()): number {
    if (this.timer === undefined) return now
    const due = this.lastTickAt + LOOP_LAG_RESOLUTION_MS
    if (now - due > LOOP_LAG_STALL_SLACK_MS) return due // still in the busy stretch
    // read just after one
    if (this.stallSince !== undefined && now - this.stallSeenAt <= LOOP_LAG_READ_WINDOW_MS)
      return this.stallSince
    return now
  }

  /**
   * time a decision keeps before its tap deadline for a starved loop: twice the recent delay, ≤ ¼
   * budget. The recent delay is the last complete window's or, if larger, the one in progress: a
   * loop that starves now (a venue healing from a partition) counts at once, not 2 s later.
   */
  reserveMs(tapBudgetMs: number): number {
    const recent = Math.max(this.recentMaxMs, this.windowMax)
    return Math.min(Math.floor(tapBudgetMs / 4), Math.ceil(2 * recent))
  }
}
