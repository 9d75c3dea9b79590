/**
 * The simulated POS's own event-loop delay while each tap is outstanding. The sim's driver is the
 * POS of every terminal and also carries their links to central (proxy.ts), on the same cores as
 * the terminals: when the machine is saturated it reads an answer late, and the tap's latency as
 * it times it includes that wait, which a real POS (its own device) would not add. A tick every
 * POS_LAG_TICK_MS measures how late the loop runs; each tap keeps the largest delay seen while it
 * was outstanding. Diagnostic only: the tap latency is reported as measured.
 */
export const POS_LAG_TICK_MS = 10

export interface PosLag {
  start(): void
  stop(): void
  /** a tap was sent: returns its token */
  begin(): { maxMs: number }
  /** the tap was answered: the largest loop delay while it was outstanding, in ms */
  end(token: { maxMs: number }): number
}

export function createPosLag(): PosLag {
  const open = new Set<{ maxMs: number }>()
  let timer: ReturnType<typeof setInterval> | undefined
  let last = 0
  return {
    start() {
      if (timer !== undefined) return
      last = performance.now()
      timer = setInterval(() => {
        const now = performance.now()
        const late = Math.max(0, now - last - POS_LAG_TICK_MS)
        last = now
        for (const t of open) if (late > t.maxMs) t.maxMs = late
      }, POS_LAG_TICK_MS)
      timer.unref()
    },
    stop() {
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
      open.clear()
    },
    begin() {
      const t = { maxMs: 0 }
      open.add(t)
      return t
    },
    end(t) {
      open.delete(t)
      // the tick that would see the wait just before this answer was read has not run yet
      const pending = Math.max(0, performance.now() - last - POS_LAG_TICK_MS)
      return Math.round(Math.max(t.maxMs, pending))
    },
  }
}
