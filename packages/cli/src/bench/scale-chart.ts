// The `scale` figure as an SVG (docs/benchmarks-scale.svg, beside figure 1's chart): left, tap→
// decision p50/p99 against terminal count with the goal (1.5 × p50 at 5); right, what one payment
// costs: barrier messages, fsyncs and CPU ms per terminal. Both axes of N are logarithmic.
import type { ScaleFigure, ScaleRun } from './scale.js'

interface Series {
  name: string
  color: string
  dash: string
  get: (r: ScaleRun) => number | null | undefined
}

interface Panel {
  title: string
  log: boolean
  series: Series[]
  /** a horizontal reference line */
  goal?: { name: string; value: number } | undefined
}

const W = 1000
const H = 460
const TOP = 70
const PANEL_H = 270
const PANEL_W = 340
const LEFTS = [70, 560]

export function scaleChartSvg(
  figure: ScaleFigure,
  about: { machine?: string; startedAt?: string; quick?: boolean } = {},
): string {
  const runs = figure.runs.filter((r) => r.error === undefined && r.tapToDecisionMs?.p50 != null)
  if (runs.length === 0) throw new Error('no scale runs to chart')
  const p50At5 = runs.find((r) => r.terminals === 5)?.tapToDecisionMs?.p50
  const panels: Panel[] = [
    {
      title: 'tap → decision, ms (log)',
      log: true,
      series: [
        { name: 'p50', color: '#1f77b4', dash: '', get: (r) => r.tapToDecisionMs?.p50 },
        { name: 'p99', color: '#1f77b4', dash: '6 4', get: (r) => r.tapToDecisionMs?.p99 },
      ],
      goal: p50At5 == null ? undefined : { name: 'goal: 1.5 × p50 at 5', value: 1.5 * p50At5 },
    },
    {
      title: 'per payment (linear)',
      log: false,
      series: [
        { name: 'barrier messages', color: '#d62728', dash: '', get: (r) => r.messagesPerPayment },
        { name: 'fsyncs', color: '#2ca02c', dash: '', get: (r) => r.fsyncsPerPayment },
        {
          name: 'CPU ms per terminal',
          color: '#ff7f0e',
          dash: '',
          get: (r) => r.cpuMsPerPaymentPerTerminal,
        },
        {
          name: 'CPU ms per terminal above idle',
          color: '#ff7f0e',
          dash: '6 4',
          get: (r) => r.cpuMsPerPaymentPerTerminalAboveIdle,
        },
      ],
    },
  ]
  const xs = runs.map((r) => r.terminals)
  const xlo = Math.log10(Math.min(...xs))
  const xhi = Math.log10(Math.max(...xs))
  const out: string[] = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  )
  out.push('<title>Venue scale: the cost of one payment against terminal count</title>')
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  out.push(
    `<text x="${LEFTS[0]}" y="22" font-size="15" font-weight="bold">Venue scale: the cost of one payment against terminal count</text>`,
  )
  const p = figure.parameters
  out.push(
    `<text x="${LEFTS[0]}" y="40" fill="#555">${esc(
      `${about.machine ?? ''} paced ${p.ratePerSecond}/s venue-wide at every N, ${p.payments} payments per N, ` +
        `≤ ${p.processes} processes; ${about.startedAt ?? ''}${about.quick ? ' (quick)' : ''}`,
    )}</text>`,
  )
  panels.forEach((panel, i) => {
    const left = LEFTS[i]!
    const x = (n: number) =>
      left + (xhi === xlo ? PANEL_W / 2 : ((Math.log10(n) - xlo) / (xhi - xlo)) * PANEL_W)
    const values = panel.series
      .flatMap((s) => runs.map((r) => s.get(r)))
      .concat(panel.goal === undefined ? [] : [panel.goal.value])
      .filter((v): v is number => v != null && v > 0)
    const y = axis(panel.log, values, (v, yy) => {
      out.push(
        `<line x1="${left}" x2="${left + PANEL_W}" y1="${yy.toFixed(1)}" y2="${yy.toFixed(1)}" stroke="#e4e4e4"/>`,
        `<text x="${left - 6}" y="${(yy + 4).toFixed(1)}" text-anchor="end" fill="#444">${fmt(v)}</text>`,
      )
    })
    for (const n of xs) {
      out.push(
        `<line x1="${x(n).toFixed(1)}" x2="${x(n).toFixed(1)}" y1="${TOP}" y2="${TOP + PANEL_H}" stroke="#eee"/>`,
        `<text x="${x(n).toFixed(1)}" y="${TOP + PANEL_H + 18}" text-anchor="middle">${n}</text>`,
      )
    }
    out.push(
      `<rect x="${left}" y="${TOP}" width="${PANEL_W}" height="${PANEL_H}" fill="none" stroke="#888"/>`,
      `<text x="${left}" y="${TOP - 8}" font-weight="bold">${esc(panel.title)}</text>`,
      `<text x="${left + PANEL_W / 2}" y="${TOP + PANEL_H + 38}" text-anchor="middle">terminals (log)</text>`,
    )
    const legend: Series[] = [...panel.series]
    if (panel.goal !== undefined) {
      const gy = y(panel.goal.value)
      out.push(
        `<line x1="${left}" x2="${left + PANEL_W}" y1="${gy.toFixed(1)}" y2="${gy.toFixed(1)}" stroke="#9467bd" stroke-width="2" stroke-dasharray="2 3"/>`,
      )
      legend.push({ name: panel.goal.name, color: '#9467bd', dash: '2 3', get: () => null })
    }
    for (const s of panel.series) {
      const pts = runs
        .map((r) => [r.terminals, s.get(r)] as const)
        .filter((pt): pt is readonly [number, number] => pt[1] != null && (!panel.log || pt[1] > 0))
      if (pts.length === 0) continue
      out.push(
        `<polyline fill="none" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ''} points="${pts
          .map(([n, v]) => `${x(n).toFixed(1)},${y(v).toFixed(1)}`)
          .join(' ')}"/>`,
      )
      for (const [n, v] of pts)
        out.push(`<circle cx="${x(n).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${s.color}"/>`)
    }
    legend.forEach((s, k) => {
      const ly = TOP + PANEL_H + 58 + Math.floor(k / 2) * 18
      const lx = left + (k % 2) * 190
      out.push(
        `<line x1="${lx}" x2="${lx + 26}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ''}/>`,
        `<text x="${lx + 32}" y="${ly + 4}">${esc(s.name)}</text>`,
      )
    })
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}

/** y scale of a panel; draws the grid through `grid(value, y)` */
function axis(log: boolean, values: number[], grid: (v: number, y: number) => void): (v: number) => number {
  const max = Math.max(...values, 1e-9)
  if (log) {
    const lo = 10 ** Math.floor(Math.log10(Math.min(...values, max)))
    const hi = 10 ** Math.ceil(Math.log10(max))
    const y = (v: number) =>
      TOP + PANEL_H - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo) || 1)) * PANEL_H
    for (let d = lo; d <= hi; d *= 10) for (const k of [1, 2, 5]) if (d * k <= hi) grid(d * k, y(d * k))
    return y
  }
  const step = niceStep(max / 5)
  const hi = Math.ceil(max / step) * step
  const y = (v: number) => TOP + PANEL_H - (v / hi) * PANEL_H
  for (let v = 0; v <= hi + step / 2; v += step) grid(v, y(v))
  return y
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw))
  for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p
  return 10 * p
}

function fmt(v: number): string {
  return v >= 1 ? String(Math.round(v * 100) / 100) : String(Number(v.toPrecision(2)))
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}
