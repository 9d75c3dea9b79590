// A short chaos run (scripts/chaos.js): 4 terminals in network namespaces, custodian groups of 3
// (so each card's barrier and quorum certificate use its own group, issue 12), 20 s of seeded faults
// (cuts, partitions, loss, delay, kill + restart, central offline) under payments with double taps,
// replays and retries; then the invariants from central and every ledger. Skipped (with a note)
// where namespaces cannot be created.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { netnsUnsupported, REPO, run } from './netns-helpers.js'

const unsupported = netnsUnsupported()
if (unsupported !== undefined)
  console.warn(`[netns-chaos] SKIPPED: ${unsupported} — the chaos run in namespaces did not run`)

// a fixed seed keeps CI reproducible; NULLMESH_CHAOS_SEED=random (or a number) explores others
const SEED =
  process.env.NULLMESH_CHAOS_SEED === 'random'
    ? String(Date.now() % 1_000_000)
    : (process.env.NULLMESH_CHAOS_SEED ?? '20261121')

describe.skipIf(unsupported !== undefined)('chaos in network namespaces (short)', () => {
  it('4 terminals in groups of 3, 20 s of faults: nothing lost, nothing settled twice, no card over cap, all rejoin', async () => {
    const r = await run(
      process.execPath,
      [
        join(REPO, 'scripts/chaos.js'),
        '--terminals',
        '4',
        '--group-size',
        '3',
        '--duration',
        '20',
        '--rate',
        '3',
        '--seed',
        SEED,
        '--json',
      ],
      { timeoutMs: 150_000 },
    )
    const lines = r.stdout.trim().split('\n')
    if (r.code !== 0) console.error(`[netns-chaos] seed ${SEED} exit ${r.code}\n${r.stderr}`)
    else console.log(`[netns-chaos] seed ${SEED}: ${lines[lines.length - 1]}`)
    expect(r.stderr).toContain(`seed ${SEED}`)
    expect(r.code).toBe(0)
    const s = JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>
    expect(s.ok).toBe(true)
    expect(s.groupSize).toBe(3)
    expect(s.lost).toBe(0)
    expect(s.duplicateSettlements).toBe(0)
    expect(s.overCapInQuorum).toBe(0)
    expect(s.isolatedExposureMinor as number).toBeLessThanOrEqual(s.exposureBoundMinor as number)
    expect(s.rejoined).toBe(4)
    expect(s.approved as number).toBeGreaterThan(0)
    // every namespace it created (all named <prefix>-*) is gone
    const prefix = s.prefix as string
    expect(prefix).toMatch(/^nm[0-9a-f]{4}$/)
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.startsWith(`${prefix}-`))
    expect(left).toEqual([])
  }, 180_000)
})
