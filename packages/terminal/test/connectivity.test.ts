import { backoffDelay, CONNECTIVITY_DEFAULTS, ConnectivityMonitor } from '@nullmesh/terminal'
import { expect, test } from 'vitest'

test('backoff: first retry within 100 ms, doubling, capped at 5 s, jittered', () => {
  expect(backoffDelay(0, CONNECTIVITY_DEFAULTS, () => 0)).toBe(100)
  expect(backoffDelay(0, CONNECTIVITY_DEFAULTS, () => 0.999)).toBeGreaterThanOrEqual(50)
  expect(backoffDelay(1, CONNECTIVITY_DEFAULTS, () => 0)).toBe(200)
  expect(backoffDelay(5, CONNECTIVITY_DEFAULTS, () => 0)).toBe(3200)
  for (let attempt = 6; attempt < 40; attempt++) {
    expect(backoffDelay(attempt, CONNECTIVITY_DEFAULTS, () => 0)).toBe(5000)
    expect(backoffDelay(attempt, CONNECTIVITY_DEFAULTS, Math.random)).toBeGreaterThanOrEqual(2500)
  }
})

test('monitor: probes, backs off, emits each change once, stops cleanly', async () => {
  let up = false
  const probes: number[] = []
  const monitor = new ConnectivityMonitor(
    async () => {
      probes.push(Date.now())
      if (!up) throw new Error('down')
    },
    { probeIntervalMs: 30, maxDelayMs: 80 },
  )
  const changes: boolean[] = []
  monitor.addEventListener('change', (e) =>
    changes.push((e as CustomEvent<{ online: boolean }>).detail.online),
  )
  monitor.start()
  monitor.start()
  await new Promise((r) => setTimeout(r, 300))
  expect(monitor.online).toBe(false)
  // 0, ≤100, ≤80 (capped), … : several retries within 300 ms
  expect(probes.length).toBeGreaterThanOrEqual(4)
  up = true
  await monitor.waitOnline({ signal: AbortSignal.timeout(1000) })
  expect(changes).toEqual([true])
  monitor.reportFailure(new Error('authorize failed'))
  expect(monitor.online).toBe(false)
  await monitor.waitOnline({ signal: AbortSignal.timeout(1000) })
  expect(changes).toEqual([true, false, true])
  await monitor.stop()
  await monitor.stop()
  const n = probes.length
  await new Promise((r) => setTimeout(r, 100))
  expect(probes.length).toBe(n)
})
