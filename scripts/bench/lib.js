// Shared helpers for scripts/bench.js: histograms, worker processes, venues, pacing.
import { fork, spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import hdr from 'hdr-histogram-js'

export const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url))
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** Histogram in microseconds (1 µs .. 10 min, 3 significant digits); values reported in ms. */
export function histogram() {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  })
}

export function recordMs(h, ms) {
  h.recordValue(Math.max(1, Math.round(ms * 1000)))
}

const r3 = (x) => Math.round(x * 1000) / 1000

/** p50/p99/max (ms) of a histogram built with histogram() */
export function summary(h) {
  if (h.totalCount === 0) return { count: 0, p50: null, p99: null, max: null }
  return {
    count: h.totalCount,
    p50: r3(h.getValueAtPercentile(50) / 1000),
    p99: r3(h.getValueAtPercentile(99) / 1000),
    max: r3(h.maxValue / 1000),
  }
}

export function histOf(samplesMs) {
  const h = histogram()
  for (const s of samplesMs) recordMs(h, s)
  return h
}

export async function tempRoot(label) {
  return mkdtemp(join(tmpdir(), `nullmesh-bench-${label}-`))
}

export async function removeDir(dir) {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 }).catch(() => {})
}

export async function dirBytes(dir) {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) total += await dirBytes(p)
    else total += (await stat(p).catch(() => ({ size: 0 }))).size
  }
  return total
}

/** Generous limits: the benchmark measures latency, not the policy's caps (except figure 10). */
export const BENCH_POLICY = {
  currencies: {
    EUR: {
      floorLimitMinor: 5_000,
      cardCapMinor: 15_000,
      deviceCapMinor: 1_000_000_000,
      venueCapMinor: 1_000_000_000,
    },
  },
  deviceMaxQueued: 10_000_000,
}

/** A terminal (or helper) in its own process, driven over IPC. */
export class Worker {
  constructor(name, init, logFile) {
    this.name = name
    this.nextId = 1
    this.pending = new Map()
    this.exited = false
    // BENCH_CPU_PROF=<dir>: every worker writes a V8 CPU profile there when it exits
    if (process.env.BENCH_CPU_PROF)
      init = {
        ...init,
        execArgv: [...(init.execArgv ?? []), '--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`],
      }
    this.child =
      init.netns === undefined
        ? fork(WORKER, [JSON.stringify(init)], {
            stdio: [
              'ignore',
              'ignore',
              logFile === undefined && !process.env.BENCH_LOG_DIR ? 'ignore' : 'pipe',
              'ipc',
            ],
            env: { ...process.env },
            cwd: ROOT,
            serialization: 'advanced',
            execArgv: init.execArgv ?? [],
          })
        : // inside a network namespace: `ip netns exec` keeps the IPC channel's file descriptor
          spawn(
            'ip',
            [
              'netns',
              'exec',
              init.netns,
              process.execPath,
              ...(init.execArgv ?? []),
              WORKER,
              JSON.stringify(init),
            ],
            {
              stdio: [
                'ignore',
                'ignore',
                logFile === undefined && !process.env.BENCH_LOG_DIR ? 'ignore' : 'pipe',
                'ipc',
              ],
              env: { ...process.env },
              cwd: ROOT,
              serialization: 'advanced',
            },
          )
    this.stderr = ''
    this.child.stderr?.on('data', (d) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000)
    })
    // BENCH_LOG_DIR=<dir>: each worker's stderr (e.g. DEBUG=nullmesh:* logs) goes to <dir>/<name>-<pid>.log
    if (process.env.BENCH_LOG_DIR && this.child.stderr)
      this.child.stderr.pipe(
        createWriteStream(join(process.env.BENCH_LOG_DIR, `${name}-${this.child.pid}.log`), { flags: 'a' }),
      )
    this.ready = new Promise((resolve, reject) => {
      this.child.on('message', (m) => {
        if (m.ready) resolve(m)
        else if (m.error && m.id === undefined) reject(new Error(`${name}: ${m.error}`))
        else {
          const p = this.pending.get(m.id)
          if (p === undefined) return
          this.pending.delete(m.id)
          if (m.error !== undefined) p.reject(new Error(`${name}: ${m.error}`))
          else p.resolve(m.result)
        }
      })
      this.child.on('exit', (code, signal) => {
        this.exited = true
        const err = new Error(`${name} exited (${code ?? signal}) ${this.stderr.slice(-800)}`)
        reject(err)
        for (const p of this.pending.values()) p.reject(err)
        this.pending.clear()
      })
    })
    this.ready.catch(() => {})
  }

  call(cmd, args = {}) {
    if (this.exited) return Promise.reject(new Error(`${this.name} is not running`))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.child.send({ id, cmd, args })
    })
  }

  async stop(timeoutMs = 10_000) {
    if (this.exited) return
    const done = new Promise((resolve) => this.child.once('exit', resolve))
    this.call('stop').catch(() => {})
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs)
    await done
    clearTimeout(t)
  }

  kill() {
    if (!this.exited) this.child.kill('SIGKILL')
  }
}

/**
 * Start `ids` as terminal processes one after the other, each given the earlier ones as static
 * peers (as the sim does), then wait until every one is in quorum mode with all peers ready.
 */
export async function startMesh({ venueDir, root, ids, mode = 'mesh', api = true, extra = {} }) {
  const workers = []
  const peers = []
  try {
    for (const id of ids) {
      const w = new Worker(id, {
        kind: 'terminal',
        venueDir,
        id,
        dataDir: join(root, id),
        peers: [...peers],
        mode,
        api,
        ...extra,
      })
      workers.push(w)
      const ready = await w.ready
      w.info = ready
      peers.push(ready.addr)
    }
    await waitFormed(workers, ids.length - 1)
    return workers
  } catch (err) {
    await Promise.all(workers.map((w) => w.stop().catch(() => w.kill())))
    throw err
  }
}

export async function waitFormed(workers, wantPeers, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const st = await Promise.all(workers.map((w) => w.call('status')))
    if (st.every((s) => s.mesh.mode === 'quorum' && s.mesh.peers >= wantPeers)) return st
    if (Date.now() > deadline)
      throw new Error(`mesh did not form: ${st.map((s) => `${s.mesh.mode}/${s.mesh.peers}`).join(' ')}`)
    await sleep(100)
  }
}

export async function stopAll(workers) {
  await Promise.all(workers.map((w) => w.stop().catch(() => w.kill())))
}

/**
 * Paced load: calls fn(i) at `rate` per second (open loop: a slow answer does not delay the next
 * send), waits for all, returns the results and the achieved duration.
 */
export async function paced(count, rate, fn) {
  const t0 = performance.now()
  const all = []
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * 1000) / rate
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    all.push(
      fn(i).then(
        (v) => ({ ok: true, v }),
        (e) => ({ ok: false, e: e instanceof Error ? e.message : String(e) }),
      ),
    )
  }
  const sendMs = performance.now() - t0
  const results = await Promise.all(all)
  return { results, sendMs, totalMs: performance.now() - t0 }
}

let cardSeq = 0
/** A fresh card token (PAN-shaped), so no card cap interferes with latency figures. */
export function freshCard(prefix = '4111') {
  cardSeq++
  const body = `${Date.now() % 1e7}${String(cardSeq).padStart(5, '0')}`
  return `${prefix}${body}`.padEnd(16, '7').slice(0, 16)
}

export function paymentBody(i, opts = {}) {
  return {
    idempotencyKey:
      opts.key ?? `bench-${process.pid}-${Date.now()}-${i}-${Math.random().toString(36).slice(2)}`,
    cardToken: opts.card ?? freshCard(),
    amountMinor: opts.amountMinor ?? 1_250,
    currency: 'EUR',
    method: 'contactless',
    ...(opts.credentialCounter === undefined ? {} : { credentialCounter: opts.credentialCounter }),
    offlineBehavior: 'force_offline',
  }
}

/** POST /v1/payments through the local HTTP API, timing tap → answer on this side. */
export async function httpPay(info, body) {
  const t0 = performance.now()
  const r = await fetch(`${info.api}/v1/payments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${info.token}` },
    body: JSON.stringify(body),
  })
  const json = await r.json()
  const ms = performance.now() - t0
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${JSON.stringify(json).slice(0, 200)}`)
  return { ms, response: json }
}
