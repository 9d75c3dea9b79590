// Where the time goes: a 5-terminal mesh with the decision-path trace and operation counters on.
// node scripts/bench/profile.js [rate=40] [seconds=8]   (PROF=1: also --cpu-prof into /tmp/prof)
import '@nullmesh/protocol/shim'
import { join } from 'node:path'
import { createVenueBundle } from '@nullmesh/policy'
import {
  BENCH_POLICY,
  histogram,
  httpPay,
  paced,
  paymentBody,
  recordMs,
  removeDir,
  startMesh,
  stopAll,
  summary,
  tempRoot,
} from './lib.js'

const rate = Number(process.argv[2] ?? 40),
  secs = Number(process.argv[3] ?? 8)
const root = await tempRoot('prof')
const venueDir = join(root, 'venue')
await createVenueBundle({ outDir: venueDir, terminals: 5, venueId: 'prof', policy: BENCH_POLICY })
const ids = ['T1', 'T2', 'T3', 'T4', 'T5']
const workers = await startMesh({
  venueDir,
  root,
  ids,
  extra: {
    trace: true,
    ...(process.env.PROF ? { execArgv: ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] } : {}),
  },
})
for (const w of workers) await w.call('resetOps')
const h = histogram(),
  b = histogram()
const run = await paced(rate * secs, rate, (i) => httpPay(workers[i % 5].info, paymentBody(i)))
const st = {}
for (const r of run.results) {
  if (!r.ok) {
    st.err = (st.err ?? 0) + 1
    continue
  }
  recordMs(h, r.v.ms)
  if (r.v.response.barrier) recordMs(b, r.v.response.barrier.ms)
  st[r.v.response.status + ':' + (r.v.response.declineCode ?? '')] =
    (st[r.v.response.status + ':' + (r.v.response.declineCode ?? '')] ?? 0) + 1
}
console.log(JSON.stringify({ tap: summary(h), barrier: summary(b), st }))
// latency over time
const lat = run.results.map((r) => (r.ok ? Math.round(r.v.ms) : -1))
console.log('first 20', lat.slice(0, 20).join(' '), '\nlast 20', lat.slice(-20).join(' '))
for (const w of workers.slice(0, 2)) {
  const t = await w.call('trace')
  const per = Object.fromEntries(
    Object.entries(t.ops).map(([k, v]) => [k, Math.round((v / (rate * secs)) * 100) / 100]),
  )
  console.log(w.name, 'ops per payment (venue-wide payments):', JSON.stringify(per))
  delete t.ops
  console.log(JSON.stringify(t))
}
await stopAll(workers)
await removeDir(root)
