// Central's SQL store: throughput of the store alone (no signature checks) and of full ingest
// (verify + dedup + store), on PostgreSQL (--pg URL, or $NULLMESH_TEST_PG) and on embedded PGlite,
// with one and two central processes on PostgreSQL. Prints one JSON object; never part of the tests.
//
//   npm run build && node scripts/bench/central-store.js --pg postgres://user@host/db [--events 100000] [--full 20000]
//
// The database named is used to create (and drop) one scratch database per run.
import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createCentralService, createSqlStore } from '@nullmesh/central'
import { createVenueBundle } from '@nullmesh/policy'
import pg from 'pg'
import { generateEvents } from './events.js'

const { values: args } = parseArgs({
  options: {
    pg: { type: 'string' },
    events: { type: 'string', default: '100000' },
    full: { type: 'string', default: '20000' },
    child: { type: 'boolean', default: false },
  },
})
const say = (m) => process.stderr.write(`${m}\n`)
const hex = (n) => randomBytes(n).toString('hex')

// ── child mode: one central process ingesting the wire batches it is sent ──
if (args.child) {
  process.on('message', async (m) => {
    if (m.kind === 'start') {
      const { loadVenueBundle } = await import('@nullmesh/policy')
      const central = createCentralService({
        storeUrl: m.url,
        venues: [await loadVenueBundle(m.venueDir)],
        settleIntervalMs: 0,
      })
      await central.start()
      process.send({ kind: 'ready' })
      process.once('message', async (go) => {
        const t0 = performance.now()
        let stored = 0
        for (const b of go.batches) {
          const r = await central.ingest(b.map((s) => Buffer.from(s, 'base64url')))
          stored += r.results.filter((x) => x.status === 'stored').length
        }
        const ms = performance.now() - t0
        await central.stop()
        process.send({ kind: 'done', stored, ms })
      })
    }
  })
} else {
  await main()
}

async function scratchDb(base) {
  const name = `nullmesh_bench_${hex(4)}`
  const admin = new pg.Client({ connectionString: base })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const url = new URL(base)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: base })
      await c.connect()
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await c.end()
    },
  }
}

/** The writes one ingest batch of `pairs` Reservation+Commit pairs makes (what Engine.ingest applies). */
function ingestOps(pairs, origin, firstSeq, now) {
  const ops = []
  for (let i = 0; i < pairs; i++) {
    const seq = firstSeq + 2 * i
    const paymentId = hex(32)
    const event = (s, type, id) => ({
      id,
      origin,
      seq: s,
      venue: 'bench',
      type,
      bytes: 'x'.repeat(300),
      receivedAt: now,
    })
    ops.push({ op: 'putEvent', event: event(seq, 'reservation', paymentId) })
    ops.push({ op: 'putEvent', event: event(seq + 1, 'commit', hex(32)) })
    const nullifier = hex(32)
    ops.push({ op: 'claimNullifier', nullifier, paymentId })
    ops.push({
      op: 'putPayment',
      payment: {
        paymentId,
        venue: 'bench',
        origin,
        seq,
        nullifier,
        cardKey: hex(16),
        amountMinor: 1250,
        currency: 'EUR',
        method: 'contactless',
        policyVersion: 1,
        queuedAt: now,
        status: 'queued',
        mode: 'quorum',
        commitId: hex(32),
        flags: [],
        createdAt: now,
        updatedAt: now,
      },
    })
  }
  return ops
}

async function storeThroughput(store, events) {
  await store.open()
  const origin = hex(32)
  const now = Date.now()
  const pairsPerBatch = 250 // 500 events, MAX_SYNC_EVENTS
  const t0 = performance.now()
  let n = 0
  for (let seq = 1; n < events; seq += 2 * pairsPerBatch) {
    await store.apply(ingestOps(pairsPerBatch, origin, seq, now))
    n += 2 * pairsPerBatch
  }
  const ms = performance.now() - t0
  const count = await store.countEvents()
  await store.close()
  return { events: n, stored: count, ms: Math.round(ms), eventsPerSecond: Math.round(n / (ms / 1000)) }
}

async function main() {
  const base = args.pg ?? process.env.NULLMESH_TEST_PG
  const events = Number(args.events)
  const full = Number(args.full)
  const out = {
    machine: { cpus: (await import('node:os')).cpus().length, load: (await import('node:os')).loadavg() },
    store: {},
    ingest: {},
  }
  const root = await mkdtemp(join(tmpdir(), 'nullmesh-bench-store-'))
  const drops = []
  try {
    // ── the store alone ──
    if (base !== undefined) {
      const db = await scratchDb(base)
      drops.push(db.drop)
      say(`store alone on PostgreSQL: ${events} events…`)
      out.store.postgres = await storeThroughput(createSqlStore({ kind: 'postgres', url: db.url }), events)
      say(`  ${JSON.stringify(out.store.postgres)}`)
    }
    say(`store alone on PGlite: ${events} events…`)
    out.store.pglite = await storeThroughput(
      createSqlStore({ kind: 'pglite', path: join(root, 'pglite') }),
      events,
    )
    say(`  ${JSON.stringify(out.store.pglite)}`)

    // ── full ingest: verify, dedup, store ──
    const venueDir = join(root, 'venue')
    const bundle = await createVenueBundle({ outDir: venueDir, terminals: 5, venueId: 'bench-ingest' })
    const origins = ['T1', 'T2', 'T3', 'T4', 'T5']
    say(`generating ${full} signed events…`)
    const { byOrigin } = await generateEvents(bundle, venueDir, origins, full / origins.length / 2, {
      tag: hex(4),
    })
    const wire = origins.flatMap((o) =>
      byOrigin.get(o).map((e) => Buffer.from(e.bytes).toString('base64url')),
    )
    const batches = []
    for (let i = 0; i < wire.length; i += 500) batches.push(wire.slice(i, i + 500))

    const inProcess = async (init, label) => {
      const central = createCentralService({ ...init, venues: [bundle], settleIntervalMs: 0 })
      await central.start()
      const t0 = performance.now()
      let stored = 0
      for (const b of batches) {
        const r = await central.ingest(b.map((s) => Buffer.from(s, 'base64url')))
        stored += r.results.filter((x) => x.status === 'stored').length
      }
      const ms = performance.now() - t0
      await central.stop()
      out.ingest[label] = {
        events: wire.length,
        stored,
        ms: Math.round(ms),
        eventsPerSecond: Math.round(stored / (ms / 1000)),
      }
      say(`  ${label}: ${JSON.stringify(out.ingest[label])}`)
    }
    say('full ingest, one process, PGlite…')
    await inProcess({ dataDir: join(root, 'c1') }, 'pgliteOneProcess')
    if (base !== undefined) {
      const db1 = await scratchDb(base)
      drops.push(db1.drop)
      say('full ingest, one process, PostgreSQL…')
      await inProcess({ storeUrl: db1.url }, 'postgresOneProcess')

      // two processes, each ingesting half of the ledgers (disjoint origins), on one database
      const db2 = await scratchDb(base)
      drops.push(db2.drop)
      say('full ingest, two processes, PostgreSQL…')
      const self = fileURLToPath(import.meta.url)
      const kids = [0, 1].map(() =>
        fork(self, ['--child'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }),
      )
      const once = (k, kind) => new Promise((r) => k.on('message', (m) => m.kind === kind && r(m)))
      // the schema is migrated once before both start
      const pre = createSqlStore({ kind: 'postgres', url: db2.url })
      await pre.open()
      await pre.close()
      const ready = kids.map((k) => once(k, 'ready'))
      for (const k of kids) k.send({ kind: 'start', url: db2.url, venueDir })
      await Promise.all(ready)
      const halves = [batches.filter((_, i) => i % 2 === 0), batches.filter((_, i) => i % 2 === 1)]
      const done = kids.map((k) => once(k, 'done'))
      const t0 = performance.now()
      for (const [i, k] of kids.entries()) k.send({ kind: 'go', batches: halves[i] })
      const results = await Promise.all(done)
      const ms = performance.now() - t0
      const stored = results.reduce((s, r) => s + r.stored, 0)
      out.ingest.postgresTwoProcesses = {
        events: wire.length,
        stored,
        ms: Math.round(ms),
        eventsPerSecond: Math.round(stored / (ms / 1000)),
        perProcess: results.map((r) => ({ stored: r.stored, ms: Math.round(r.ms) })),
      }
      say(`  postgresTwoProcesses: ${JSON.stringify(out.ingest.postgresTwoProcesses)}`)
      for (const k of kids) k.kill()
    }
  } finally {
    for (const d of drops) await d().catch(() => {})
    await rm(root, { recursive: true, force: true })
  }
  console.log(JSON.stringify(out))
}
