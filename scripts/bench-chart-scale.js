#!/usr/bin/env node
// Bench figure `scale` (12) as an SVG, from bench/results/latest.json (or the file given); the
// drawing is packages/cli/src/bench/scale-chart.ts. Usage (after `npm run build`):
//   node scripts/bench-chart-scale.js [results.json] [out.svg]     (default out: docs/benchmarks-scale.svg)
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { scaleChartSvg } from '@nullmesh/cli'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const input = process.argv[2] ?? `${ROOT}bench/results/latest.json`
const output = process.argv[3] ?? `${ROOT}docs/benchmarks-scale.svg`

const results = JSON.parse(await readFile(input, 'utf8'))
const figure = results.figures?.scale
if (figure === undefined) {
  process.stderr.write(`no scale figure in ${input} (npm run bench -- --only 12)\n`)
  process.exit(1)
}
const m = results.machine ?? {}
await writeFile(
  output,
  scaleChartSvg(figure, {
    machine: `${m.nproc ?? '?'} cores, node ${m.node ?? '?'};`,
    startedAt: figure.measuredAt ?? results.startedAt,
    quick: results.quick,
  }),
)
process.stderr.write(`wrote ${output}\n`)
