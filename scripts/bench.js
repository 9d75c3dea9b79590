#!/usr/bin/env node
// nullmesh benchmarks: `npm run bench -- [--quick] [--json] [--only 1,2,8]`
// Benchmarks, not tests: nothing here fails on timing. Every figure is measured on loopback, in
// this run, on this machine; ratios are computed from figures of the same run.
import '@nullmesh/protocol/shim'
import { execSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { createVenueBundle } from '@nullmesh/policy'
import { fromBase64url } from '@nullmesh/protocol'
import {
  BENCH_POLICY,
  dirBytes,
  histOf,
  histogram,
  httpPay,
  paced,
  paymentBody,
  ROOT,
  recordMs,
  removeDir,
  startMesh,
  stopAll,
  summary,
  tempRoot,
} from './bench/lib.js'

const argv = process.argv.slice(2)
const QUICK = argv.includes('--quick')
const JSON_OUT = argv.includes('--json')
const onlyArg = argv.find((a) => a.startsWith('--only'))
const ONLY =
  onlyArg === undefined
    ? undefined
    : new Set((onlyArg.includes('=') ? onlyArg.split('=')[1] : argv[argv.indexOf(onlyArg) + 1]).split(',').map(Number))

const say = (msg) => process.stderr.write(`${msg}\n`)

const results = {
  startedAt: new Date().toISOString(),
  quick: QUICK,
  machine: machine(),
  figures: {},
  goals: {},
}

function machine() {
  const sh = (c) => {
    try {
      return execSync(c, { encoding: 'utf8' }).trim()
    } catch {
      return null
    }
  }
  return {
    nproc: Number(sh('nproc')) || cpus().length,
    cpu: cpus()[0]?.model ?? null,
    memTotalGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    freeH: sh('free -h'),
    node: process.version,
    platform: `${process.platform} ${sh('uname -r') ?? ''}`.trim(),
    commit: sh(`git -C ${ROOT} rev-parse --short HEAD`),
  }
}

async function saveResults() {
  const dir = join(ROOT, 'bench/results')
  await mkdir(dir, { recursive: true })
  results.finishedAt = new Date().toISOString()
  await writeFile(join(dir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`)
}

const PACE = 20 // approvals per second, figure 1

// ───────────────────────── figures 1, 2, 8: barrier latency, floor, sizes ─────────────────────────

async function barrierRun(n) {
  const root = await tempRoot(`barrier${n}`)
  const venueDir = join(root, 'venue')
  const count = QUICK ? 60 : 200
  const warm = 20
  const floorN = QUICK ? 300 : 1000
  const ids = Array.from({ length: n }, (_, i) => `T${i + 1}`)
  await createVenueBundle({ outDir: venueDir, terminals: n, venueId: `bench-${n}`, policy: BENCH_POLICY })
  const workers = await startMesh({ venueDir, root, ids })
  const out = { terminals: n }
  let proofMax = 0
  let approvals = 0
  const statuses = {}
  const note = (response) => {
    statuses[response.status] = (statuses[response.status] ?? 0) + 1
    if (response.status === 'approved_offline') approvals++
    proofMax = Math.max(proofMax, fromBase64url(response.proof).byteLength)
  }
  try {
    // warm-up through both paths (JIT, streams opened, LevelDB files created); not recorded
    await paced(warm, PACE, (i) => httpPay(workers[i % n].info, paymentBody(i)).then((r) => note(r.response)))
    await paced(warm, PACE, (i) => workers[i % n].call('pay', { body: paymentBody(i) }).then((r) => note(r.response)))

    for (const path of ['http', 'inprocess']) {
      const tap = histogram()
      const barrier = histogram()
      const errors = []
      const run = await paced(count, PACE, (i) => {
        const w = workers[i % n]
        return path === 'http' ? httpPay(w.info, paymentBody(i)) : w.call('pay', { body: paymentBody(i) })
      })
      for (const r of run.results) {
        if (!r.ok) {
          errors.push(r.e)
          continue
        }
        note(r.v.response)
        recordMs(tap, r.v.ms)
        if (r.v.response.barrier !== undefined) recordMs(barrier, r.v.response.barrier.ms)
      }
      out[path] = {
        tapToDecisionMs: summary(tap),
        barrierMs: summary(barrier),
        errors: errors.length,
        ...(errors.length > 0 ? { firstError: errors[0] } : {}),
      }
    }
    // the physical floor, in the same run, between two of these processes, mesh idle
    const rtt = await workers[0].call('rtt', { peerId: workers[1].info.peerId, n: floorN, warmup: 50, size: 128 })
    const fsync = await workers[0].call('fsync', { n: floorN, warmup: 20, size: 200, dir: join(root, 'fsync-scratch') })
    out.floor = { rttMs: summary(histOf(rtt)), fsyncMs: summary(histOf(fsync)) }
    out.statuses = statuses
    out.approvals = approvals
    out.proofBytesMax = proofMax
  } finally {
    await stopAll(workers)
  }
  // ledger bytes on disk after a clean stop: each terminal stores every event of the venue
  let ledgerBytes = 0
  for (const id of ids) ledgerBytes += await dirBytes(join(root, id, 'ledger'))
  out.ledgerBytesTotal = ledgerBytes
  out.ledgerBytesPerApprovalPerTerminal = approvals > 0 ? Math.round(ledgerBytes / n / approvals) : null
  await removeDir(root)
  return out
}

async function figureBarrier() {
  const sizes = [3, 5, 8]
  const runs = []
  for (const n of sizes) {
    say(`  barrier: ${n} terminals…`)
    try {
      runs.push(await barrierRun(n))
    } catch (err) {
      runs.push({ terminals: n, error: String(err?.message ?? err) })
      say(`  barrier: ${n} terminals failed: ${err?.message ?? err}`)
    }
  }
  const count = QUICK ? 60 : 200
  results.figures.barrier = {
    figure: 1,
    title: 'Barrier latency (tap → offline decision)',
    unit: 'ms',
    method:
      `each terminal its own process (scripts/bench/worker.js = createTerminal + IPC), static discovery on 127.0.0.1; ` +
      `${count} payments per path per size, fresh card each, paced open-loop at ${PACE}/s round-robin over the terminals, ` +
      `after 20 warm-up payments per path (not recorded). http = POST /v1/payments timed by the client (keep-alive fetch); ` +
      `inprocess = terminal.pay() timed inside the terminal process. barrierMs = the terminal's own barrier.ms ` +
      `(mesh.authorize: reservation → quorum → durable commit). Percentiles: hdr-histogram-js, µs resolution, 3 significant digits.`,
    runs,
  }
  const floors = runs.filter((r) => r.floor !== undefined)
  results.figures.floor = {
    figure: 2,
    title: 'Physical floor: reused-stream libp2p RTT + LevelDB sync put',
    unit: 'ms',
    method:
      `in each barrier run, after the load: ${QUICK ? 300 : 1000} sequential 128-byte request/response round trips on ONE ` +
      `reused libp2p stream (raw echo protocol registered on the terminals' own libp2p nodes: TCP+pnet+Noise+Yamux) ` +
      `from T1 to T2 after 50 warm-up; ${QUICK ? 300 : 1000} sequential LevelDB put(200 B, {sync:true}) in T1's process after 20 warm-up. ` +
      `ratio = barrier p50 ÷ (RTT p50 + fsync p50), for the in-process and HTTP tap→decision p50.`,
    runs: floors.map((r) => {
      const floor = r.floor.rttMs.p50 + r.floor.fsyncMs.p50
      return {
        terminals: r.terminals,
        rttMs: r.floor.rttMs,
        fsyncMs: r.floor.fsyncMs,
        floorP50Ms: round(floor),
        ratioInprocess: round(r.inprocess.tapToDecisionMs.p50 / floor),
        ratioHttp: round(r.http.tapToDecisionMs.p50 / floor),
        ratioBarrierField: r.inprocess.barrierMs.p50 === null ? null : round(r.inprocess.barrierMs.p50 / floor),
      }
    }),
  }
  results.figures.sizes = {
    figure: 8,
    title: 'Proof size and ledger bytes per approval',
    unit: 'bytes',
    method:
      'max decoded proof size over every answer of the barrier runs; ledger bytes = size of each terminal\'s ledger/ ' +
      'directory (LevelDB files, after a clean stop, no compaction forced) ÷ terminals ÷ approvals made in the venue ' +
      '(every terminal stores every event: its own and its peers\')',
    proofBytesMax: Math.max(0, ...runs.map((r) => r.proofBytesMax ?? 0)),
    ledgerBytesPerApproval: Object.fromEntries(
      runs.filter((r) => r.ledgerBytesPerApprovalPerTerminal != null).map((r) => [r.terminals, r.ledgerBytesPerApprovalPerTerminal]),
    ),
  }
  const five = runs.find((r) => r.terminals === 5 && r.inprocess !== undefined)
  const fiveFloor = results.figures.floor.runs.find((r) => r.terminals === 5)
  if (five !== undefined) {
    const g = five.inprocess.tapToDecisionMs
    const h = five.http.tapToDecisionMs
    results.goals.barrierP50 = goal('barrier p50 ≤ 5 ms at 5 terminals (in-process / http)', `${g.p50} / ${h.p50} ms`, g.p50 <= 5 && h.p50 <= 5)
    results.goals.barrierP99 = goal('barrier p99 ≤ 25 ms at 5 terminals (in-process / http)', `${g.p99} / ${h.p99} ms`, g.p99 <= 25 && h.p99 <= 25)
  }
  if (fiveFloor !== undefined)
    results.goals.floorRatio = goal(
      'barrier p50 ≤ 4 × (RTT + fsync) at 5 terminals (in-process / http)',
      `${fiveFloor.ratioInprocess}× / ${fiveFloor.ratioHttp}×`,
      fiveFloor.ratioInprocess <= 4 && fiveFloor.ratioHttp <= 4,
    )
  results.goals.proof = goal('proof ≤ 90 bytes', `${results.figures.sizes.proofBytesMax} B`, results.figures.sizes.proofBytesMax <= 90)
}

function round(x, d = 2) {
  return x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 10 ** d) / 10 ** d
}

function goal(text, value, met) {
  return { goal: text, value, met }
}

// ───────────────────────── table ─────────────────────────

function fmt(s) {
  if (s === undefined || s === null) return '—'
  if (typeof s === 'object') return `${s.p50} / ${s.p99} / ${s.max}`
  return String(s)
}

function table() {
  const lines = []
  const f = results.figures
  lines.push(`nullmesh bench — ${results.machine.nproc} cores, ${results.machine.memTotalGiB} GiB, node ${results.machine.node}${QUICK ? ' (quick)' : ''}`)
  if (f.barrier !== undefined) {
    lines.push('', `1. Barrier latency, tap → offline decision, ms p50 / p99 / max (paced ${PACE}/s)`)
    lines.push('   terminals | in-process               | HTTP API                 | barrier.ms (in-proc)')
    for (const r of f.barrier.runs) {
      if (r.error) {
        lines.push(`   ${String(r.terminals).padEnd(9)} | failed: ${r.error.slice(0, 100)}`)
        continue
      }
      lines.push(
        `   ${String(r.terminals).padEnd(9)} | ${fmt(r.inprocess.tapToDecisionMs).padEnd(24)} | ${fmt(r.http.tapToDecisionMs).padEnd(24)} | ${fmt(r.inprocess.barrierMs)}`,
      )
    }
  }
  if (f.floor !== undefined) {
    lines.push('', '2. Physical floor (same run), ms p50 / p99 / max; ratio = tap→decision p50 ÷ (RTT p50 + fsync p50)')
    lines.push('   terminals | RTT reused stream     | LevelDB sync put      | floor p50 | ratio in-proc | ratio HTTP')
    for (const r of f.floor.runs)
      lines.push(
        `   ${String(r.terminals).padEnd(9)} | ${fmt(r.rttMs).padEnd(21)} | ${fmt(r.fsyncMs).padEnd(21)} | ${String(r.floorP50Ms).padEnd(9)} | ${String(r.ratioInprocess).padEnd(13)} | ${r.ratioHttp}`,
      )
  }
  for (const key of ['redis', 'throughput', 'catchup', 'heal', 'ingest', 'sizes', 'memory', 'safety']) {
    const x = f[key]
    if (x === undefined || x.lines === undefined) continue
    lines.push('', `${x.figure}. ${x.title}`)
    for (const l of x.lines) lines.push(`   ${l}`)
  }
  if (f.sizes !== undefined && f.sizes.lines === undefined) {
    lines.push('', '8. Sizes')
    lines.push(`   proof max ${f.sizes.proofBytesMax} B; ledger bytes per approval per terminal: ${JSON.stringify(f.sizes.ledgerBytesPerApproval)}`)
  }
  lines.push('', 'Goals (not gates):')
  for (const g of Object.values(results.goals))
    lines.push(`   [${g.met === null ? 'skip' : g.met ? ' met' : 'MISS'}] ${g.goal}: ${g.value}`)
  return lines.join('\n')
}

// ───────────────────────── main ─────────────────────────

const FIGURES = [
  [1, 'barrier latency + floor + sizes (figures 1, 2, 8)', figureBarrier],
]

async function main() {
  const t0 = Date.now()
  for (const [n, name, fn] of FIGURES) {
    if (ONLY !== undefined && !ONLY.has(n)) continue
    say(`figure ${name}…`)
    const t = Date.now()
    try {
      await fn()
    } catch (err) {
      say(`  failed: ${err?.stack ?? err}`)
      results.figures[`error${n}`] = String(err?.message ?? err)
    }
    say(`  (${((Date.now() - t) / 1000).toFixed(1)} s)`)
    await saveResults()
  }
  results.durationS = Math.round((Date.now() - t0) / 1000)
  await saveResults()
  process.stdout.write(`${table()}\n`)
  if (JSON_OUT) process.stdout.write(`${JSON.stringify(results)}\n`)
}

main().then(
  () => process.exit(0),
  (err) => {
    say(err?.stack ?? String(err))
    process.exit(1)
  },
)
