import type { Histogram } from 'hdr-histogram-js'

export interface TerminalView {
  id: string
  mode?: string | undefined
  peers?: number | undefined
  online?: boolean | undefined
  queue?: number | undefined
  onlineUnresolved?: number | undefined
  /** most cards seen at once whose custodian group had no reachable majority */
  groupsWithoutQuorum?: number | undefined
  /** the longest decision the terminal timed itself (status.decisions.maxMs), over its restarts */
  maxDecisionMs?: number | undefined
  /** decisions it timed over the tap budget: the current start's count, and the earlier starts' */
  overBudget?: number | undefined
  overBudgetBefore?: number | undefined
  partitioned: boolean
  alive: boolean
}

export interface LiveStats {
  phase: string
  planned: number
  sent: number
  answered: number
  approvedOnline: number
  approvedOffline: number
  declined: number
  errors: number
  barrier: Histogram
  terminals: TerminalView[]
  startedAt: number
}

/**
 * Live progress on stderr: on a TTY a compact two-line block redrawn ~4×/s, otherwise one plain
 * line every couple of seconds (so logs and CI output stay readable).
 */
export class Progress {
  private readonly tty: boolean
  private timer: NodeJS.Timeout | undefined
  private drawnLines = 0
  private lastPlain = 0

  constructor(
    private readonly stats: LiveStats,
    private readonly enabled: boolean,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = stream.isTTY === true && process.env.TERM !== 'dumb'
  }

  start(): void {
    if (!this.enabled || this.timer !== undefined) return
    this.timer = setInterval(() => this.render(false), this.tty ? 250 : 500)
    this.timer.unref()
  }

  /** stop redrawing; the last frame stays on screen */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    if (this.enabled) this.render(true)
    if (this.tty && this.drawnLines > 0) this.drawnLines = 0
  }

  /** print a message above the live block */
  note(message: string): void {
    if (!this.enabled) {
      this.stream.write(`${message}\n`)
      return
    }
    this.clear()
    this.stream.write(`${message}\n`)
    if (this.timer !== undefined && this.tty) this.render(true)
  }

  private clear(): void {
    if (!this.tty || this.drawnLines === 0) return
    this.stream.write(`\x1b[${this.drawnLines}A\x1b[0J`)
    this.drawnLines = 0
  }

  private render(force: boolean): void {
    const now = Date.now()
    if (!this.tty) {
      if (!force && now - this.lastPlain < 2_000) return
      this.lastPlain = now
      this.stream.write(`${this.head()} · ${this.counts()} | ${this.terminalItems().join('  ')}\n`)
      return
    }
    const width = Math.max(40, (this.stream.columns ?? 80) - 1)
    const lines = [this.head(), this.counts(), ...pack(this.terminalItems(), width)].map((l) =>
      truncate(l, width),
    )
    this.clear()
    this.stream.write(`${lines.join('\n')}\n`)
    this.drawnLines = lines.length
  }

  private head(): string {
    const s = this.stats
    const pct = s.planned === 0 ? 0 : Math.floor((100 * s.answered) / s.planned)
    const barWidth = 24
    const filled = Math.round((pct / 100) * barWidth)
    const bar = `${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)}`
    const elapsed = ((Date.now() - s.startedAt) / 1000).toFixed(1)
    return `${s.phase.padEnd(8)} ${bar} ${String(pct).padStart(3)}% ${s.answered}/${s.planned} payments · ${elapsed} s`
  }

  private counts(): string {
    const s = this.stats
    const b =
      s.barrier.totalCount > 0
        ? `barrier p50 ${s.barrier.getValueAtPercentile(50)} / p99 ${s.barrier.getValueAtPercentile(99)} ms`
        : 'barrier –'
    const approved = s.approvedOnline + s.approvedOffline
    return (
      `✔ ${approved} approved (${s.approvedOnline} online, ${s.approvedOffline} offline) · ✘ ${s.declined} declined` +
      (s.errors > 0 ? ` · ! ${s.errors} no answer` : '') +
      ` · ${b}`
    )
  }

  /** per terminal: mesh mode (or cut), ready peers, central link ↑ / ×, queue */
  private terminalItems(): string[] {
    return this.stats.terminals.map((t) => {
      if (!t.alive) return `${t.id} down`
      const mode = t.partitioned ? 'cut' : (t.mode ?? '?')
      const link = t.online === undefined ? '' : t.online ? ' ↑' : ' ×'
      const q = t.queue !== undefined && t.queue > 0 ? ` q${t.queue}` : ''
      return `${t.id} ${mode}${t.peers !== undefined ? ` ${t.peers}p` : ''}${link}${q}`
    })
  }
}

/** items joined by two spaces, in as few lines of `width` as they fit */
function pack(items: string[], width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const item of items) {
    const next = line === '' ? item : `${line}  ${item}`
    if ([...next].length > width && line !== '') {
      lines.push(line)
      line = item
    } else {
      line = next
    }
  }
  if (line !== '') lines.push(line)
  return lines
}

function truncate(text: string, width: number): string {
  return [...text].length <= width ? text : `${[...text].slice(0, width - 1).join('')}…`
}
