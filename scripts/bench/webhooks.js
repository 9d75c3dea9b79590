// Figure 11: webhook delivery — one fast endpoint, then 20 endpoints of which 5 accept connections
// and never answer; the healthy endpoints' delivery latency side by side (issue 19). Also a control
// run with the 15 healthy endpoints alone, to tell the cost of 15× the deliveries from the hung ones.
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createVenueBundle, loadTerminalKey } from '@nullmesh/policy'
import { signAck, signEvent } from '@nullmesh/protocol'
import { BENCH_POLICY, histOf, removeDir, summary, tempRoot } from './lib.js'

/** One HTTP server for many endpoints (/h/<n> answers 204 and records; /x/<n> never answers). */
async function receivers() {
  const arrivals = [] // { at, createdAt, path }
  const held = new Set()
  const server = createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      if (req.url.startsWith('/x/')) {
        held.add(res)
        res.on('close', () => held.delete(res))
        return
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      arrivals.push({ at: Date.now(), createdAt: body.createdAt, path: req.url })
      res.writeHead(204).end()
    })
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  const base = `http://127.0.0.1:${server.address().port}`
  return {
    arrivals,
    base,
    async close() {
      for (const r of held) r.destroy()
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    },
  }
}

async function payments(bundle, count) {
  const keys = await Promise.all(bundle.roster.map((r) => loadTerminalKey(bundle.dir, r.id)))
  const seqs = keys.map(() => 0)
  const out = []
  for (let i = 0; i < count; i++) {
    const t = i % keys.length
    const key = keys[t]
    const ts = Date.now()
    const reservation = signEvent(key, {
      type: 'reservation',
      venue: bundle.venueId,
      origin: key.publicKey,
      seq: ++seqs[t],
      ts,
      nullifier: randomBytes(32),
      cardKey: randomBytes(16),
      amountMinor: 1250,
      currency: 'EUR',
      method: 'contactless',
      policyVersion: bundle.policy.version,
    })
    const ackers = [key, ...keys.filter((k) => k !== key)].slice(0, 3)
    const commit = signEvent(key, {
      type: 'commit',
      venue: bundle.venueId,
      origin: key.publicKey,
      seq: ++seqs[t],
      ts,
      reservation,
      mode: 'quorum',
      acks: ackers.map((k) =>
        signAck(k, {
          venue: bundle.venueId,
          acker: k.publicKey,
          reservationId: reservation.id,
          ok: true,
          reason: '',
          ts,
        }),
      ),
    })
    out.push([reservation.bytes, commit.bytes])
  }
  return out
}

/**
 * One run: a fresh central (embedded PGlite), `healthy` endpoints that answer 204 and `hung` ones
 * that never answer, `count` payments synced at `rate` per second and settled; waits until every
 * healthy endpoint has all 3 × count events.
 */
async function run(root, bundle, { label, healthy, hung, count, rate, burst = false }, say) {
  const { createCentralService } = await import('@nullmesh/central')
  const rx = await receivers()
  const central = createCentralService({
    dataDir: join(root, `central-${label}`),
    venues: [bundle],
    adminToken: 'bench',
    settleIntervalMs: 20,
  })
  await central.start()
  try {
    for (let i = 0; i < healthy; i++) await central.addWebhook({ url: `${rx.base}/h/${i}` })
    for (let i = 0; i < hung; i++) await central.addWebhook({ url: `${rx.base}/x/${i}` })
    const load = await payments(bundle, count)
    const expected = 3 * count * healthy
    const t0 = Date.now()
    if (burst) {
      // as fast as central takes them: 50 payments per sync
      for (let i = 0; i < load.length; i += 50) await central.ingest(load.slice(i, i + 50).flat())
    } else {
      for (let i = 0; i < load.length; i++) {
        const due = t0 + (i * 1000) / rate
        if (due > Date.now()) await sleep(due - Date.now())
        await central.ingest(load[i])
      }
    }
    const deadline = Date.now() + 300_000
    while (rx.arrivals.length < expected && Date.now() < deadline) await sleep(50)
    const last = rx.arrivals.reduce((m, a) => Math.max(m, a.at), 0)
    const s = summary(histOf(rx.arrivals.map((a) => a.at - a.createdAt)))
    const seconds = (last - t0) / 1000
    const r = {
      label,
      endpoints: healthy + hung,
      hung,
      payments: count,
      paymentsPerSecond: burst ? null : rate,
      burst,
      healthyDeliveries: rx.arrivals.length,
      expected,
      seconds: Math.round(seconds * 100) / 100,
      deliveriesPerSecond: Math.round(rx.arrivals.length / seconds),
      latencyMs: { p50: s.p50, p99: s.p99, max: s.max },
    }
    say(
      `  ${label}: ${r.healthyDeliveries}/${expected} healthy deliveries in ${r.seconds} s (${r.deliveriesPerSecond}/s), latency p50 ${s.p50} ms p99 ${s.p99} ms`,
    )
    return r
  } finally {
    await central.stop()
    await rx.close()
  }
}

/** figures.webhooks */
export async function figureWebhooks({ quick, say }) {
  const root = await tempRoot('webhooks')
  try {
    const bundle = await createVenueBundle({
      outDir: join(root, 'venue'),
      terminals: 3,
      venueId: 'bench-webhooks',
      policy: BENCH_POLICY,
    })
    const count = quick ? 60 : 200
    // payments 200 ms apart, as in the measurement
    const rate = 5
    const capacity = await run(
      root,
      bundle,
      { label: 'one-burst', healthy: 1, hung: 0, count: quick ? 300 : 1000, rate, burst: true },
      say,
    )
    const one = await run(root, bundle, { label: 'one', healthy: 1, hung: 0, count, rate }, say)
    const control = await run(root, bundle, { label: 'fifteen', healthy: 15, hung: 0, count, rate }, say)
    const twenty = await run(root, bundle, { label: 'twenty', healthy: 15, hung: 5, count, rate }, say)
    return {
      figure: 11,
      title: 'Webhook delivery: one endpoint, and 20 endpoints of which 5 never answer',
      unit: 'ms',
      method:
        `${count} payments synced in-process at ${rate}/s and settled (each: queued, processing, completed = 3 events); ` +
        'endpoints are local HTTP servers answering 204, or accepting the request and never answering (central times ' +
        'out after 10 s and retries); latency = arrival at a healthy endpoint − the event’s createdAt (its transition’s ' +
        'commit); deliveries/s = healthy deliveries ÷ (last arrival − first sync). Embedded PGlite, one central process, ' +
        'receivers in the same process. Control: the 15 healthy endpoints without the 5 hung ones. Capacity: one ' +
        'endpoint, payments synced all at once (50 per sync), deliveries/s until the last arrives.',
      runs: [one, control, twenty],
      capacity,
      lines: [
        `1 endpoint, ${capacity.payments} payments synced at once: ${capacity.deliveriesPerSecond} deliveries/s (p99 ${capacity.latencyMs.p99} ms)`,
        `1 endpoint: ${one.deliveriesPerSecond} deliveries/s, p50 ${one.latencyMs.p50} ms, p99 ${one.latencyMs.p99} ms`,
        `15 healthy alone: ${control.deliveriesPerSecond} deliveries/s, p50 ${control.latencyMs.p50} ms, p99 ${control.latencyMs.p99} ms`,
        `15 healthy + 5 hung: ${twenty.deliveriesPerSecond} deliveries/s, p50 ${twenty.latencyMs.p50} ms, p99 ${twenty.latencyMs.p99} ms`,
      ],
      p99DeltaVsOneMs: Math.round((twenty.latencyMs.p99 - one.latencyMs.p99) * 1000) / 1000,
      p99DeltaVsControlMs: Math.round((twenty.latencyMs.p99 - control.latencyMs.p99) * 1000) / 1000,
    }
  } finally {
    await removeDir(root)
  }
}
