// One benchmark process: a nullmesh terminal (its own process, like `nullmesh terminal`), driven
// by scripts/bench.js over IPC. It also answers a raw echo protocol on the terminal's own libp2p
// node (the physical floor: one reused stream, request/response), measures LevelDB sync puts,
// and reports its RSS.
import '@nullmesh/protocol/shim'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const init = JSON.parse(process.argv[2] ?? '{}')
const ECHO = '/nullmesh-bench/echo/1.0.0'

let terminal
const modeLog = []
let redis
let redisSha
let framedStats = { frames: 0, bytes: 0 }

function reply(id, result) {
  process.send?.({ id, result })
}
function fail(id, err) {
  process.send?.({ id, error: err instanceof Error ? `${err.message}\n${err.stack}` : String(err) })
}

/** The terminal's libp2p node (a private field of the mesh node; reached at runtime for the floor). */
function libp2pOf(t) {
  const node = t.mesh.libp2p
  if (node === undefined) throw new Error('no libp2p node')
  return node
}

async function countFrames() {
  // wrap the mesh's framing so catch-up frames sent by this process can be counted
  const url = pathToFileURL(join(process.cwd(), 'packages/mesh/dist/framing.js')).href
  const { FramedStream } = await import(url)
  const send = FramedStream.prototype.send
  FramedStream.prototype.send = function (frame) {
    framedStats.frames++
    return send.call(this, frame)
  }
}

/** fsync'd LevelDB writes issued by this process (figure 1: fsyncs per payment), always on */
const syncWrites = { n: 0 }
async function countSyncWrites() {
  const { ClassicLevel } = await import('classic-level')
  for (const m of ['_batch', '_put', '_del']) {
    const orig = ClassicLevel.prototype[m]
    if (typeof orig !== 'function') continue
    ClassicLevel.prototype[m] = function (...a) {
      if (a[a.length - 1]?.sync === true) syncWrites.n++
      return orig.apply(this, a)
    }
  }
}

async function start() {
  await countSyncWrites()
  if (init.countFrames || init.trace) await countFrames()
  if (init.trace) await installCounters()
  const { createTerminal } = await import('@nullmesh/terminal')
  await mkdir(init.dataDir, { recursive: true })
  terminal = createTerminal({
    venueDir: init.venueDir,
    id: init.id,
    dataDir: init.dataDir,
    listen: init.listen ?? ['/ip4/127.0.0.1/tcp/0'],
    api: init.api === false ? false : { host: '127.0.0.1', port: 0 },
    token: 'bench-token-0123456789',
    discovery: { mdns: false, peers: init.peers ?? [] },
    mode: init.mode ?? 'mesh',
  })
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  await terminal.start()
  const cpuStart = process.cpuUsage(cpu0)
  terminal.mesh.addEventListener('mode', (evt) => modeLog.push({ mode: evt.detail.mode, at: Date.now() }))
  const startMs = performance.now() - t0
  const node = libp2pOf(terminal)
  await node.handle(
    ECHO,
    (stream) => {
      stream.addEventListener('message', (evt) => {
        const data = evt.data.subarray ? evt.data.subarray() : evt.data
        stream.send(data)
      })
    },
    { maxInboundStreams: 4 },
  )
  if (init.trace) installTrace()
  const addrs = terminal.multiaddrs()
  const addr0 = addrs.find((a) => a.startsWith(init.addrPrefix ?? '/ip4/127.0.0.1/')) ?? addrs[0]
  const addr = addr0.includes('/p2p/') ? addr0 : `${addr0}/p2p/${terminal.peerId}`
  process.send?.({
    ready: true,
    id: init.id,
    peerId: terminal.peerId,
    addr,
    api: terminal.apiUrl,
    token: terminal.token,
    pid: process.pid,
    startMs,
    // CPU time of terminal.start() (user + system): what the start costs whatever the machine's load
    startCpuMs: (cpuStart.user + cpuStart.system) / 1000,
  })
}

// ── optional timing trace of the decision path (for finding where the time goes) ──
const traces = new Map()
function traceRecord(name, ms) {
  let t = traces.get(name)
  if (t === undefined) {
    t = []
    traces.set(name, t)
  }
  t.push(ms)
}
function wrapAsync(obj, method, nameOf) {
  const orig = obj[method]
  if (typeof orig !== 'function') return
  obj[method] = function (...args) {
    const t0 = performance.now()
    const r = orig.apply(this, args)
    if (r && typeof r.then === 'function')
      r.then(
        () => traceRecord(nameOf(args), performance.now() - t0),
        () => {},
      )
    else traceRecord(nameOf(args), performance.now() - t0)
    return r
  }
}
const ops = {}
const countOp = (name) => {
  ops[name] = (ops[name] ?? 0) + 1
}
async function installCounters() {
  // operation counts per payment: signature checks, LevelDB calls, gossip RPCs, framed messages
  const { createRequire, syncBuiltinESMExports } = await import('node:module')
  const require = createRequire(import.meta.url)
  const crypto = require('node:crypto')
  const verify = crypto.verify
  const sign = crypto.sign
  crypto.verify = (...a) => {
    countOp('ed25519.verify')
    return verify(...a)
  }
  crypto.sign = (...a) => {
    countOp('ed25519.sign')
    return sign(...a)
  }
  syncBuiltinESMExports()
  const { ClassicLevel } = await import('classic-level')
  for (const m of ['_get', '_batch', '_put', '_getMany']) {
    const orig = ClassicLevel.prototype[m]
    if (typeof orig !== 'function') continue
    ClassicLevel.prototype[m] = function (...a) {
      countOp(
        `level.${m.slice(1)}${m === '_batch' || m === '_put' ? (a[a.length - 1]?.sync ? ' sync' : ' nosync') : ''}`,
      )
      return orig.apply(this, a)
    }
  }
}
function installTrace() {
  const pubsub = terminal.mesh.libp2p?.services?.pubsub
  if (pubsub !== undefined && typeof pubsub.sendRpc === 'function') {
    const orig = pubsub.sendRpc
    pubsub.sendRpc = function (id, rpc) {
      countOp(`gossip.rpc sent (${rpc.messages?.length ? 'msg' : 'control'})`)
      return orig.call(this, id, rpc)
    }
  }
  const mesh = terminal.mesh
  const ledger = terminal.ledger
  wrapAsync(
    ledger,
    'recordEvent',
    (a) => `ledger.recordEvent ${a[0]?.event?.type} sync=${a[1]?.sync ?? true}`,
  )
  wrapAsync(ledger, 'putPayment', (a) => `ledger.putPayment sync=${a[1]?.sync ?? true}`)
  wrapAsync(mesh, 'collect', () => 'mesh.collect (origin: send → quorum of acks)')
  wrapAsync(mesh, 'answerReservation', () => 'mesh.answerReservation (peer: validate → decide → fsync → ack)')
  wrapAsync(mesh, 'authorize', () => 'mesh.authorize')
  wrapAsync(terminal, 'pay', () => 'terminal.pay')
  // event-loop delay
  import('node:perf_hooks').then(({ monitorEventLoopDelay }) => {
    const h = monitorEventLoopDelay({ resolution: 1 })
    h.enable()
    globalThis.__eld = h
  })
}
function traceSummary() {
  const out = {}
  for (const [k, v] of traces) {
    const s = [...v].sort((a, b) => a - b)
    out[k] = {
      n: s.length,
      p50: Math.round(s[Math.floor(s.length * 0.5)] * 1000) / 1000,
      p99: Math.round(s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] * 1000) / 1000,
    }
  }
  out.ops = { ...ops, 'framed.send': framedStats.frames }
  const h = globalThis.__eld
  if (h) out.eventLoopDelayMs = { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 }
  return out
}

/** n sequential request/response round trips of `size` bytes on ONE reused stream to `peerId`. */
async function rtt({ peerId, n, warmup, size }) {
  const node = libp2pOf(terminal)
  const conn = node.getConnections().find((c) => c.remotePeer.toString() === peerId)
  if (conn === undefined) throw new Error(`not connected to ${peerId}`)
  const stream = await conn.newStream(ECHO)
  let want = 0
  let got = 0
  let done
  stream.addEventListener('message', (evt) => {
    got += evt.data.byteLength
    if (got >= want && done !== undefined) {
      const d = done
      done = undefined
      d()
    }
  })
  const payload = new Uint8Array(size).fill(7)
  const samples = []
  for (let i = 0; i < warmup + n; i++) {
    got = 0
    want = size
    const t0 = performance.now()
    await new Promise((resolve) => {
      done = resolve
      stream.send(payload)
    })
    const ms = performance.now() - t0
    if (i >= warmup) samples.push(ms)
  }
  await stream.close().catch(() => stream.abort(new Error('done')))
  return samples
}

/** n sequential LevelDB puts with sync: true (200 B values) in a scratch database of this process. */
async function fsync({ n, warmup, size, dir }) {
  const { Level } = await import('level')
  const db = new Level(dir ?? join(init.dataDir, 'fsync-scratch'), { valueEncoding: 'view' })
  await db.open()
  const value = new Uint8Array(size ?? 200).fill(3)
  const samples = []
  for (let i = 0; i < warmup + n; i++) {
    const t0 = performance.now()
    await db.put(`k${i}`, value, { sync: true })
    const ms = performance.now() - t0
    if (i >= warmup) samples.push(ms)
  }
  await db.close()
  return samples
}

async function pay({ body }) {
  const t0 = performance.now()
  const response = await terminal.pay(body)
  return { ms: performance.now() - t0, response }
}

const handlers = {
  status: () => terminal.status(),
  pay,
  rtt,
  fsync,
  rss: async () => {
    globalThis.gc?.()
    // HEAP_SNAPSHOT_DIR=<dir>: also write a V8 heap snapshot (what figure 9's heap holds)
    if (process.env.HEAP_SNAPSHOT_DIR) {
      const { writeHeapSnapshot } = await import('node:v8')
      writeHeapSnapshot(`${process.env.HEAP_SNAPSHOT_DIR}/${process.pid}.heapsnapshot`)
    }
    return process.memoryUsage()
  },
  events: () => terminal.mesh.status().events,
  // first switch to `mode` at or after `since` (ms since the epoch, this machine's clock)
  waitMode: async ({ mode, since, timeoutMs }) => {
    const t0 = Date.now()
    for (;;) {
      const hit = modeLog.find((m) => m.mode === mode && m.at >= since)
      if (hit !== undefined) return hit
      if (terminal.mesh.status().mode === mode && modeLog.length === 0)
        return { mode, at: Date.now(), already: true }
      if (Date.now() - t0 > timeoutMs) return null
      await new Promise((r) => setTimeout(r, 2))
    }
  },
  frames: () => ({ ...framedStats }),
  // CPU time actually consumed (robust to the machine's load) and event-loop delay since the last call
  cpu: async () => {
    const { monitorEventLoopDelay } = await import('node:perf_hooks')
    const u = process.cpuUsage()
    const h = globalThis.__eldPhase
    const eld = h ? { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 } : null
    if (h) h.disable()
    const next = monitorEventLoopDelay({ resolution: 1 })
    next.enable()
    globalThis.__eldPhase = next
    return {
      userMs: u.user / 1000,
      systemMs: u.system / 1000,
      eventLoopDelayMs: eld,
      syncWrites: syncWrites.n,
    }
  },
  trace: () => traceSummary(),
  resetOps: () => {
    for (const k of Object.keys(ops)) delete ops[k]
    framedStats = { frames: 0, bytes: 0 }
    traces.clear()
    return true
  },
  resetFrames: () => {
    framedStats = { frames: 0, bytes: 0 }
    return true
  },
  dial: async ({ addr }) => {
    const { multiaddr } = await import('@multiformats/multiaddr')
    await libp2pOf(terminal).dial(multiaddr(addr))
    return true
  },
  waitPeers: async ({ peers, events, timeoutMs }) => {
    const t0 = performance.now()
    for (;;) {
      const s = terminal.mesh.status()
      if (s.peers >= peers && s.events >= events) return { ms: performance.now() - t0, events: s.events }
      if (performance.now() - t0 > timeoutMs) return { ms: null, events: s.events, peers: s.peers }
      await new Promise((r) => setTimeout(r, 2))
    }
  },
  // kind 'redis': the alternative a venue might pick, one client connection per process
  redisCheck: async ({ nullifier, card, amountMinor, capMinor, windowMs }) => {
    const t0 = performance.now()
    const r = await redis.command(
      'EVALSHA',
      redisSha,
      2,
      `n:${nullifier}`,
      `c:${card}`,
      amountMinor,
      capMinor,
      windowMs,
    )
    return { ms: performance.now() - t0, result: r }
  },
  // write wire events (in the order given) into a ledger directory, as a terminal would have stored them
  prefill: async ({ path, events }) => {
    const { createLedger } = await import('@nullmesh/ledger')
    const { decodeEvent } = await import('@nullmesh/protocol')
    const ledger = createLedger({ path })
    await ledger.open()
    try {
      for (let i = 0; i < events.length; i += 1000) {
        const batch = events.slice(i, i + 1000).map((b) => {
          const d = decodeEvent(new Uint8Array(b))
          if (!d.ok) throw new Error(`prefill: ${d.error.message}`)
          return d.value
        })
        await ledger.recordEvents(batch, { sync: false })
      }
    } finally {
      await ledger.close()
    }
    return events.length
  },
  // kind 'gen': signed events for the catch-up / ingest / memory figures
  generate: async ({ venueDir, origins, pairs, tag }) => {
    const { loadVenueBundle } = await import('@nullmesh/policy')
    const { generateEvents } = await import('./events.js')
    const bundle = await loadVenueBundle(venueDir)
    const { byOrigin } = await generateEvents(bundle, venueDir, origins, pairs, { tag })
    const out = {}
    for (const [id, evs] of byOrigin) out[id] = evs.map((e) => e.bytes)
    return out
  },
  waitEvents: async ({ count, timeoutMs }) => {
    const t0 = performance.now()
    for (;;) {
      const n = terminal.mesh.status().events
      if (n >= count) return { ms: performance.now() - t0, events: n }
      if (performance.now() - t0 > timeoutMs) return { ms: null, events: n }
      await new Promise((r) => setTimeout(r, 2))
    }
  },
  stop: async () => {
    await terminal?.stop()
    redis?.close()
    setTimeout(() => process.exit(0), 20)
    return true
  },
}

process.on('message', (m) => {
  const h = handlers[m.cmd]
  if (h === undefined) return fail(m.id, `unknown command ${m.cmd}`)
  Promise.resolve()
    .then(() => h(m.args ?? {}))
    .then(
      (r) => reply(m.id, r),
      (e) => fail(m.id, e),
    )
})
process.on('disconnect', () => {
  // the bench died: do not linger
  Promise.resolve(terminal?.stop())
    .catch(() => {})
    .finally(() => process.exit(0))
})

async function startRedis() {
  const { Resp, CHECK_AND_INCREMENT } = await import('./resp.js')
  redis = new Resp(init.port)
  await redis.open()
  redisSha = await redis.command('SCRIPT', 'LOAD', CHECK_AND_INCREMENT)
  process.send?.({ ready: true, pid: process.pid })
}

const starter =
  init.kind === 'redis'
    ? startRedis
    : init.kind === 'gen'
      ? async () => process.send?.({ ready: true, pid: process.pid })
      : start
starter().catch((err) => {
  process.send?.({ error: err instanceof Error ? `${err.message}\n${err.stack}` : String(err) })
  setTimeout(() => process.exit(1), 50)
})
