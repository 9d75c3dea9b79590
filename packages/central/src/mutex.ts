export interface RunOptions {
  /**
   * 'high': run before every task still waiting at normal priority (never before the running one).
   * An online authorisation has a customer at the till; a sync batch can wait one task longer.
   */
  priority?: 'high' | 'normal'
}

/**
 * Runs tasks one at a time: all writes to the store go through one. Waiting tasks start in call
 * order within their priority, high before normal. Without priorities, an online authorisation
 * arriving when a venue's links came back waited behind every terminal's queued sync batches and
 * timed out (docs/protocol.md, "Time").
 */
export class Mutex {
  private busy = false
  private readonly high: Array<() => void> = []
  private readonly normal: Array<() => void> = []

  run<T>(task: () => Promise<T>, opts: RunOptions = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        // started asynchronously (a task that throws at once still releases the mutex)
        void Promise.resolve()
          .then(task)
          .then(resolve, reject)
          .finally(() => this.next())
      }
      if (!this.busy) {
        this.busy = true
        start()
      } else (opts.priority === 'high' ? this.high : this.normal).push(start)
    })
  }

  /** tasks waiting (not counting the running one) */
  get waiting(): number {
    return this.high.length + this.normal.length
  }

  private next(): void {
    const start = this.high.shift() ?? this.normal.shift()
    if (start === undefined) this.busy = false
    else start()
  }
}
