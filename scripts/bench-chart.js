#!/usr/bin/env node
// Barrier latency against terminal count, beside the physical floor (RTT + fsync), as an SVG,
// from bench/results/latest.json (or the file given). Usage:
//   node scripts/bench-chart.js [results.json] [out.svg]     (default out: docs/benchmarks-barrier.svg)
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const input = process.argv[2] ?? `${ROOT}bench/results/latest.json`
const output = process.argv[3] ?? `${ROOT}docs/benchmarks-barrier.svg`

const results = JSON.parse(await readFile(input, 'utf8'))
const runs = (results.figures?.barrier?.runs ?? []).filter((r) => r.inprocess !== undefined)
const floors = results.figures?.floor?.runs ?? []
if (runs.length === 0) {
  process.stderr.write(`no barrier runs in ${input}\n`)
  process.exit(1)
}

const series = [
  {
    name: 'in-process tap→decision p50',
    color: '#1f77b4',
    dash: '',
    get: (r) => r.inprocess.tapToDecisionMs.p50,
  },
  { name: 'in-process p99', color: '#1f77b4', dash: '6 4', get: (r) => r.inprocess.tapToDecisionMs.p99 },
  { name: 'HTTP API tap→decision p50', color: '#ff7f0e', dash: '', get: (r) => r.http.tapToDecisionMs.p50 },
  { name: 'HTTP API p99', color: '#ff7f0e', dash: '6 4', get: (r) => r.http.tapToDecisionMs.p99 },
  {
    name: 'floor: RTT p50 + fsync p50 (same run)',
    color: '#2ca02c',
    dash: '',
    get: (r) => floors.find((f) => f.terminals === r.terminals)?.floorP50Ms ?? null,
  },
  {
    name: 'goal: 4 × floor',
    color: '#2ca02c',
    dash: '2 3',
    get: (r) => {
      const f = floors.find((x) => x.terminals === r.terminals)?.floorP50Ms
      return f == null ? null : 4 * f
    },
  },
]

const W = 760
const H = 440
const M = { left: 70, right: 280, top: 50, bottom: 60 }
const pw = W - M.left - M.right
const ph = H - M.top - M.bottom
const xs = runs.map((r) => r.terminals)
const values = series.flatMap((s) => runs.map((r) => s.get(r))).filter((v) => v != null && v > 0)
const lo = 10 ** Math.floor(Math.log10(Math.min(...values)))
const hi = 10 ** Math.ceil(Math.log10(Math.max(...values)))
const x = (n) => M.left + (xs.length === 1 ? pw / 2 : ((n - xs[0]) / (xs[xs.length - 1] - xs[0])) * pw)
const y = (v) => M.top + ph - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph

const out = []
out.push(
  `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
)
out.push('<title>Barrier latency vs terminal count, beside the RTT + fsync floor</title>')
out.push(`<rect width="${W}" height="${H}" fill="white"/>`)
out.push(
  `<text x="${M.left}" y="22" font-size="15" font-weight="bold">Barrier latency vs terminal count, beside the RTT + fsync floor</text>`,
)
const m = results.machine ?? {}
out.push(
  `<text x="${M.left}" y="40" fill="#555">${esc(`${m.nproc ?? '?'} cores, node ${m.node ?? '?'}, paced 20/s, ${results.startedAt ?? ''}${results.quick ? ' (quick)' : ''}; log scale, ms`)}</text>`,
)
// grid
for (let d = lo; d <= hi; d *= 10) {
  for (const k of [1, 2, 5]) {
    const v = d * k
    if (v > hi) break
    const yy = y(v)
    out.push(
      `<line x1="${M.left}" x2="${M.left + pw}" y1="${yy}" y2="${yy}" stroke="${k === 1 ? '#ccc' : '#eee'}"/>`,
    )
    out.push(`<text x="${M.left - 6}" y="${yy + 4}" text-anchor="end" fill="#444">${fmtMs(v)}</text>`)
  }
}
for (const n of xs) {
  out.push(`<line x1="${x(n)}" x2="${x(n)}" y1="${M.top}" y2="${M.top + ph}" stroke="#eee"/>`)
  out.push(`<text x="${x(n)}" y="${M.top + ph + 18}" text-anchor="middle">${n}</text>`)
}
out.push(
  `<text x="${M.left + pw / 2}" y="${H - 18}" text-anchor="middle">terminals (each its own process)</text>`,
)
out.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">ms (log)</text>`)
out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`)
// series
series.forEach((s, i) => {
  const pts = runs.map((r) => [r.terminals, s.get(r)]).filter(([, v]) => v != null && v > 0)
  if (pts.length > 0) {
    out.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ''} points="${pts.map(([n, v]) => `${x(n).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`,
    )
    for (const [n, v] of pts)
      out.push(`<circle cx="${x(n).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${s.color}"/>`)
  }
  const ly = M.top + 10 + i * 20
  const lx = M.left + pw + 16
  out.push(
    `<line x1="${lx}" x2="${lx + 26}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ''}/>`,
  )
  out.push(`<text x="${lx + 32}" y="${ly + 4}">${esc(s.name)}</text>`)
})
out.push('</svg>')
await writeFile(output, `${out.join('\n')}\n`)
process.stderr.write(`wrote ${output}\n`)

function fmtMs(v) {
  return v >= 1 ? String(Math.round(v * 100) / 100) : String(Number(v.toPrecision(2)))
}
function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}
