// The idle figure from the command line (after `npm run build`):
//   node packages/cli/dist/bench/idle-main.js [--sizes 5,25] [--seconds 20] [--settle 5]
//        [--processes 5] [--profile <dir>] [--json <file>]
// Prints progress, then the runs as JSON (and, with --profile, where each child's time went).
import '@nullmesh/protocol/shim'
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { IDLE_MEASURE_MS, IDLE_SETTLE_MS, IDLE_SIZES, runIdle } from './idle.js'
import { summarizeProfile } from './idle-profile.js'

const { values } = parseArgs({
  options: {
    sizes: { type: 'string' },
    seconds: { type: 'string' },
    settle: { type: 'string' },
    processes: { type: 'string' },
    profile: { type: 'string' },
    json: { type: 'string' },
  },
})
const sizes = values.sizes?.split(',').map(Number) ?? IDLE_SIZES
const ac = new AbortController()
process.once('SIGINT', () => ac.abort())
const runs = await runIdle({
  sizes,
  measureMs: values.seconds === undefined ? IDLE_MEASURE_MS : Number(values.seconds) * 1000,
  settleMs: values.settle === undefined ? IDLE_SETTLE_MS : Number(values.settle) * 1000,
  ...(values.processes === undefined ? {} : { processes: Number(values.processes) }),
  ...(values.profile === undefined ? {} : { profileDir: values.profile }),
  say: (line) => process.stderr.write(`${line}\n`),
  signal: ac.signal,
})
const out: Record<string, unknown> = { at: new Date().toISOString(), runs }
if (values.profile !== undefined) {
  const profiles: Record<string, unknown> = {}
  for (const r of runs) for (const p of r.profiles ?? []) profiles[p] = await summarizeProfile(p)
  out.profiles = profiles
}
const text = JSON.stringify(out, null, 2)
if (values.json !== undefined) await writeFile(values.json, text)
process.stdout.write(`${text}\n`)
