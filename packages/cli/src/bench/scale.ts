// Bench figure `scale`: the cost of one payment as the venue grows. Real terminals (libp2p over
// loopback TCP, LevelDB, Ed25519) at N = 5, 10, 25, 50, several per child process, under the same
// paced venue-wide load at every N; per N: tap→decision p50/p99, barrier messages, fsyncs and CPU
// time per payment. Measures only: nothing here passes or fails on a figure.
import { type ChildProcess, fork } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { MeshCounters } from '@nullmesh/mesh'
import { createVenueBundle } from '@nullmesh/policy'
import hdr from 'hdr-histogram-js'
import { loopbackHost } from '../loopback.js'
import { peerIdFromEd25519 } from '../peer-id.js'
import {
  SCALE_AMOUNT_MINOR,
  SCALE_BASE_PORT,
  SCALE_CALL_TIMEOUT_MS,
  SCALE_FORM_BASE_MS,
  SCALE_FORM_PER_TERMINAL_MS,
  SCALE_IDLE_MS,
  SCALE_MIN_WARMUP,
  SCALE_PAY_TIMEOUT_MS,
  SCALE_PAYMENTS,
  SCALE_POLICY,
  SCALE_POLL_MS,
  SCALE_PORT_SPAN,
  SCALE_PROCESSES,
  SCALE_PROGRESS_MS,
  SCALE_QUICK_PAYMENTS,
  SCALE_QUICK_SIZES,
  SCALE_RATE,
  SCALE_SETTLE_MS,
  SCALE_SIZES,
  SCALE_STABLE_POLLS,
  SCALE_START_TIMEOUT_PER_TERMINAL_MS,
  SCALE_STOP_TIMEOUT_MS,
} from './constants.js'
import type {
  ScalePaid,
  ScaleRequest,
  ScaleSample,
  ScaleStarted,
  ScaleTerminalStatus,
} from './scale-child.js'

const CHILD_PATH = fileURLToPath(new URL('./scale-child.js', import.meta.url))

export interface ScaleInit {
  /** shorter: SCALE_QUICK_SIZES and SCALE_QUICK_PAYMENTS unless given */
  quick?: boolean
  /** venue sizes, in terminals */
  sizes?: number[]
  /** child processes per venue (at most one per terminal) */
  processes?: number
  /** payments per second, venue-wide, the same at every size */
  rate?: number
  /** measured payments per size */
  payments?: number
  /** warm-up payments per size (default: the larger of SCALE_MIN_WARMUP and N) */
  warmup?: number
  idleMs?: number
  settleMs?: number
  /** how long a venue may take to form (default: SCALE_FORM_BASE_MS + SCALE_FORM_PER_TERMINAL_MS × N) */
  formTimeoutMs?: number
  /** progress lines */
  say?: (line: string) => void
  signal?: AbortSignal
}

export interface LatencySummary {
  count: number
  p50: number | null
  p99: number | null
  max: number | null
}

export interface ScaleRun {
  terminals: number
  error?: string
  processes?: number
  /** terminals hosted by each child process */
  terminalsPerProcess?: number[]
  payments?: number
  approved?: number
  errors?: number
  firstError?: string
  statuses?: Record<string, number>
  /** from the first start until every terminal knows its history and is in quorum mode (see waitFormed) */
  formMs?: number
  /** the fewest ready peers any terminal had when the load started (N − 1 in a full mesh) */
  minReadyPeers?: number
  achievedPerSecond?: number
  tapToDecisionMs?: LatencySummary
  /** barrier frames sent venue-wide (requests + answers + pushed Commits/Releases) ÷ payments */
  messagesPerPayment?: number
  messagesPerPaymentByKind?: Record<keyof MeshCounters, number>
  /** ledger records written with fsync, venue-wide, ÷ payments */
  fsyncsPerPayment?: number
  /** CPU of every child process during the load ÷ payments ÷ terminals (idle background included) */
  cpuMsPerPaymentPerTerminal?: number
  /** the same with the idle phase's background rate subtracted */
  cpuMsPerPaymentPerTerminalAboveIdle?: number | null
  cpuMsPerPaymentAllTerminals?: number
  /** background CPU with no payments (connection pings, gossip heartbeats, timers) */
  idleCpuMsPerSecondPerTerminal?: number
  /** CPU seconds per wall second during the load, all children together (this machine has nproc cores) */
  coresBusy?: number
  loadavg1m?: { before: number; after: number }
}

export interface ScaleFigure {
  figure: number
  title: string
  unit: string
  method: string
  parameters: {
    sizes: number[]
    processes: number
    terminalsPerProcess: Record<string, number[]>
    ratePerSecond: number
    payments: number
    warmup: string
    idleMs: number
    settleMs: number
    /** how long a venue of N may take to form before that size is reported as failed */
    formTimeout: string
    cards: string
    path: string
  }
  runs: ScaleRun[]
  lines: string[]
}

export interface ScaleGoal {
  goal: string
  value: string
  met: boolean | null
}

/** Run the figure: one venue per size, one after the other; a size that fails is reported and skipped. */
export async function runScale(init: ScaleInit = {}): Promise<ScaleFigure> {
  const quick = init.quick === true
  const sizes = init.sizes ?? (quick ? SCALE_QUICK_SIZES : SCALE_SIZES)
  const opts: RunOptions = {
    processes: init.processes ?? SCALE_PROCESSES,
    rate: init.rate ?? SCALE_RATE,
    payments: init.payments ?? (quick ? SCALE_QUICK_PAYMENTS : SCALE_PAYMENTS),
    warmup: init.warmup,
    idleMs: init.idleMs ?? SCALE_IDLE_MS,
    settleMs: init.settleMs ?? SCALE_SETTLE_MS,
    formTimeoutMs: init.formTimeoutMs,
    say: init.say ?? (() => {}),
    signal: init.signal,
  }
  const runs: ScaleRun[] = []
  for (const n of sizes) {
    init.signal?.throwIfAborted()
    opts.say(`  scale: ${n} terminals…`)
    try {
      runs.push(await scaleRun(n, opts))
    } catch (err: unknown) {
      if (init.signal?.aborted) throw err
      const message = err instanceof Error ? err.message : String(err)
      opts.say(`  scale: ${n} terminals failed: ${message}`)
      runs.push({ terminals: n, error: message })
    }
  }
  const perProcess: Record<string, number[]> = {}
  for (const n of sizes) perProcess[n] = split(n, Math.min(opts.processes, n)).map((ids) => ids.length)
  return {
    figure: 12,
    title: 'Venue scale: cost of one payment against terminal count',
    unit: 'ms, messages, fsyncs per payment',
    method:
      `per size N: a fresh venue of N real terminals (createTerminal: libp2p TCP+pnet+Noise+Yamux, each terminal on its own loopback address 127.0.1.k, dialling from it, ` +
      `LevelDB, no HTTP API, no central: every payment takes the offline path), hosted by min(N, ${opts.processes}) child processes ` +
      '(packages/cli/dist/bench/scale-child.js) at N/processes terminals each, started one after the other, each terminal ' +
      'on its own loopback address and one common port and given every other terminal’s address up front (as mDNS would), until every terminal knows its own history (learned from N − q + 1 peers) and is in ' +
      'quorum mode with N−1 ready peers (or, in a venue ' +
      `that does not connect every pair, modes unchanged for ${SCALE_STABLE_POLLS} polls ${SCALE_POLL_MS} ms apart). ` +
      `Load: ${opts.payments} payments per size paced open-loop at ${opts.rate}/s venue-wide (the same rate at every N), ` +
      'round-robin over the terminals, a fresh card each (no two payments contend), after max(N, ' +
      `${SCALE_MIN_WARMUP}) warm-up payments (not recorded) and an idle phase of ${opts.idleMs} ms that measures background CPU. ` +
      'tap→decision = terminal.pay() timed inside the hosting process (hdr-histogram-js, µs resolution). ' +
      'Messages = barrier frames the mesh adapters sent venue-wide (requests + answers + Commits/Releases pushed), ' +
      'fsyncs = ledger records the mesh adapters wrote with sync: true, both from MeshNode.counters(), read ' +
      `${opts.settleMs} ms after the last answer, ÷ payments. ` +
      'CPU = user+system time (process.cpuUsage) of all child processes from the first send to the last answer ÷ payments ÷ N ' +
      '(includes the background of N libp2p nodes; AboveIdle subtracts the idle phase’s rate).',
    parameters: {
      sizes,
      processes: opts.processes,
      terminalsPerProcess: perProcess,
      ratePerSecond: opts.rate,
      payments: opts.payments,
      warmup: init.warmup === undefined ? `max(N, ${SCALE_MIN_WARMUP})` : String(init.warmup),
      idleMs: opts.idleMs,
      settleMs: opts.settleMs,
      formTimeout:
        init.formTimeoutMs === undefined
          ? `${SCALE_FORM_BASE_MS / 1000} s + ${SCALE_FORM_PER_TERMINAL_MS / 1000} s × N`
          : `${init.formTimeoutMs / 1000} s`,
      cards: 'a fresh card per payment (no contention)',
      path: 'in-process terminal.pay(), offlineBehavior force_offline, 12.50 EUR contactless',
    },
    runs,
    lines: scaleLines(runs),
  }
}

/** Goals of the issue (yardsticks, not gates): flat in N between 5 and 50 terminals. */
export function scaleGoals(figure: ScaleFigure): { scaleP50: ScaleGoal; scaleMessages: ScaleGoal } {
  const ok = figure.runs.filter((r) => r.error === undefined && r.tapToDecisionMs?.p50 != null)
  const five = ok.find((r) => r.terminals === 5)
  const fifty = ok.find((r) => r.terminals === 50)
  const largest = ok.filter((r) => r.terminals > 5).at(-1)
  const ratio = (a: number | null | undefined, b: number | null | undefined) =>
    a == null || b == null || b === 0 ? null : round(a / b, 2)
  const describe = (get: (r: ScaleRun) => number | null | undefined, unit: string) => {
    if (five === undefined || largest === undefined) return 'not measured'
    const r = ratio(get(largest), get(five))
    const text = `${get(five)}${unit} at 5, ${get(largest)}${unit} at ${largest.terminals} (${r}×)`
    return fifty === undefined ? `${text}; no 50-terminal run` : text
  }
  const met = (get: (r: ScaleRun) => number | null | undefined) => {
    if (five === undefined || fifty === undefined) return null
    const r = ratio(get(fifty), get(five))
    return r === null ? null : r <= 1.5
  }
  const p50 = (r: ScaleRun) => r.tapToDecisionMs?.p50
  const msgs = (r: ScaleRun) => r.messagesPerPayment
  return {
    scaleP50: {
      goal: 'tap→decision p50 at 50 terminals ≤ 1.5 × p50 at 5 (same paced load)',
      value: describe(p50, ' ms'),
      met: met(p50),
    },
    scaleMessages: {
      goal: 'barrier messages per payment flat in N (at 50 terminals ≤ 1.5 × at 5)',
      value: describe(msgs, ''),
      met: met(msgs),
    },
  }
}

// ───────────────────────── one size ─────────────────────────

interface RunOptions {
  processes: number
  rate: number
  payments: number
  warmup: number | undefined
  idleMs: number
  settleMs: number
  formTimeoutMs: number | undefined
  say: (line: string) => void
  signal: AbortSignal | undefined
}

/**
 * A venue of `n` terminals in `root`, every terminal on its own loopback address and one port
 * (each knows every other's address before it starts, as mDNS would tell it on a LAN:
 * ../loopback.ts), hosted by child processes pushed onto `children` (the caller stops them).
 * Returns which terminals each process hosts; the venue is started, not yet formed.
 */
export async function startScaleVenue(
  n: number,
  root: string,
  children: ScaleProcess[],
  opts: { name: string; processes: number; say?: (line: string) => void },
): Promise<{ groups: string[][]; owner: Map<string, ScaleProcess>; startedAt: number }> {
  const venueDir = join(root, 'venue')
  const bundle = await createVenueBundle({
    outDir: venueDir,
    terminals: n,
    venueId: `bench-${opts.name}-${n}`,
    policy: SCALE_POLICY,
  })
  const port = SCALE_BASE_PORT + randomInt(SCALE_PORT_SPAN)
  const hostOf = new Map(bundle.roster.map((r, i) => [r.id, loopbackHost(i)]))
  const everyone = bundle.roster.map(
    (r) => `/ip4/${hostOf.get(r.id)}/tcp/${port}/p2p/${peerIdFromEd25519(r.publicKey)}`,
  )
  const groups = split(n, Math.min(opts.processes, n))
  for (let j = 0; j < groups.length; j++) children.push(new ScaleProcess(`${opts.name}${n}-p${j + 1}`))
  await Promise.all(children.map((c) => c.ready))
  const owner = new Map<string, ScaleProcess>()
  const t0 = performance.now()
  let started = 0
  for (const [j, ids] of groups.entries()) {
    const child = children[j]!
    for (const id of ids) owner.set(id, child)
    await child.call<ScaleStarted>(
      {
        cmd: 'start',
        venueDir,
        dataRoot: root,
        ids,
        hosts: ids.map((id) => hostOf.get(id)!),
        port,
        peers: everyone,
      },
      SCALE_START_TIMEOUT_PER_TERMINAL_MS * ids.length,
    )
    started += ids.length
    opts.say?.(
      `    started ${started}/${n} terminals (${((performance.now() - t0) / 1000).toFixed(1)} s, load ${loadavg()[0]?.toFixed(1)})`,
    )
  }
  return { groups, owner, startedAt: t0 }
}

async function scaleRun(n: number, opts: RunOptions): Promise<ScaleRun> {
  const load0 = loadavg()[0] ?? 0
  const root = await mkdtemp(join(tmpdir(), `nullmesh-bench-scale${n}-`))
  const children: ScaleProcess[] = []
  try {
    const formTimeoutMs = opts.formTimeoutMs ?? SCALE_FORM_BASE_MS + SCALE_FORM_PER_TERMINAL_MS * n
    const {
      groups,
      owner,
      startedAt: t0,
    } = await startScaleVenue(n, root, children, {
      name: 'scale',
      processes: opts.processes,
      say: opts.say,
    })
    const minReadyPeers = await waitFormed(children, n, t0, formTimeoutMs, opts.say, opts.signal)
    const formMs = Math.round(performance.now() - t0)
    opts.say(
      `    formed in ${(formMs / 1000).toFixed(1)} s (fewest ready peers of a terminal: ${minReadyPeers})`,
    )

    const ids = groups.flat()
    const cards = new CardSource()
    const pay = (i: number) => {
      const id = ids[i % n]!
      return owner
        .get(id)!
        .call<ScalePaid>({ cmd: 'pay', terminal: id, body: paymentBody(cards.next()) }, SCALE_PAY_TIMEOUT_MS)
    }
    // warm-up: every terminal an origin at least once (JIT, one barrier stream to each peer opened)
    await paced(opts.warmup ?? Math.max(n, SCALE_MIN_WARMUP), opts.rate, pay, opts.signal)

    // background: what N idle terminals cost per second
    const idle0 = await sampleAll(children)
    await sleep(opts.idleMs, undefined, { signal: opts.signal })
    const idle1 = await sampleAll(children)
    const idleCpuMsPerS = (idle1.cpuMs - idle0.cpuMs) / ((idle1.at - idle0.at) / 1000)

    const before = await sampleAll(children)
    const run = await paced(opts.payments, opts.rate, pay, opts.signal)
    const end = await sampleAll(children)
    await sleep(opts.settleMs, undefined, { signal: opts.signal })
    const settled = await sampleAll(children)

    const h = histogram()
    const statuses: Record<string, number> = {}
    let approved = 0
    const errors: string[] = []
    for (const r of run.results) {
      if (!r.ok) {
        errors.push(r.error)
        continue
      }
      const key =
        r.value.declineCode === undefined ? r.value.status : `${r.value.status}:${r.value.declineCode}`
      statuses[key] = (statuses[key] ?? 0) + 1
      if (r.value.status === 'approved_offline') approved++
      h.recordValue(Math.max(1, Math.round(r.value.ms * 1000)))
    }
    const count = opts.payments
    const loadMs = end.at - before.at
    const cpuMs = end.cpuMs - before.cpuMs
    const perKind = {} as Record<keyof MeshCounters, number>
    for (const k of Object.keys(settled.counters) as (keyof MeshCounters)[])
      perKind[k] = round((settled.counters[k] - before.counters[k]) / count, 2)
    return {
      terminals: n,
      processes: groups.length,
      terminalsPerProcess: groups.map((g) => g.length),
      payments: count,
      approved,
      errors: errors.length,
      ...(errors.length > 0 ? { firstError: errors[0]!.slice(0, 300) } : {}),
      statuses,
      formMs,
      minReadyPeers,
      achievedPerSecond: round(count / (run.sendMs / 1000), 2),
      tapToDecisionMs: summary(h),
      messagesPerPayment: round(perKind.barrierRequests + perKind.barrierAnswers + perKind.barrierPushes, 2),
      messagesPerPaymentByKind: perKind,
      fsyncsPerPayment: perKind.syncWrites,
      cpuMsPerPaymentPerTerminal: round(cpuMs / count / n, 3),
      // null when the idle phase was the busier one (reconnections, catch-ups): nothing to subtract from
      cpuMsPerPaymentPerTerminalAboveIdle:
        cpuMs < idleCpuMsPerS * (loadMs / 1000)
          ? null
          : round((cpuMs - idleCpuMsPerS * (loadMs / 1000)) / count / n, 3),
      cpuMsPerPaymentAllTerminals: round(cpuMs / count, 2),
      idleCpuMsPerSecondPerTerminal: round(idleCpuMsPerS / n, 2),
      coresBusy: round(cpuMs / loadMs, 2),
      loadavg1m: { before: round(load0, 2), after: round(loadavg()[0] ?? 0, 2) },
    }
  } finally {
    await Promise.all(children.map((c) => c.stop()))
    await rm(root, { recursive: true, force: true, maxRetries: 3 }).catch(() => {})
  }
}

/** T1..Tn in k contiguous groups whose sizes differ by at most one */
export function split(n: number, k: number): string[][] {
  const groups: string[][] = []
  let next = 1
  for (let j = 0; j < k; j++) {
    const size = Math.floor(n / k) + (j < n % k ? 1 : 0)
    groups.push(Array.from({ length: size }, () => `T${next++}`))
  }
  return groups
}

/**
 * Formed: every terminal in quorum mode, and either every peer ready (a full mesh) or the
 * ready-peer counts unchanged for SCALE_STABLE_POLLS polls (a venue that does not connect every
 * pair, as custodian groups may not). Prints progress every SCALE_PROGRESS_MS; past the deadline
 * it throws with where the venue stood. Resolves with the fewest ready peers of a terminal.
 */
export async function waitFormed(
  children: ScaleProcess[],
  n: number,
  t0: number,
  timeoutMs: number,
  say: (line: string) => void,
  signal: AbortSignal | undefined,
): Promise<number> {
  const deadline = t0 + timeoutMs
  let last = ''
  let stable = 0
  let nextSay = performance.now() + SCALE_PROGRESS_MS
  for (;;) {
    const all = (
      await Promise.all(children.map((c) => c.call<ScaleTerminalStatus[]>({ cmd: 'status' })))
    ).flat()
    // without a full mesh (connection limits: a target of ~8 connections, idle ones closed and
    // others dialled) the ready-peer counts keep moving by design: settled = every terminal in
    // quorum mode, unchanged for SCALE_STABLE_POLLS polls
    const key = all.map((s) => `${s.mode}${s.historyKnown}`).join(' ')
    stable = key === last ? stable + 1 : 0
    last = key
    const minPeers = Math.min(...all.map((s) => s.peers))
    // ...and every terminal knows its own history: a fresh venue's terminals all start with empty
    // ledgers and each signs nothing until it has caught up with N − q + 1 peers (docs/protocol.md,
    // "Lost disks"); payments before that measure the venue's first start, not a payment's cost
    if (
      all.every((s) => s.mode === 'quorum' && s.historyKnown) &&
      (minPeers >= n - 1 || stable >= SCALE_STABLE_POLLS)
    )
      return minPeers
    const now = performance.now()
    if (now >= nextSay) {
      nextSay = now + SCALE_PROGRESS_MS
      say(
        `    forming: ${formation(all, n)} (${((now - t0) / 1000).toFixed(0)} s, load ${loadavg()[0]?.toFixed(1)})`,
      )
    }
    if (now > deadline) {
      const short = all.filter((s) => s.mode !== 'quorum' || !s.historyKnown || s.peers < n - 1)
      throw new Error(
        `venue of ${n} did not form in ${Math.round(timeoutMs / 1000)} s: ${formation(all, n)}; ` +
          `short (terminal mode/ready peers/connections): ${short
            .slice(0, 8)
            .map(
              (s) => `${s.id} ${s.mode}${s.historyKnown ? '' : ' (no history)'}/${s.peers}/${s.connections}`,
            )
            .join(', ')}${short.length > 8 ? ` and ${short.length - 8} more` : ''}`,
      )
    }
    await sleep(SCALE_POLL_MS, undefined, { signal })
  }
}

/** e.g. "23/25 in quorum mode, ready peers min 12 / median 24 of 24, connections median 24" */
function formation(all: ScaleTerminalStatus[], n: number): string {
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0
  const peers = all.map((s) => s.peers)
  return (
    `${all.filter((s) => s.mode === 'quorum').length}/${all.length} in quorum mode, ` +
    `${all.filter((s) => s.historyKnown).length} know their history, ready peers min ` +
    `${Math.min(...peers)} / median ${median(peers)} of ${n - 1}, connections median ${median(all.map((s) => s.connections))}`
  )
}

async function sampleAll(children: ScaleProcess[]): Promise<ScaleSample & { at: number }> {
  const samples = await Promise.all(children.map((c) => c.call<ScaleSample>({ cmd: 'sample' })))
  const at = performance.now()
  const counters = { ...samples[0]!.counters }
  for (const s of samples.slice(1))
    for (const k of Object.keys(counters) as (keyof MeshCounters)[]) counters[k] += s.counters[k]
  return {
    at,
    cpuMs: samples.reduce((sum, s) => sum + s.cpuMs, 0),
    counters,
    peerEvents: samples.reduce((sum, s) => sum + s.peerEvents, 0),
  }
}

// ───────────────────────── load ─────────────────────────

type Outcome<T> = { ok: true; value: T } | { ok: false; error: string }

/** Open loop: fn(i) at `rate` per second whatever the answers take; waits for all of them. */
async function paced<T>(
  count: number,
  rate: number,
  fn: (i: number) => Promise<T>,
  signal: AbortSignal | undefined,
): Promise<{ results: Outcome<T>[]; sendMs: number }> {
  const t0 = performance.now()
  const all: Promise<Outcome<T>>[] = []
  for (let i = 0; i < count; i++) {
    const wait = t0 + (i * 1000) / rate - performance.now()
    if (wait > 1) await sleep(wait, undefined, { signal })
    all.push(
      fn(i).then(
        (value) => ({ ok: true, value }),
        (err: unknown) => ({ ok: false, error: err instanceof Error ? err.message : String(err) }),
      ),
    )
  }
  const sendMs = Math.max(1, performance.now() - t0)
  return { results: await Promise.all(all), sendMs }
}

/** Fresh PAN-shaped card tokens, unique within a run: no two payments share a card. */
class CardSource {
  private readonly base = String(randomInt(1_000_000)).padStart(6, '0')
  private seq = 0
  next(): string {
    return `4111${this.base}${String(this.seq++).padStart(6, '0')}`
  }
}

function paymentBody(card: string): Record<string, unknown> {
  return {
    idempotencyKey: `scale-${card}`,
    cardToken: card,
    amountMinor: SCALE_AMOUNT_MINOR,
    currency: 'EUR',
    method: 'contactless',
    offlineBehavior: 'force_offline',
  }
}

// ───────────────────────── child processes ─────────────────────────

type Pending = { resolve: (v: unknown) => void; reject: (e: unknown) => void }
export type Request = ScaleRequest extends infer R
  ? R extends { id: number }
    ? Omit<R, 'id'>
    : never
  : never

/** One child process hosting terminals, driven over IPC. */
export class ScaleProcess {
  readonly ready: Promise<void>
  private readonly child: ChildProcess
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private exited = false
  private readonly exit: Promise<void>
  private stderr = ''

  /** execArgv: node options of the child (e.g. --cpu-prof for the idle profile, idle.ts) */
  constructor(
    readonly name: string,
    execArgv: string[] = [],
  ) {
    this.child = fork(CHILD_PATH, [], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'advanced',
      execArgv,
    })
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-8000)
    })
    // BENCH_LOG_DIR=<dir> (as for the other figures): each child's stderr, e.g. DEBUG=nullmesh:* logs
    const logDir = process.env.BENCH_LOG_DIR
    if (logDir)
      this.child.stderr?.pipe(
        createWriteStream(join(logDir, `${name}-${this.child.pid}.log`), { flags: 'a' }),
      )
    this.exit = new Promise((resolve) => {
      this.child.once('exit', (code, sig) => {
        this.exited = true
        // the end of its stderr: an uncaught error's message and stack
        const err = new Error(`${name} exited (${code ?? sig}) ${this.stderr.slice(-1500).trim()}`)
        for (const p of this.pending.values()) p.reject(err)
        this.pending.clear()
        resolve()
      })
    })
    this.ready = new Promise<void>((resolve, reject) => {
      this.child.on('message', (m: { ready?: boolean; id?: number; result?: unknown; error?: string }) => {
        if (m.ready === true) return resolve()
        const p = m.id === undefined ? undefined : this.pending.get(m.id)
        if (p === undefined) return
        this.pending.delete(m.id!)
        if (m.error !== undefined) p.reject(new Error(`${name}: ${m.error}`))
        else p.resolve(m.result)
      })
      void this.exit.then(() =>
        reject(new Error(`${name} exited before it was ready: ${this.stderr.slice(-1500).trim()}`)),
      )
    })
    this.ready.catch(() => {})
  }

  /** a request answered within timeoutMs, or rejected (the run fails instead of hanging) */
  call<T>(req: Request, timeoutMs = SCALE_CALL_TIMEOUT_MS): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} is not running`))
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`${this.name}: no answer to ${req.cmd} within ${timeoutMs / 1000} s`))
      }, timeoutMs)
      const settle =
        <V>(f: (v: V) => void) =>
        (v: V) => {
          clearTimeout(timer)
          f(v)
        }
      this.pending.set(id, { resolve: settle(resolve as (v: unknown) => void), reject: settle(reject) })
      this.child.send({ ...req, id })
    })
  }

  /** stop its terminals and wait for the exit; SIGKILL if it does not leave in time */
  async stop(): Promise<void> {
    if (this.exited) return
    const timer = setTimeout(() => this.child.kill('SIGKILL'), SCALE_STOP_TIMEOUT_MS)
    this.call({ cmd: 'stop' }).catch(() => {})
    await this.exit
    clearTimeout(timer)
  }
}

// ───────────────────────── numbers ─────────────────────────

function histogram() {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  })
}

function summary(h: ReturnType<typeof histogram>): LatencySummary {
  if (h.totalCount === 0) return { count: 0, p50: null, p99: null, max: null }
  return {
    count: h.totalCount,
    p50: round(h.getValueAtPercentile(50) / 1000, 3),
    p99: round(h.getValueAtPercentile(99) / 1000, 3),
    max: round(h.maxValue / 1000, 3),
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

function scaleLines(runs: ScaleRun[]): string[] {
  const lines = [
    'terminals | procs | tap→decision p50 / p99 / max ms | msgs/pay (req+ans+push) | fsyncs/pay | CPU ms/pay/terminal (above idle) | idle CPU ms/s/terminal | approved',
  ]
  for (const r of runs) {
    if (r.error !== undefined) {
      lines.push(`${String(r.terminals).padEnd(9)} | failed: ${r.error.slice(0, 120)}`)
      continue
    }
    const t = r.tapToDecisionMs!
    const k = r.messagesPerPaymentByKind!
    lines.push(
      [
        String(r.terminals).padEnd(9),
        String(r.processes).padEnd(5),
        `${t.p50} / ${t.p99} / ${t.max}`.padEnd(31),
        `${r.messagesPerPayment} (${k.barrierRequests}+${k.barrierAnswers}+${k.barrierPushes})`.padEnd(23),
        String(r.fsyncsPerPayment).padEnd(10),
        `${r.cpuMsPerPaymentPerTerminal} (${r.cpuMsPerPaymentPerTerminalAboveIdle})`.padEnd(32),
        String(r.idleCpuMsPerSecondPerTerminal).padEnd(22),
        `${r.approved}/${r.payments}${r.errors ? `, ${r.errors} errors` : ''}`,
      ].join(' | '),
    )
  }
  return lines
}
