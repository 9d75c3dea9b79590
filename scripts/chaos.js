#!/usr/bin/env node
// Chaos run: a venue in Linux network namespaces (scripts/netns-mesh.sh, real mDNS), a seeded
// schedule of faults (cable cuts, partitions, packet loss, delay, SIGKILL + restart, central
// offline) while payments flow through the terminals' APIs (ordinary ones, double taps of one card
// credential at several terminals, replays of a credential, idempotent retries); then everything is
// healed, sync is given time to finish, and the product's promises are checked from central and
// from every terminal's ledger:
//   lost == 0                 every payment a client saw approved is at central (committed)
//   duplicateSettlements == 0 no card credential (nullifier) settled twice
//   overCapInQuorum == 0      no card over its offline cap among approvals made with a quorum
//   isolatedExposureMinor <= exposureBoundMinor   isolated-mode approvals within the reported bound
//   rejoined == terminals     every terminal back in the quorum with every peer and a full ledger
//
//   npm run chaos -- --terminals 5 --duration 60 [--seed S] [--rate 4] [--json] [--keep]
//
// Root only (network namespaces). The seed is printed; `--seed` replays the same schedule and load.
// Exit: 0 ok · 1 the run failed · 2 cannot run here (not root / no namespaces) · 3 an invariant failed.
//
// How it runs: this process (root namespace) brings the mesh up, then runs itself again with
// --inner inside the mesh's control namespace (the only place the APIs are reachable from), which
// drives load and faults and writes what it saw to a file; back here it stops the mesh (`down`),
// reads the ledgers and judges. `down` also runs when anything fails.
import '@nullmesh/protocol/shim'
import { execFile, execFileSync, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const HERE = dirname(fileURLToPath(import.meta.url))
const REPO = resolve(HERE, '..')
const SCRIPT = join(HERE, 'netns-mesh.sh')
const CLI = join(REPO, 'packages/cli/dist/bin.js')

const { values: args } = parseArgs({
  options: {
    terminals: { type: 'string', short: 't', default: '5' },
    'group-size': { type: 'string' },
    duration: { type: 'string', short: 'd', default: '60' },
    seed: { type: 'string' },
    rate: { type: 'string', default: '4' },
    cards: { type: 'string' },
    'settle-timeout': { type: 'string', default: '90' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
    inner: { type: 'boolean', default: false },
    state: { type: 'string' },
    judge: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  allowPositionals: false,
})

if (args.help) {
  process.stdout.write(
    'usage: npm run chaos -- --terminals 5 --duration 60 [--group-size G] [--seed S] [--rate PAYMENTS_PER_S] [--cards N] [--settle-timeout S] [--json] [--keep]\n',
  )
  process.exit(0)
}

const opts = {
  terminals: int(args.terminals, 'terminals', 3, 16),
  // custodian group size (odd); below --terminals, each card has its own group of terminals
  groupSize: args['group-size'] === undefined ? undefined : int(args['group-size'], 'group-size', 1, 127),
  durationS: int(args.duration, 'duration', 5, 3600),
  seed: args.seed ?? String(randomBytes(4).readUInt32BE(0)),
  rate: Number(args.rate),
  cards: args.cards === undefined ? undefined : int(args.cards, 'cards', 1, 10_000),
  settleTimeoutS: int(args['settle-timeout'], 'settle-timeout', 5, 3600),
  json: args.json,
  keep: args.keep,
  quiet: args.quiet,
}
if (!(opts.rate > 0 && opts.rate <= 100)) fail(2, '--rate must be in (0, 100]')
if (opts.groupSize !== undefined && opts.groupSize % 2 === 0) fail(2, '--group-size must be odd')
opts.cards ??= opts.terminals * 8

function int(v, name, min, max) {
  const n = Number(v)
  if (!Number.isInteger(n) || n < min || n > max) fail(2, `--${name} must be an integer in ${min}..${max}`)
  return n
}

function fail(code, msg) {
  process.stderr.write(`chaos: ${msg}\n`)
  process.exit(code)
}

function say(msg) {
  if (!opts.quiet) process.stderr.write(`chaos: ${msg}\n`)
}

function runFile(file, argv, env, timeoutMs = 120_000) {
  return new Promise((done) => {
    execFile(file, argv, { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

// ── a small seeded PRNG (sfc32 over a hash of the seed): the same seed, the same run ──────────

class Rng {
  constructor(seed) {
    const h = createHash('sha256').update(`nullmesh-chaos/${seed}`).digest()
    this.s = [h.readUInt32LE(0), h.readUInt32LE(4), h.readUInt32LE(8), h.readUInt32LE(12)]
    for (let i = 0; i < 16; i++) this.next()
  }
  next() {
    let [a, b, c, d] = this.s
    const t = (((a + b) | 0) + d) | 0
    d = (d + 1) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) | 0
    this.s = [a, b, c, d]
    return (t >>> 0) / 4294967296
  }
  int(min, max) {
    return min + Math.floor(this.next() * (max - min + 1))
  }
  chance(p) {
    return this.next() < p
  }
  pick(xs) {
    return xs[Math.floor(this.next() * xs.length)]
  }
  shuffle(xs) {
    const a = [...xs]
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1))
      ;[a[i], a[j]] = [a[j], a[i]]
    }
    return a
  }
}

/**
 * The fault schedule: faults start after 2 s and are all undone by 85 % of the duration; at most
 * two at a time, at most one terminal killed at a time. Each fault is a pair of steps (do, undo).
 */
function makeSchedule(rng, n, durationMs) {
  const steps = []
  const end = Math.floor(durationMs * 0.85)
  const busy = [] // [from, to, kind, terminal]
  const overlapping = (from, to) => busy.filter((b) => b[0] < to && from < b[1])
  const KINDS = ['cut', 'partition', 'kill', 'offline', 'loss', 'delay']
  const deck = []
  let t = 2_000
  while (t < end - 2_000) {
    const len = rng.int(2_000, Math.min(9_000, end - t))
    const from = t
    const to = t + len
    const over = overlapping(from, to)
    if (over.length < 2) {
      // kinds come from a shuffled deck, so even a short run sees each kind of fault
      if (deck.length === 0) deck.push(...rng.shuffle(KINDS))
      const kind = deck[deck.length - 1]
      const usedT = new Set(over.map((b) => b[3]).filter((x) => x !== undefined))
      const candidates = Array.from({ length: n }, (_, i) => i + 1).filter((i) => !usedT.has(i))
      const ok =
        candidates.length > 0 &&
        !(kind === 'partition' && over.some((b) => b[2] === 'partition')) &&
        !(kind === 'offline' && over.some((b) => b[2] === 'offline')) &&
        !(kind === 'kill' && over.some((b) => b[2] === 'kill'))
      if (ok) {
        deck.pop()
        const i = rng.pick(candidates)
        switch (kind) {
          case 'cut':
            steps.push({ at: from, op: ['cut', String(i)] }, { at: to, op: ['heal', String(i)], undo: true })
            busy.push([from, to, kind, i])
            break
          case 'loss': {
            const pct = rng.int(10, 40)
            steps.push(
              { at: from, op: ['loss', String(i), String(pct)] },
              { at: to, op: ['loss', String(i), '0'], undo: true },
            )
            busy.push([from, to, kind, i])
            break
          }
          case 'delay': {
            const ms = rng.int(30, 250)
            steps.push(
              { at: from, op: ['delay', String(i), String(ms)] },
              { at: to, op: ['delay', String(i), '0'], undo: true },
            )
            busy.push([from, to, kind, i])
            break
          }
          case 'kill':
            steps.push(
              { at: from, op: ['kill', String(i)] },
              { at: to, op: ['restart', String(i)], undo: true },
            )
            busy.push([from, to, kind, i])
            break
          case 'offline':
            steps.push({ at: from, op: ['offline'] }, { at: to, op: ['online'], undo: true })
            busy.push([from, to, kind, undefined])
            break
          case 'partition': {
            const order = rng.shuffle(Array.from({ length: n }, (_, k) => k + 1))
            const cutAt = rng.int(1, n - 1)
            const a = order.slice(0, cutAt).sort((x, y) => x - y)
            const b = order.slice(cutAt).sort((x, y) => x - y)
            steps.push(
              { at: from, op: ['partition', a.join(' '), b.join(' ')] },
              { at: to, op: ['unpartition'], undo: true },
            )
            busy.push([from, to, kind, undefined])
            break
          }
        }
      }
    }
    t += rng.int(1_000, 4_000)
  }
  return steps.sort((x, y) => x.at - y.at)
}

// ══ inner: inside the control namespace ═══════════════════════════════════════════════════════
async function inner() {
  const state = resolve(args.state)
  const mesh = JSON.parse(await readFile(join(state, 'mesh.json'), 'utf8'))
  const { loadVenueBundle } = await import('@nullmesh/policy')
  const bundle = await loadVenueBundle(mesh.venueDir)
  const currency = Object.keys(bundle.policy.currencies)[0]
  const limits = bundle.policy.currencies[currency]
  const n = mesh.n
  const env = { ...process.env, NM_STATE: state }
  const rng = new Rng(opts.seed)
  const loadRng = new Rng(`${opts.seed}/load`)
  const durationMs = opts.durationS * 1000
  const schedule = makeSchedule(rng, n, durationMs)

  const http = async (url, { token, body, timeoutMs = 10_000 } = {}) => {
    const r = await fetch(url, {
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    })
    const text = await r.text()
    let json
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    if (!r.ok) {
      const e = new Error(`${url}: HTTP ${r.status} ${json?.code ?? text.slice(0, 80)}`)
      e.code = json?.code ?? `http_${r.status}`
      throw e
    }
    return json
  }
  const term = (i) => mesh.terminals[i - 1]
  const status = async (i, timeoutMs = 2_000) => {
    try {
      return await http(`${term(i).api}/v1/status`, { token: term(i).token, timeoutMs })
    } catch {
      return undefined
    }
  }

  // ── faults ──
  const killed = new Set()
  const faultLog = []
  const counts = { cut: 0, partition: 0, loss: 0, delay: 0, kill: 0, offline: 0 }
  const pendingOps = new Set()
  const op = async (argv, t) => {
    const r = await runFile(SCRIPT, argv, env, 120_000)
    faultLog.push({ atMs: t, op: argv.join(' '), ok: r.code === 0 })
    if (r.code !== 0) say(`!! netns-mesh.sh ${argv.join(' ')} failed: ${r.stderr.trim().split('\n').pop()}`)
    else
      say(
        `${(t / 1000).toFixed(1).padStart(5)} s  ${
          argv[0] === 'partition'
            ? `partition ${argv
                .slice(1)
                .map((g) => `[${g}]`)
                .join(' ')}`
            : argv.join(' ')
        }`,
      )
    return r.code === 0
  }
  // rejoin times: when the last active fault is undone, how long until every terminal is back in
  // quorum mode with every peer (not measured when another fault starts meanwhile)
  let activeFaults = 0
  let loadDone = false
  const rejoins = []
  const measureRejoin = async (what) => {
    const from = Date.now()
    while (activeFaults === 0 && !loadDone && Date.now() - from < 30_000) {
      const all = await Promise.all(Array.from({ length: n }, (_, k) => status(k + 1, 1_000)))
      if (all.every((s) => s?.mesh?.mode === 'quorum' && s.mesh.peers === n - 1)) {
        rejoins.push({ after: what, ms: Date.now() - from })
        return
      }
      await sleep(100)
    }
  }
  const doStep = (step, t) => {
    const [kind, i] = step.op
    if (!step.undo && kind in counts) counts[kind]++
    if (kind === 'kill') killed.add(Number(i))
    activeFaults += step.undo ? -1 : 1
    const p = op(step.op, t).then((ok) => {
      if (kind === 'restart' && ok) killed.delete(Number(i))
      // measured on the side: the end of the load does not wait for it
      if (step.undo && ok && activeFaults === 0) void measureRejoin(step.op.join(' '))
    })
    pendingOps.add(p)
    p.finally(() => pendingOps.delete(p))
  }

  // ── payments ──
  const cards = Array.from({ length: opts.cards }, (_, k) => ({
    token: `5${String(10_000_000 + k * 7919).padStart(8, '0')}${loadRng.int(1_000_000, 9_999_999)}`,
    counter: loadRng.int(1, 500),
  }))
  const outcomes = [] // { n, kind, terminal, request, group?, replayOf?, retryOf?, response?, error?, ms, atMs }
  let seq = 0
  const inFlight = new Set()
  const t0 = Date.now()
  const send = (kind, terminal, request, extra = {}) => {
    const o = { n: seq++, kind, terminal, request, atMs: Date.now() - t0, ...extra }
    outcomes.push(o)
    const start = performance.now()
    const p = http(`${term(terminal).api}/v1/payments`, {
      token: term(terminal).token,
      body: request,
      timeoutMs: 15_000,
    })
      .then(
        (r) => {
          o.response = {
            paymentId: r.paymentId,
            status: r.status,
            declineCode: r.declineCode,
            mode: r.mode,
            nullifier: r.nullifier,
            terminal: r.terminal,
          }
        },
        (e) => {
          o.error = e.code ?? e.cause?.code ?? e.name ?? String(e)
        },
      )
      .finally(() => {
        o.ms = Math.round(performance.now() - start)
      })
    inFlight.add(p)
    p.finally(() => inFlight.delete(p))
    return o
  }
  const alive = () => Array.from({ length: n }, (_, k) => k + 1).filter((i) => !killed.has(i))
  const makeRequest = (card, amountMinor, counter, behavior) => ({
    idempotencyKey: `chaos-${opts.seed}-${seq}-${randomBytes(3).toString('hex')}`,
    cardToken: card.token,
    amountMinor,
    currency,
    method: 'contactless',
    credentialCounter: counter,
    ...(behavior === undefined ? {} : { offlineBehavior: behavior }),
  })
  let groups = 0
  const tick = () => {
    const up = alive()
    if (up.length === 0) return
    const kind = loadRng.pick([
      'ordinary',
      'ordinary',
      'ordinary',
      'ordinary',
      'ordinary',
      'ordinary',
      'ordinary',
      'ordinary',
      'ordinary',
      'ordinary',
      'ordinary',
      'ordinary',
      'double_tap',
      'double_tap',
      'replay',
      'retry',
    ])
    // mostly the offline path (the mesh is what is under test); some prefer central when it is up
    const behavior = loadRng.chance(0.75) ? 'force_offline' : undefined
    const amount = loadRng.chance(0.1)
      ? loadRng.int(limits.floorLimitMinor + 1, limits.floorLimitMinor * 2)
      : loadRng.int(100, Math.min(limits.floorLimitMinor, 4_500))
    if (kind === 'double_tap' && up.length >= 2) {
      // one card credential (same counter) at several terminals at the same instant
      const card = loadRng.pick(cards)
      const counter = ++card.counter
      const at = loadRng.shuffle(up).slice(0, loadRng.int(2, Math.min(3, up.length)))
      const group = groups++
      for (const i of at)
        send('double_tap', i, makeRequest(card, amount, counter, 'force_offline'), { group })
      return
    }
    const done = outcomes.filter((o) => o.response?.status?.startsWith('approved') && o.kind !== 'retry')
    if (kind === 'replay' && done.length > 0) {
      // the same credential presented again (a cloned card), at another terminal
      const orig = loadRng.pick(done)
      const card = cards.find((c) => c.token === orig.request.cardToken)
      send(
        'replay',
        loadRng.pick(up),
        makeRequest(card, orig.request.amountMinor, orig.request.credentialCounter, 'force_offline'),
        {
          replayOf: orig.n,
        },
      )
      return
    }
    if (kind === 'retry' && done.length > 0) {
      // the POS did not get the answer and sends the same request again: same decision expected
      const orig = loadRng.pick(done)
      if (!killed.has(orig.terminal)) {
        send('retry', orig.terminal, orig.request, { retryOf: orig.n })
        return
      }
    }
    const card = loadRng.pick(cards)
    send('ordinary', loadRng.pick(up), makeRequest(card, amount, ++card.counter, behavior))
  }

  // ── wait for the mesh ──
  const formed = async () => {
    const all = await Promise.all(Array.from({ length: n }, (_, k) => status(k + 1)))
    return all.every((s) => s?.mesh?.mode === 'quorum' && s.mesh.peers === n - 1)
  }
  const meshDeadline = Date.now() + 40_000
  while (!(await formed())) {
    if (Date.now() > meshDeadline) {
      say('the mesh did not fully form within 40 s; starting anyway')
      break
    }
    await sleep(300)
  }

  // ── load + faults ──
  say(
    `load: ${opts.rate}/s for ${opts.durationS} s over ${n} terminals, ${cards.length} cards; ${schedule.length / 2} faults`,
  )
  const start = Date.now()
  let nextPay = 0
  let si = 0
  while (Date.now() - start < durationMs) {
    const t = Date.now() - start
    while (si < schedule.length && schedule[si].at <= t) doStep(schedule[si++], t)
    if (t >= nextPay) {
      if (inFlight.size < 64) tick()
      nextPay += 1000 / opts.rate
    }
    await sleep(Math.max(5, Math.min(50, nextPay - (Date.now() - start))))
  }
  const loadMs = Date.now() - start
  loadDone = true
  await Promise.allSettled([...pendingOps])
  // what is left of the schedule is undone by the final heal
  await Promise.allSettled([...inFlight])

  // ── heal everything, restart what is dead, wait for sync ──
  const healStart = Date.now()
  await op(['heal-all'], Date.now() - start)
  for (const i of [...killed]) {
    if (await op(['restart', String(i)], Date.now() - start)) killed.delete(i)
  }
  let healMs
  const approvedIds = new Set(
    outcomes.filter((o) => o.response?.status?.startsWith('approved')).map((o) => o.response.paymentId),
  )
  let centralView = {}
  let syncTimedOut = false
  let lastStatuses = []
  const settleDeadline = Date.now() + opts.settleTimeoutS * 1000
  for (;;) {
    lastStatuses = await Promise.all(Array.from({ length: n }, (_, k) => status(k + 1)))
    const meshOk = lastStatuses.every((s) => s?.mesh?.mode === 'quorum' && s.mesh.peers === n - 1)
    if (meshOk && healMs === undefined) healMs = Date.now() - healStart
    try {
      centralView = await centralPayments(http, mesh.central.url, bundle.venueId, approvedIds)
    } catch {
      // keep the last view
    }
    const missing = [...approvedIds].filter((id) => !isCommitted(centralView[id])).length
    const pending = Object.values(centralView).filter(
      (p) => p.status === 'queued' || p.status === 'processing',
    ).length
    const queued = lastStatuses.reduce((s, x) => s + (x?.queue?.count ?? 0), 0)
    const online = lastStatuses.every((s) => s?.online === true)
    // the ledgers have converged once every terminal holds every event (periodic anti-entropy
    // pulls what gossip missed): read snapshots of the live ledgers to see it
    let ledgers = 'not checked'
    if (meshOk && online && queued === 0 && missing === 0 && pending === 0) {
      const counts = await ledgerCounts(mesh, state)
      if (counts.converged) break
      ledgers = JSON.stringify(counts.perTerminal)
    }
    if (Date.now() > settleDeadline) {
      syncTimedOut = true
      say(
        `sync not complete after ${opts.settleTimeoutS} s: mesh ${meshOk ? 'ok' : 'not formed'}, terminal queues ${queued}, missing at central ${missing}, settling ${pending}, ledgers ${ledgers}`,
      )
      break
    }
    await sleep(500)
  }
  const syncMs = Date.now() - healStart
  await sleep(500)
  lastStatuses = await Promise.all(Array.from({ length: n }, (_, k) => status(k + 1)))
  let centralSummary
  try {
    centralSummary = await http(`${mesh.central.url}/v1/venues/${bundle.venueId}/summary`)
  } catch {
    centralSummary = undefined
  }
  const result = {
    seed: opts.seed,
    schedule,
    faultLog,
    faults: counts,
    outcomes,
    loadMs,
    healMs: healMs ?? null,
    rejoins,
    syncMs,
    syncTimedOut,
    statuses: lastStatuses,
    centralView,
    centralSummary,
    currency,
  }
  await writeFile(join(state, 'chaos-run.json'), JSON.stringify(result))
}

/**
 * Event ids in each terminal's ledger, read from a copy (the running terminal holds the LevelDB
 * lock). A copy taken mid-write may miss the last record or fail to open: then it just does not
 * count as converged yet.
 */
async function ledgerCounts(mesh, state) {
  const { createLedger } = await import('@nullmesh/ledger')
  const union = new Set()
  const perTerminal = {}
  const sets = []
  for (const t of mesh.terminals) {
    const snap = join(state, `snapshot-${t.id}`)
    const ids = new Set()
    try {
      await rm(snap, { recursive: true, force: true })
      await cp(join(t.data, 'ledger'), snap, { recursive: true })
      const ledger = createLedger({ path: snap })
      await ledger.open()
      try {
        for await (const ev of ledger.events()) ids.add(ev.idHex)
      } finally {
        await ledger.close().catch(() => {})
      }
    } catch {
      ids.clear()
      ids.add('unreadable')
    } finally {
      await rm(snap, { recursive: true, force: true }).catch(() => {})
    }
    for (const id of ids) union.add(id)
    perTerminal[t.id] = ids.size
    sets.push(ids)
  }
  const converged = !union.has('unreadable') && sets.every((x) => x.size === union.size)
  return { converged, perTerminal, union: union.size }
}

function isCommitted(p) {
  return p !== undefined && p.status !== 'created' && p.status !== 'released'
}

async function centralPayments(http, url, venue, wanted) {
  const out = {}
  for (const status of ['created', 'released', 'queued', 'processing', 'completed', 'failed']) {
    const r = await http(`${url}/v1/payments?venue=${encodeURIComponent(venue)}&status=${status}&limit=1000`)
    for (const p of r.payments) out[p.paymentId] = p
  }
  for (const id of [...wanted]
    .filter((id) => !isCommitted(out[id]) && /^[0-9a-f]{64}$/.test(id))
    .slice(0, 200)) {
    try {
      out[id] = await http(`${url}/v1/payments/${id}`)
    } catch {
      // not there: stays missing
    }
  }
  return out
}

// ══ outer: root namespace ═════════════════════════════════════════════════════════════════════
function netnsUnsupported() {
  if (process.platform !== 'linux') return 'not Linux'
  if (process.getuid?.() !== 0) return 'not root (network namespaces need root)'
  const probe = `nmprobe${randomBytes(2).toString('hex')}`
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' })
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' })
  } catch (err) {
    return `cannot create a network namespace: ${String(err.stderr ?? err).trim()}`
  }
  return undefined
}

async function outer() {
  const why = netnsUnsupported()
  if (why !== undefined) fail(2, `cannot run here: ${why}`)
  if (!existsSync(CLI)) fail(1, `${CLI} not found: run npm run build first (npm run chaos does)`)
  const t0 = Date.now()
  process.stderr.write(`chaos: seed ${opts.seed} (replay with --seed ${opts.seed})\n`)
  const state = await mkdtemp(join(tmpdir(), 'nullmesh-chaos-'))
  const prefix = `nm${randomBytes(2).toString('hex')}`
  // the mesh's own debug log (mode changes, hello and catch-up failures) in every terminal's log:
  // what a failed run needs to be understood
  const env = { DEBUG: 'nullmesh:mesh*', ...process.env, NM_STATE: state, NM_PREFIX: prefix }
  let child
  let interrupted = false
  const onSignal = () => {
    if (interrupted) return
    interrupted = true
    say('interrupted: stopping')
    child?.kill('SIGTERM')
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  let summary
  let failure
  let downDone = false
  const down = async () => {
    if (downDone) return
    downDone = true
    const r = await runFile(SCRIPT, ['down'], env, 60_000)
    if (r.code !== 0) say(`down failed: ${r.stderr}`)
  }
  try {
    say(`bringing up ${opts.terminals} terminals + central in namespaces ${prefix}-* (state ${state})`)
    const up = await runFile(
      SCRIPT,
      ['up', String(opts.terminals)],
      {
        ...env,
        NM_NO_WAIT: '1',
        ...(opts.groupSize === undefined ? {} : { NM_GROUP_SIZE: String(opts.groupSize) }),
      },
      180_000,
    )
    if (up.code !== 0) throw new Error(`netns-mesh.sh up failed:\n${up.stderr}`)
    say(`up in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    const mesh = JSON.parse(await readFile(join(state, 'mesh.json'), 'utf8'))
    const innerArgs = [
      'netns',
      'exec',
      mesh.ctlNs,
      process.execPath,
      fileURLToPath(import.meta.url),
      '--inner',
      '--state',
      state,
      '--seed',
      opts.seed,
      '--terminals',
      String(opts.terminals),
      '--duration',
      String(opts.durationS),
      '--rate',
      String(opts.rate),
      '--cards',
      String(opts.cards),
      '--settle-timeout',
      String(opts.settleTimeoutS),
      ...(opts.quiet ? ['--quiet'] : []),
    ]
    const code = await new Promise((done) => {
      child = spawn('ip', innerArgs, { stdio: ['ignore', 'inherit', 'inherit'], env })
      child.on('exit', (c, s) => done(c ?? (s ? 128 : 1)))
      child.on('error', () => done(1))
    })
    if (interrupted) throw new Error('interrupted')
    if (code !== 0) throw new Error(`the driver exited with ${code}`)
    const run = JSON.parse(await readFile(join(state, 'chaos-run.json'), 'utf8'))
    await down()
    summary = await judge(run, mesh, t0)
    summary.prefix = prefix
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err)
  } finally {
    await down()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  const leftovers = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith(`${prefix}-`))
  if (leftovers.length > 0) say(`!! namespaces left behind: ${leftovers.join(', ')}`)
  const keep = opts.keep || failure !== undefined || (summary !== undefined && !summary.ok)
  if (keep) say(`logs, ledgers and the run kept in ${state}`)
  else await rm(state, { recursive: true, force: true, maxRetries: 3 })
  if (interrupted) process.exit(130)
  if (failure !== undefined || summary === undefined)
    fail(1, `failed: ${failure ?? 'no summary'} (seed ${opts.seed})`)
  process.stderr.write(`${format(summary)}\n`)
  if (opts.json) process.stdout.write(`${JSON.stringify(summary)}\n`)
  process.exitCode = summary.ok ? 0 : 3
}

async function judge(run, mesh, t0) {
  const { createLedger } = await import('@nullmesh/ledger')
  const { loadVenueBundle, partitionExposureBound } = await import('@nullmesh/policy')
  const { LedgerUnion, overCapCards, duplicateApprovals } = await import('@nullmesh/cli')
  const bundle = await loadVenueBundle(mesh.venueDir)
  const policy = bundle.policy
  const currency = run.currency

  // every ledger, and their union
  const union = new LedgerUnion()
  const perTerminal = {}
  for (const t of mesh.terminals) {
    const ledger = createLedger({ path: join(t.data, 'ledger') })
    let count = 0
    try {
      await ledger.open()
      for await (const ev of ledger.events()) {
        count++
        union.add(ev)
      }
    } catch (err) {
      count = -1
      say(`cannot read the ledger of ${t.id}: ${err instanceof Error ? err.message : String(err)}`)
    } finally {
      await ledger.close().catch(() => {})
    }
    perTerminal[t.id] = count
  }
  const commits = [...union.commits.values()]

  // what clients saw
  const outcomes = run.outcomes
  const byStatus = {}
  const byMode = {}
  const errors = {}
  const declines = {}
  let approved = 0
  for (const o of outcomes) {
    if (o.response === undefined) {
      errors[o.error ?? 'unknown'] = (errors[o.error ?? 'unknown'] ?? 0) + 1
      continue
    }
    byStatus[o.response.status] = (byStatus[o.response.status] ?? 0) + 1
    byMode[o.response.mode] = (byMode[o.response.mode] ?? 0) + 1
    if (o.response.status.startsWith('approved')) approved++
    else declines[o.response.declineCode ?? 'none'] = (declines[o.response.declineCode ?? 'none'] ?? 0) + 1
  }
  const approvedIds = [
    ...new Set(
      outcomes.filter((o) => o.response?.status?.startsWith('approved')).map((o) => o.response.paymentId),
    ),
  ]

  // 1. lost: approved at a terminal, not committed at central
  const lostIds = approvedIds.filter((id) => !isCommitted(run.centralView[id]))
  // 2. duplicate settlements: one nullifier completed at central under more than one payment
  const nullifierOf = new Map()
  for (const c of commits) nullifierOf.set(c.reservationId, c.nullifier)
  for (const o of outcomes)
    if (o.response?.nullifier) nullifierOf.set(o.response.paymentId, o.response.nullifier)
  const completedByNullifier = new Map()
  for (const p of Object.values(run.centralView)) {
    if (p.status !== 'completed') continue
    const nf = nullifierOf.get(p.paymentId) ?? `unknown:${p.paymentId}`
    completedByNullifier.set(nf, (completedByNullifier.get(nf) ?? 0) + 1)
  }
  let duplicateSettlements = 0
  for (const k of completedByNullifier.values()) if (k > 1) duplicateSettlements += k - 1
  // 3. over cap among quorum approvals
  const caps = Object.fromEntries(Object.entries(policy.currencies).map(([c, l]) => [c, l.cardCapMinor]))
  const quorumCommits = commits.filter((c) => c.mode === 'quorum')
  const overCap = overCapCards(quorumCommits, caps, policy.cardWindowMs)
  const quorumDuplicates = duplicateApprovals(quorumCommits)
  // 4. isolated exposure vs the bound the terminals reported
  const seen = new Set()
  let isolatedExposureMinor = 0
  let isolatedApprovals = 0
  for (const c of commits) {
    if (c.mode !== 'isolated' || c.currency !== currency || seen.has(c.reservationId)) continue
    seen.add(c.reservationId)
    isolatedApprovals++
    isolatedExposureMinor += c.amountMinor
  }
  const reported = run.statuses.map((s) => s?.exposureBoundMinor).filter((x) => typeof x === 'number')
  const exposureBoundMinor =
    reported.length > 0
      ? Math.min(...reported)
      : partitionExposureBound(policy, bundle.roster.length, currency)
  // 5. rejoined: in the quorum with every peer at the end, and a ledger holding every event
  const n = mesh.n
  const rejoinedIds = mesh.terminals
    .filter((t, k) => {
      const s = run.statuses[k]
      return s?.mesh?.mode === 'quorum' && s.mesh.peers === n - 1 && perTerminal[t.id] === union.eventIds.size
    })
    .map((t) => t.id)

  // double taps, replays, retries
  const groupApprovals = new Map()
  let replays = 0
  let replaysApproved = 0
  let retries = 0
  let retryMismatches = 0
  const byN = new Map(outcomes.map((o) => [o.n, o]))
  for (const o of outcomes) {
    const ok = o.response?.status?.startsWith('approved') === true
    if (o.group !== undefined) groupApprovals.set(o.group, (groupApprovals.get(o.group) ?? 0) + (ok ? 1 : 0))
    if (o.kind === 'replay') {
      replays++
      if (ok) replaysApproved++
    }
    if (o.kind === 'retry') {
      retries++
      const first = byN.get(o.retryOf)?.response
      if (first !== undefined && o.response !== undefined)
        if (first.paymentId !== o.response.paymentId || first.status !== o.response.status) retryMismatches++
    }
  }
  const groups = [...groupApprovals.values()]

  const summary = {
    ok: true,
    seed: /^\d+$/.test(opts.seed) ? Number(opts.seed) : opts.seed,
    terminals: n,
    groupSize: opts.groupSize ?? null,
    durationS: opts.durationS,
    payments: outcomes.length,
    approved,
    declined: outcomes.filter((o) => o.response !== undefined).length - approved,
    errors: Object.values(errors).reduce((s, x) => s + x, 0),
    errorsByCode: errors,
    byStatus,
    byMode,
    declines,
    faults: run.faults,
    doubleTaps: { groups: groups.length, maxApprovalsPerGroup: groups.length > 0 ? Math.max(...groups) : 0 },
    replays: { total: replays, approved: replaysApproved },
    retries: { total: retries, mismatches: retryMismatches },
    lost: lostIds.length,
    duplicateSettlements,
    overCapInQuorum: overCap.cards,
    duplicateQuorumApprovals: quorumDuplicates.count,
    isolatedApprovals,
    isolatedExposureMinor,
    exposureBoundMinor,
    currency,
    rejoined: rejoinedIds.length,
    notRejoined: mesh.terminals
      .map((t, k) => ({ t, s: run.statuses[k] }))
      .filter(({ t }) => !rejoinedIds.includes(t.id))
      .map(({ t, s }) => ({
        id: t.id,
        mode: s?.mesh?.mode ?? 'unreachable',
        peers: s?.mesh?.peers ?? null,
        ledgerEvents: perTerminal[t.id],
      })),
    healMs: run.healMs,
    rejoinMs: rejoinStats(run.rejoins ?? []),
    syncMs: run.syncMs,
    syncTimedOut: run.syncTimedOut,
    settled: run.centralSummary?.settled ?? null,
    partitionLosses: run.centralSummary?.partitionLosses ?? null,
    ledgers: { unionEvents: union.eventIds.size, perTerminal },
    violations: [],
    durationMs: Date.now() - t0,
  }
  const v = summary.violations
  if (summary.lost !== 0)
    v.push(`lost == ${summary.lost}: approved but not at central: ${lostIds.slice(0, 5).join(', ')}`)
  if (duplicateSettlements !== 0) v.push(`duplicateSettlements == ${duplicateSettlements}`)
  if (overCap.cards !== 0) v.push(`overCapInQuorum == ${overCap.cards} (max over ${overCap.maxOverMinor})`)
  if (quorumDuplicates.count !== 0)
    v.push(`a nullifier approved twice with a quorum (${quorumDuplicates.count})`)
  if (!(isolatedExposureMinor <= exposureBoundMinor))
    v.push(`isolatedExposureMinor ${isolatedExposureMinor} > exposureBoundMinor ${exposureBoundMinor}`)
  if (summary.rejoined !== n)
    v.push(
      `rejoined == ${summary.rejoined} of ${n}: ${JSON.stringify(summary.notRejoined)} (union ${union.eventIds.size} events)`,
    )
  if (retryMismatches !== 0) v.push(`${retryMismatches} retry(ies) got a different decision`)
  if (approved === 0) v.push('no payment was approved')
  summary.ok = v.length === 0
  return summary
}

/** rejoin times after the last fault was undone: overall and by the kind of fault undone */
function rejoinStats(rejoins) {
  const ms = rejoins.map((r) => r.ms).sort((a, b) => a - b)
  const by = {}
  for (const r of rejoins) {
    const k = r.after.split(' ')[0]
    by[k] = Math.max(by[k] ?? 0, r.ms)
  }
  return {
    count: ms.length,
    p50: ms.length > 0 ? ms[Math.floor((ms.length - 1) / 2)] : null,
    max: ms.length > 0 ? ms[ms.length - 1] : null,
    by,
  }
}

function format(s) {
  const lines = [
    `chaos ${s.ok ? 'PASSED' : 'FAILED'} — seed ${s.seed}, ${s.terminals} terminals, ${s.durationS} s`,
    `  payments ${s.payments}: ${s.approved} approved, ${s.declined} declined, ${s.errors} errors ${JSON.stringify(s.errorsByCode)}`,
    `  by mode ${JSON.stringify(s.byMode)}; declines ${JSON.stringify(s.declines)}`,
    `  faults ${JSON.stringify(s.faults)}`,
    `  double taps ${s.doubleTaps.groups} (max approvals per tap ${s.doubleTaps.maxApprovalsPerGroup}); replays ${s.replays.total} (${s.replays.approved} approved); retries ${s.retries.total} (${s.retries.mismatches} mismatches)`,
    `  lost ${s.lost} · duplicateSettlements ${s.duplicateSettlements} · overCapInQuorum ${s.overCapInQuorum} · isolated ${s.isolatedExposureMinor} ≤ bound ${s.exposureBoundMinor} ${s.currency} · rejoined ${s.rejoined}/${s.terminals}`,
    `  rejoin after a fault: ${s.rejoinMs.count > 0 ? `p50 ${s.rejoinMs.p50} ms, max ${s.rejoinMs.max} ms (${s.rejoinMs.count})` : 'not measured'}; ${JSON.stringify(s.rejoinMs.by)}`,
    `  healed in ${s.healMs} ms, synced in ${s.syncMs} ms; ledgers ${JSON.stringify(s.ledgers.perTerminal)} (union ${s.ledgers.unionEvents})`,
  ]
  for (const v of s.violations) lines.push(`  VIOLATION: ${v}`)
  return lines.join('\n')
}

if (args.judge !== undefined) {
  // judge a kept run again (a state directory from --keep or a failed run), without running it
  const dir = resolve(args.judge)
  const mesh = JSON.parse(await readFile(join(dir, 'mesh.json'), 'utf8'))
  const run = JSON.parse(await readFile(join(dir, 'chaos-run.json'), 'utf8'))
  opts.seed = run.seed
  opts.durationS = Math.round(run.loadMs / 1000)
  const summary = await judge(run, mesh, Date.now())
  process.stderr.write(`${format(summary)}\n`)
  if (opts.json) process.stdout.write(`${JSON.stringify(summary)}\n`)
  process.exitCode = summary.ok ? 0 : 3
} else if (args.inner) {
  inner().catch((err) => {
    process.stderr.write(`chaos (driver): ${err instanceof Error ? err.stack : String(err)}\n`)
    process.exit(1)
  })
} else {
  await outer()
}
