#!/usr/bin/env node
import { ALL_MUTATIONS, type AnyMutation, FAULTS, runSeed, type Violation } from './sim.js'

/**
 * The simulator's teeth: run each known-bad mutation of the core until a seed fails.
 * `npm run dst:mutants -- [--json] [--max-seeds 200] [--steps 3000] [--terminals 5] [--only a,b]`
 */
export interface MutantResult {
  name: AnyMutation
  caught: boolean
  /** seeds run until the first violation (or all of them) */
  seeds: number
  violation?: Violation | undefined
}

/**
 * Terminals a mutant needs to matter: custodian groups only differ from the roster when it is
 * larger than barrier.groupSize (5 by default).
 */
export const MUTANT_MIN_TERMINALS: Partial<Record<AnyMutation, number>> = { 'ack-outside-group': 9 }

/**
 * Steps a mutant's path needs: the central-only scenario (aimed.ts) starts after another aimed
 * scenario ended and takes a few simulated seconds (a cut, the isolated probe time, a sync, a wipe).
 */
export const MUTANT_MIN_STEPS: Partial<Record<AnyMutation, number>> = {
  'no-central-refill': 12_000,
  // the relearned-outcome scenario runs once the other three are done
  'release-relearned': 40_000,
}

export function runMutant(
  name: AnyMutation,
  opts: { maxSeeds: number; steps: number; terminals: number; firstSeed?: number },
): MutantResult {
  const mutations = Object.freeze(new Set<AnyMutation>([name]))
  const terminals = Math.max(opts.terminals, MUTANT_MIN_TERMINALS[name] ?? 0)
  const steps = Math.max(opts.steps, MUTANT_MIN_STEPS[name] ?? 0)
  const first = opts.firstSeed ?? 1
  for (let k = 0; k < opts.maxSeeds; k++) {
    const r = runSeed({
      terminals,
      seed: first + k,
      steps,
      faults: new Set(FAULTS),
      mutations,
    })
    if (r.violation === undefined) continue
    // a seed that fails without the mutation too says nothing about the mutation (e.g. an open
    // finding): not a catch
    const clean = runSeed({ terminals, seed: first + k, steps, faults: new Set(FAULTS) })
    if (clean.violation !== undefined) continue
    return { name, caught: true, seeds: k + 1, violation: r.violation }
  }
  return { name, caught: false, seeds: opts.maxSeeds }
}

function main(argv: string[]): number {
  let json = false
  let maxSeeds = 200
  let steps = 4000
  let terminals = 5
  let only: AnyMutation[] = [...ALL_MUTATIONS]
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--json') json = true
    else if (a === '--max-seeds') maxSeeds = Number(argv[++i])
    else if (a === '--steps') steps = Number(argv[++i])
    else if (a === '--terminals') terminals = Number(argv[++i])
    else if (a === '--only') only = (argv[++i] ?? '').split(',') as AnyMutation[]
    else throw new Error(`unknown option ${a}`)
  }
  for (const m of only) if (!ALL_MUTATIONS.includes(m)) throw new Error(`unknown mutation ${m}`)
  const mutants: MutantResult[] = []
  for (const name of only) {
    const t0 = performance.now()
    const r = runMutant(name, { maxSeeds, steps, terminals })
    mutants.push(r)
    if (!json)
      process.stdout.write(
        `${name.padEnd(28)} ${r.caught ? `caught after ${r.seeds} seed(s): ${r.violation!.invariant} (seed ${r.violation!.seed}, step ${r.violation!.step})` : `NOT caught in ${r.seeds} seeds`} [${((performance.now() - t0) / 1000).toFixed(1)} s]\n`,
      )
  }
  const caught = mutants.filter((m) => m.caught).length
  const out = {
    mutants: mutants.map((m) => ({
      name: m.name,
      caught: m.caught,
      seeds: m.seeds,
      ...(m.violation === undefined ? {} : { invariant: m.violation.invariant, seed: m.violation.seed }),
    })),
    caught,
    total: mutants.length,
  }
  if (json) process.stdout.write(`${JSON.stringify(out)}\n`)
  else process.stdout.write(`${caught}/${mutants.length} mutants caught\n`)
  return caught === mutants.length ? 0 : 1
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  try {
    process.exitCode = main(process.argv.slice(2))
  } catch (err: unknown) {
    process.stderr.write(`dst:mutants: ${(err as Error).message}\n`)
    process.exitCode = 2
  }
}
