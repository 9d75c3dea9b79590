// Figure 9 alone (start-up and RSS with a big ledger), for before/after of one change:
// node scripts/bench/startup.js [events=100000] [cacheDir]
// Generates the same events as figure 7 (5 origins of Reservation + quorum Commit pairs) once into
// cacheDir (kept, so later runs reuse it), then starts a terminal on a copy of that ledger, like
// figure 9: start time, and RSS / heap 2 s after start and a forced GC. BENCH_CPU_PROF=<dir> profiles it.
import '@nullmesh/protocol/shim'
import { existsSync } from 'node:fs'
import { cp, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createVenueBundle } from '@nullmesh/policy'
import { BENCH_POLICY, removeDir, tempRoot, Worker } from './lib.js'

const total = Number(process.argv[2] ?? 100_000)
const cache = process.argv[3] ?? join(process.env.TMPDIR ?? '/tmp', `nullmesh-startup-${total}`)
const origins = ['T1', 'T2', 'T3', 'T4', 'T5']
const venueDir = join(cache, 'venue')
const ledgerDir = join(cache, 'M1', 'ledger')

if (!existsSync(join(cache, 'done'))) {
  await removeDir(cache)
  await mkdir(cache, { recursive: true })
  await createVenueBundle({ outDir: venueDir, terminals: 5, venueId: 'bench-ingest', policy: BENCH_POLICY })
  const out = {}
  const groups = [origins.filter((_, i) => i % 2 === 0), origins.filter((_, i) => i % 2 === 1)]
  await Promise.all(
    groups.map(async (g, k) => {
      const w = new Worker(`gen-${k}`, { kind: 'gen' })
      try {
        await w.ready
        Object.assign(
          out,
          await w.call('generate', {
            venueDir,
            origins: g,
            pairs: total / origins.length / 2,
            tag: 'ingest',
          }),
        )
      } finally {
        await w.stop()
      }
    }),
  )
  const w = new Worker('prefill', { kind: 'gen' })
  try {
    await w.ready
    await w.call('prefill', { path: ledgerDir, events: origins.flatMap((o) => out[o] ?? []) })
  } finally {
    await w.stop()
  }
  await mkdir(join(cache, 'done'))
}

const root = await tempRoot('startup')
try {
  await cp(join(cache, 'M1'), join(root, 'M1'), { recursive: true })
  const full = new Worker('full', {
    kind: 'terminal',
    venueDir,
    id: 'T1',
    dataDir: join(root, 'M1'),
    peers: [],
    execArgv: ['--expose-gc'],
  })
  try {
    const fi = await full.ready
    await new Promise((r) => setTimeout(r, 2000))
    const rf = await full.call('rss')
    const ev = await full.call('events')
    const mib = (b) => Math.round((b / 2 ** 20) * 10) / 10
    console.log(
      JSON.stringify({
        events: ev,
        startMs: Math.round(fi.startMs),
        startCpuMs: Math.round(fi.startCpuMs),
        rssMiB: mib(rf.rss),
        heapUsedMiB: mib(rf.heapUsed),
        heapTotalMiB: mib(rf.heapTotal),
        externalMiB: mib(rf.external),
        arrayBuffersMiB: mib(rf.arrayBuffers),
      }),
    )
  } finally {
    await full.stop()
  }
} finally {
  await removeDir(root)
}
