#!/usr/bin/env node
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { isMainThread, Worker } from 'node:worker_threads'
import { rosterSizeIssue } from '@nullmesh/policy'
import {
  ALL_MUTATIONS,
  type AnyMutation,
  emptyCost,
  FAULTS,
  type FaultName,
  runSeed,
  type SimCost,
  type SimOptions,
  type SimResult,
  type Violation,
} from './sim.js'

/**
 * Deterministic simulation of a venue: `npm run dst -- [--terminals N] [--seeds K | --seed S]
 * [--steps M] [--faults all|none|LIST] [--json] [--trace FILE] [--mutation NAME] [--formed]`.
 */
export interface DstArgs {
  terminals: number
  seeds: number[]
  steps: number
  faults: Set<FaultName>
  json: boolean
  trace?: string | undefined
  mutations: Set<AnyMutation>
  quiet: boolean
  realCrypto?: boolean
  /** start from a formed venue (SimOptions.formed) */
  formed?: boolean
  /** seeds run at once, on worker threads (main() only; runMany runs them here, one by one) */
  jobs?: number
}

export function parseArgs(argv: string[]): DstArgs {
  const a: DstArgs = {
    terminals: 5,
    seeds: [],
    steps: 5000,
    faults: new Set(FAULTS),
    json: false,
    mutations: new Set(),
    quiet: false,
  }
  let count = 20
  let first = 1
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const val = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${arg} needs a value`)
      return v
    }
    switch (arg) {
      case '--terminals':
        a.terminals = Number(val())
        break
      case '--seeds':
        count = Number(val())
        break
      case '--first-seed':
        first = Number(val())
        break
      case '--seed':
        a.seeds = [Number(val())]
        break
      case '--steps':
        a.steps = Number(val())
        break
      case '--faults': {
        const v = val()
        a.faults =
          v === 'all'
            ? new Set(FAULTS)
            : v === 'none'
              ? new Set()
              : new Set(v.split(',').map((f) => f.trim() as FaultName))
        for (const f of a.faults)
          if (!FAULTS.includes(f)) throw new Error(`unknown fault ${f}; known: ${FAULTS.join(', ')}`)
        break
      }
      case '--json':
        a.json = true
        break
      case '--quiet':
        a.quiet = true
        break
      case '--real-crypto':
        a.realCrypto = true
        break
      case '--fast-crypto':
        // the default now (kept so older command lines still run)
        break
      case '--jobs':
        a.jobs = Number(val())
        if (!(a.jobs >= 1)) throw new Error('--jobs must be at least 1')
        break
      case '--formed':
        a.formed = true
        break
      case '--trace':
        a.trace = val()
        break
      case '--mutation': {
        const m = val() as AnyMutation
        if (!ALL_MUTATIONS.includes(m))
          throw new Error(`unknown mutation ${m}; known: ${ALL_MUTATIONS.join(', ')}`)
        a.mutations.add(m)
        break
      }
      default:
        throw new Error(`unknown option ${arg}`)
    }
  }
  if (a.seeds.length === 0) a.seeds = Array.from({ length: count }, (_, k) => first + k)
  if (!(a.terminals >= 1)) throw new Error('--terminals must be at least 1')
  // the policy refuses larger rosters (1,000)
  const issue = rosterSizeIssue(a.terminals)
  if (issue !== undefined) throw new Error(`--terminals ${a.terminals}: ${issue}`)
  return a
}

export interface DstSummary {
  terminals: number
  seeds: number
  steps: number
  payments: number
  approvals: number
  faults: Record<string, number>
  violations: Violation[]
  /** summed over seeds (see SimCost); divide by payments for the cost per payment */
  cost: SimCost
  stepsPerSecond: number
  paymentsPerSecond: number
  /** CPU time of this process (user + system): the wall-clock rates suffer on a shared machine */
  cpuSeconds: number
}

function emptySummary(args: DstArgs): DstSummary {
  return {
    terminals: args.terminals,
    seeds: 0,
    steps: 0,
    payments: 0,
    approvals: 0,
    faults: {},
    violations: [],
    cost: emptyCost(),
    stepsPerSecond: 0,
    paymentsPerSecond: 0,
    cpuSeconds: 0,
  }
}

/** one seed's result into the summary (results arrive in seed order, so the summary is deterministic) */
function add(summary: DstSummary, r: SimResult): void {
  summary.seeds++
  summary.steps += r.steps
  summary.payments += r.payments
  summary.approvals += r.approvals
  for (const k of Object.keys(summary.cost) as (keyof SimCost)[]) summary.cost[k] += r.cost[k]
  for (const [k, v] of Object.entries(r.faults).sort()) summary.faults[k] = (summary.faults[k] ?? 0) + v
  if (r.violation !== undefined) summary.violations.push(r.violation)
}

function rates(summary: DstSummary, t0: number, cpu0: NodeJS.CpuUsage): void {
  const s = (performance.now() - t0) / 1000
  summary.stepsPerSecond = Math.round(summary.steps / s)
  summary.paymentsPerSecond = Math.round(summary.payments / s)
  // process-wide: the worker threads' time included
  const cpu = process.cpuUsage(cpu0)
  summary.cpuSeconds = Math.round((cpu.user + cpu.system) / 10_000) / 100
}

/** what one seed runs with */
export function seedOptions(args: DstArgs, seed: number): SimOptions {
  return {
    terminals: args.terminals,
    seed,
    steps: args.steps,
    faults: args.faults,
    mutations: Object.freeze(new Set(args.mutations)),
    trace: args.trace !== undefined,
    realCrypto: args.realCrypto === true,
    formed: args.formed === true,
  }
}

export function runMany(
  args: DstArgs,
  onSeed?: (r: SimResult) => void,
): { summary: DstSummary; results: SimResult[] } {
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  const results: SimResult[] = []
  const summary = emptySummary(args)
  for (const seed of args.seeds) {
    const r = runSeed(seedOptions(args, seed))
    results.push(r)
    add(summary, r)
    onSeed?.(r)
  }
  rates(summary, t0, cpu0)
  return { summary, results }
}

/**
 * runMany on `jobs` worker threads (worker.ts), one seed at a time each: seeds share nothing, so a
 * seed's result does not depend on the thread or the order it ran in. Results are taken in seed
 * order (the summary, the report and the --trace file are the same as with one thread).
 */
export async function runManyParallel(
  args: DstArgs,
  jobs: number,
  onSeed?: (r: SimResult) => void,
): Promise<{ summary: DstSummary; results: SimResult[] }> {
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  const summary = emptySummary(args)
  const seeds = args.seeds
  const done: (SimResult | undefined)[] = new Array(seeds.length)
  const results: SimResult[] = []
  let next = 0
  let emitted = 0
  const workers = Array.from(
    { length: Math.max(1, Math.min(jobs, seeds.length)) },
    () => new Worker(new URL('./worker.js', import.meta.url), { workerData: args }),
  )
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            let mine = -1
            const give = () => {
              if (next >= seeds.length) return resolve()
              mine = next++
              w.postMessage(seeds[mine])
            }
            w.on('message', (r: SimResult) => {
              done[mine] = r
              while (emitted < seeds.length && done[emitted] !== undefined) {
                const first = done[emitted]!
                done[emitted++] = undefined
                results.push(first)
                add(summary, first)
                onSeed?.(first)
              }
              give()
            })
            w.on('error', reject)
            w.on('exit', (code) => {
              if (next < seeds.length || mine >= emitted) reject(new Error(`dst worker exited (${code})`))
            })
            give()
          }),
      ),
    )
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
  rates(summary, t0, cpu0)
  return { summary, results }
}

/** the cost figures per payment (barrier: venue-wide; dissemination: per terminal) */
export function perPayment(s: DstSummary): Record<string, number> {
  const per = (x: number, d = 1) => (s.payments === 0 ? 0 : Math.round((x / s.payments / d) * 100) / 100)
  const n = s.terminals
  // per approval too: a payment declined before the barrier (a cap, the escrow share) costs none
  const perApproval = (x: number) => (s.approvals === 0 ? 0 : Math.round((x / s.approvals) * 100) / 100)
  return {
    barrierMessagesPerApproval: perApproval(s.cost.barrierMessages),
    fsyncsPerApproval: perApproval(s.cost.fsyncs),
    barrierSignatureChecksPerApproval: perApproval(s.cost.barrierSignatureChecks),
    barrierMessages: per(s.cost.barrierMessages),
    fsyncs: per(s.cost.fsyncs),
    barrierSignatureChecks: per(s.cost.barrierSignatureChecks),
    disseminationDeliveriesPerTerminal: per(s.cost.disseminationDeliveries, n),
    disseminationSignatureChecksPerTerminal: per(s.cost.disseminationSignatureChecks, n),
    catchups: per(s.cost.catchups),
    catchupEvents: per(s.cost.catchupEvents),
    catchupEventsHeld: per(s.cost.catchupEventsHeld),
  }
}

export function traceText(r: SimResult): string {
  return `seed ${r.seed}\nmix ${JSON.stringify(r.mix)}\n${r.trace.join('\n')}\n${r.violation === undefined ? 'ok' : `VIOLATION ${JSON.stringify(r.violation)}`}\n`
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv)
  const traces: string[] = []
  // one thread unless asked: on the shared 2-core dev machine (load average 7–10) a second
  // thread, with its own module load and JIT warm-up, did not pay off (docs/protocol.md)
  const jobs = Math.min(args.jobs ?? 1, args.seeds.length)
  const onSeed = (r: SimResult) => {
    if (args.trace !== undefined) traces.push(traceText(r))
    if (r.violation !== undefined && !args.quiet) {
      process.stderr.write(
        `\nseed ${r.seed}: ${r.violation.invariant} at step ${r.violation.step}\n  ${r.violation.detail}\n  fault mix: ${JSON.stringify(r.mix)}\n  last steps:\n    ${r.trace.slice(-30).join('\n    ')}\n  replay: npm run dst -- --terminals ${args.terminals} --seed ${r.seed} --steps ${args.steps}${args.faults.size === FAULTS.length ? '' : ` --faults ${[...args.faults].join(',') || 'none'}`}${args.formed === true ? ' --formed' : ''}${[...args.mutations].map((m) => ` --mutation ${m}`).join('')} --trace dst-${r.seed}.trace\n`,
      )
    } else if (!args.json && !args.quiet) {
      process.stdout.write(
        `seed ${r.seed}: ${r.steps} steps, ${r.payments} payments, ${r.approvals} approvals, ok\n`,
      )
    }
  }
  const { summary } = jobs > 1 ? await runManyParallel(args, jobs, onSeed) : runMany(args, onSeed)
  if (args.trace !== undefined) {
    const text = traces.join('\n')
    writeFileSync(args.trace, text)
    if (!args.json)
      process.stdout.write(
        `trace: ${args.trace} (sha256 ${createHash('sha256').update(text).digest('hex').slice(0, 16)})\n`,
      )
  }
  if (args.json) process.stdout.write(`${JSON.stringify({ ...summary, perPayment: perPayment(summary) })}\n`)
  else {
    process.stdout.write(
      `${summary.seeds} seeds, ${summary.steps} steps, ${summary.payments} payments, ${summary.approvals} approvals, ${summary.violations.length} violations; ${summary.stepsPerSecond} steps/s, ${summary.paymentsPerSecond} payments/s (wall; ${summary.cpuSeconds} s CPU)\n`,
    )
    const p = perPayment(summary)
    process.stdout.write(
      `per payment at ${args.terminals} terminals: barrier ${p.barrierMessages} messages, ${p.fsyncs} fsyncs, ${p.barrierSignatureChecks} signature checks; dissemination ${p.disseminationDeliveriesPerTerminal} deliveries and ${p.disseminationSignatureChecksPerTerminal} signature checks per terminal; per approval: ${p.barrierMessagesPerApproval} messages, ${p.fsyncsPerApproval} fsyncs, ${p.barrierSignatureChecksPerApproval} signature checks\n`,
    )
  }
  return summary.violations.length === 0 ? 0 : 1
}

// (a worker thread shares process.argv: it imports this module for seedOptions only)
if (
  isMainThread &&
  process.argv[1] !== undefined &&
  import.meta.url === new URL(`file://${process.argv[1]}`).href
) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      process.stderr.write(`dst: ${(err as Error).message}\n`)
      process.exitCode = 2
    },
  )
}
