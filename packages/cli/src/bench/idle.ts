// What an idle terminal costs: a venue of N real terminals (the `scale` figure's harness: libp2p
// over loopback TCP with pnet + Noise + Yamux, each terminal on its own 127.0.1.k address, LevelDB,
// no HTTP API, no central), formed and then left alone; CPU time per second per terminal over a
// window with no payments. Optionally a V8 CPU profile of each child over a second window.
// Measures only: nothing here passes or fails on a figure.
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { MeshCounters } from '@nullmesh/mesh'
import { SCALE_FORM_BASE_MS, SCALE_FORM_PER_TERMINAL_MS, SCALE_PROCESSES } from './constants.js'
import { type ScaleProcess, startScaleVenue, waitFormed } from './scale.js'
import type { ScaleSample, ScaleTerminalStatus } from './scale-child.js'

/** the idle figure's defaults */
export const IDLE_SIZES = [5, 25]
/** after the venue formed, before the window: greetings, catch-ups and dialer churn settle */
export const IDLE_SETTLE_MS = 5_000
/** the measured window */
export const IDLE_MEASURE_MS = 20_000

export interface IdleInit {
  sizes?: number[]
  /** child processes per venue (at most one per terminal) */
  processes?: number
  settleMs?: number
  measureMs?: number
  /** write one V8 CPU profile per child (a second window of measureMs) into this directory */
  profileDir?: string
  say?: (line: string) => void
  signal?: AbortSignal
}

export interface IdleRun {
  terminals: number
  error?: string
  processes?: number
  terminalsPerProcess?: number[]
  formMs?: number
  /** CPU (user + system, process.cpuUsage) of all children over the window ÷ seconds ÷ N */
  cpuMsPerSecondPerTerminal?: number
  /** the same per child process (÷ the terminals it hosts) */
  cpuMsPerSecondPerTerminalByProcess?: number[]
  /** CPU seconds per wall second, all children: cores an idle venue of N keeps busy */
  coresBusy?: number
  /** enrolled peers connected, per terminal, at the end of the window: min / median / max */
  connections?: { min: number; median: number; max: number }
  /** terminals not in quorum mode at the end of the window (a venue that churned while idle) */
  notInQuorum?: number
  /** peers that became ready or were lost over the window, venue-wide (connection churn) */
  peerEvents?: number
  /** mesh counters over the window, venue-wide (no payments: barrier traffic should be 0) */
  counters?: MeshCounters
  measureMs?: number
  loadavg1m?: { before: number; after: number }
  profiles?: string[]
}

export async function runIdle(init: IdleInit = {}): Promise<IdleRun[]> {
  const say = init.say ?? (() => {})
  const runs: IdleRun[] = []
  for (const n of init.sizes ?? IDLE_SIZES) {
    init.signal?.throwIfAborted()
    say(`  idle: ${n} terminals…`)
    try {
      runs.push(await idleRun(n, init, say))
    } catch (err: unknown) {
      if (init.signal?.aborted) throw err
      const message = err instanceof Error ? err.message : String(err)
      say(`  idle: ${n} terminals failed: ${message}`)
      runs.push({ terminals: n, error: message })
    }
  }
  return runs
}

async function idleRun(n: number, init: IdleInit, say: (line: string) => void): Promise<IdleRun> {
  const measureMs = init.measureMs ?? IDLE_MEASURE_MS
  const root = await mkdtemp(join(tmpdir(), `nullmesh-bench-idle${n}-`))
  const children: ScaleProcess[] = []
  try {
    const { groups, startedAt: t0 } = await startScaleVenue(n, root, children, {
      name: 'idle',
      processes: init.processes ?? SCALE_PROCESSES,
    })
    await waitFormed(children, n, t0, SCALE_FORM_BASE_MS + SCALE_FORM_PER_TERMINAL_MS * n, say, init.signal)
    const formMs = Math.round(performance.now() - t0)
    say(
      `    formed in ${(formMs / 1000).toFixed(1)} s; settling ${(init.settleMs ?? IDLE_SETTLE_MS) / 1000} s`,
    )
    await sleep(init.settleMs ?? IDLE_SETTLE_MS, undefined, { signal: init.signal })

    const load0 = loadavg()[0] ?? 0
    const before = await sample(children)
    await sleep(measureMs, undefined, { signal: init.signal })
    const after = await sample(children)
    const load1 = loadavg()[0] ?? 0
    const seconds = (after.at - before.at) / 1000
    const byProcess = after.samples.map((s, j) =>
      round((s.cpuMs - before.samples[j]!.cpuMs) / seconds / groups[j]!.length, 2),
    )
    const cpuMs = after.samples.reduce((sum, s, j) => sum + s.cpuMs - before.samples[j]!.cpuMs, 0)
    const statuses = (
      await Promise.all(children.map((c) => c.call<ScaleTerminalStatus[]>({ cmd: 'status' })))
    ).flat()
    const conns = statuses.map((s) => s.connections).sort((a, b) => a - b)
    const counters = { ...after.samples[0]!.counters }
    for (const k of Object.keys(counters) as (keyof MeshCounters)[])
      counters[k] = after.samples.reduce(
        (sum, s, j) => sum + s.counters[k] - before.samples[j]!.counters[k],
        0,
      )

    const profiles: string[] = []
    if (init.profileDir !== undefined) {
      await mkdir(init.profileDir, { recursive: true })
      await Promise.all(children.map((c) => c.call({ cmd: 'profileStart' })))
      await sleep(measureMs, undefined, { signal: init.signal })
      await Promise.all(
        children.map((c, j) => {
          const path = join(init.profileDir!, `idle${n}-p${j + 1}.cpuprofile`)
          profiles.push(path)
          return c.call({ cmd: 'profileStop', path })
        }),
      )
    }
    const run: IdleRun = {
      terminals: n,
      processes: groups.length,
      terminalsPerProcess: groups.map((g) => g.length),
      formMs,
      cpuMsPerSecondPerTerminal: round(cpuMs / seconds / n, 2),
      cpuMsPerSecondPerTerminalByProcess: byProcess,
      coresBusy: round(cpuMs / 1000 / seconds, 3),
      connections: {
        min: conns[0] ?? 0,
        median: conns[Math.floor(conns.length / 2)] ?? 0,
        max: conns.at(-1) ?? 0,
      },
      peerEvents: after.samples.reduce((sum, s, j) => sum + s.peerEvents - before.samples[j]!.peerEvents, 0),
      notInQuorum: statuses.filter((s) => s.mode !== 'quorum').length,
      counters,
      measureMs: Math.round(seconds * 1000),
      loadavg1m: { before: round(load0, 2), after: round(load1, 2) },
      ...(profiles.length > 0 ? { profiles } : {}),
    }
    say(
      `    idle: ${run.cpuMsPerSecondPerTerminal} ms/s per terminal (by process ${byProcess.join(', ')}), ` +
        `${run.coresBusy} cores, connections median ${run.connections!.median}, load ${load0.toFixed(1)} → ${load1.toFixed(1)}`,
    )
    return run
  } finally {
    await Promise.all(children.map((c) => c.stop()))
    await rm(root, { recursive: true, force: true, maxRetries: 3 }).catch(() => {})
  }
}

async function sample(children: ScaleProcess[]): Promise<{ at: number; samples: ScaleSample[] }> {
  const samples = await Promise.all(children.map((c) => c.call<ScaleSample>({ cmd: 'sample' })))
  return { at: performance.now(), samples }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}
