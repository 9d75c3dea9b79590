import { createLedger, type Ledger } from '@nullmesh/ledger'
import type { SignedEvent } from '@nullmesh/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Origin, removeDir, tempDir } from './helpers.js'

// Not a benchmark suite: prints the recordEvent latency on this machine (not asserted).
const N = 2000

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
}

function fmt(ms: number): string {
  return `${ms.toFixed(3)} ms`
}

describe('recordEvent latency (printed, not asserted)', () => {
  let dir: string
  let ledger: Ledger

  beforeAll(async () => {
    dir = await tempDir()
    ledger = createLedger({ path: dir })
    await ledger.open()
  })

  afterAll(async () => {
    await ledger?.close()
    await removeDir(dir)
  })

  async function sequential(events: SignedEvent[], sync: boolean): Promise<number[]> {
    const times: number[] = []
    for (const ev of events) {
      const t0 = performance.now()
      await ledger.recordEvent(ev, { sync, held: true })
      times.push(performance.now() - t0)
    }
    return times.sort((a, b) => a - b)
  }

  it('measures sync and non-sync writes, sequential and concurrent', async () => {
    const a = new Origin()
    const warm = Array.from({ length: 200 }, () => a.reservation())
    await sequential(warm, true)

    const syncEvents = Array.from({ length: N }, () => a.reservation())
    const syncTimes = await sequential(syncEvents, true)
    const commitTimes = await sequential(
      syncEvents.slice(0, N / 2).map((r) => a.commit(r)),
      true,
    )
    const noSyncTimes = await sequential(
      Array.from({ length: N }, () => a.reservation()),
      false,
    )

    // 4 origins writing concurrently (a terminal's own reservations plus peers' acked ones)
    const origins = Array.from({ length: 4 }, () => new Origin())
    const perOrigin = origins.map((o) => Array.from({ length: N / 4 }, () => o.reservation()))
    const t0 = performance.now()
    await Promise.all(perOrigin.map(async (evs) => sequential(evs, true)))
    const concurrentMs = performance.now() - t0

    const lines = [
      `recordEvent on classic-level, ${N} events each (this machine):`,
      `  reservation sync:true   p50 ${fmt(percentile(syncTimes, 0.5))}  p99 ${fmt(percentile(syncTimes, 0.99))}`,
      `  commit      sync:true   p50 ${fmt(percentile(commitTimes, 0.5))}  p99 ${fmt(percentile(commitTimes, 0.99))}`,
      `  reservation sync:false  p50 ${fmt(percentile(noSyncTimes, 0.5))}  p99 ${fmt(percentile(noSyncTimes, 0.99))}`,
      `  4 concurrent origins sync:true: ${((N / concurrentMs) * 1000).toFixed(0)} events/s (${fmt(concurrentMs / N)} per event)`,
    ]
    process.stdout.write(`${lines.join('\n')}\n`)
    expect(syncTimes).toHaveLength(N)
  })
})
