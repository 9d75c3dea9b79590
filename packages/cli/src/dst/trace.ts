/** trace lines kept after a run without --trace: the steps that led to a violation */
export const TRACE_TAIL = 60

/**
 * The step trace of one run: every line with `--trace` (two runs of one seed write identical
 * files), else a rolling tail for the failure report.
 */
export class Trace {
  readonly lines: string[] = []

  constructor(private readonly full: boolean) {}

  push(line: string): void {
    this.lines.push(line)
    if (!this.full && this.lines.length > TRACE_TAIL * 2) this.lines.splice(0, this.lines.length - TRACE_TAIL)
  }

  /** what a result reports: everything, or the last lines before the end */
  result(): string[] {
    return this.full ? this.lines : this.lines.slice(-TRACE_TAIL)
  }
}
