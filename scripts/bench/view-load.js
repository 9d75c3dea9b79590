// The view's start-up alone: load a ledger's indexes into a fresh core, report time and heap.
// node --expose-gc scripts/bench/view-load.js <ledgerDir> <venueDir> <terminalId>
import '@nullmesh/protocol/shim'
import { createLedger } from '@nullmesh/ledger'
import { loadTerminalKey, loadVenueBundle } from '@nullmesh/policy'

const [dir, venueDir, id] = process.argv.slice(2)
const { MeshCore } = await import('../../packages/mesh/dist/core/index.js')
const { loadFromIndexes } = await import('../../packages/mesh/dist/load-state.js')
const bundle = await loadVenueBundle(venueDir)
const key = await loadTerminalKey(venueDir, id)
const ledger = createLedger({ path: dir })
const t0 = performance.now()
await ledger.open()
const tOpen = performance.now() - t0
globalThis.gc?.()
const h0 = process.memoryUsage().heapUsed
const core = new MeshCore({
  venueId: bundle.venueId,
  policy: bundle.policy,
  key,
  roster: { size: bundle.roster.length, isEnrolled: () => true },
  clock: { wall: Date.now, mono: () => performance.now() },
  rng: Math.random,
  effects: () => {},
})
const t1 = performance.now()
const cpu0 = process.cpuUsage()
const n = await loadFromIndexes(core, ledger)
const cpu = process.cpuUsage(cpu0)
const tLoad = performance.now() - t1
globalThis.gc?.()
const h1 = process.memoryUsage().heapUsed
console.log(
  JSON.stringify({
    ...n,
    openMs: Math.round(tOpen),
    loadMs: Math.round(tLoad),
    loadCpuMs: Math.round((cpu.user + cpu.system) / 1000),
    viewHeapMiB: Math.round(((h1 - h0) / 2 ** 20) * 10) / 10,
    rssMiB: Math.round((process.memoryUsage().rss / 2 ** 20) * 10) / 10,
  }),
)
await ledger.close()
if (process.env.BREAKDOWN) {
  const v = core.view
  const parts = {}
  let last = process.memoryUsage().heapUsed
  for (const name of ['known', 'reservationOrigin', 'settled', 'inflight', 'acksGiven']) {
    v[name].clear()
    globalThis.gc()
    const now = process.memoryUsage().heapUsed
    parts[name] = Math.round(((last - now) / 2 ** 20) * 10) / 10
    last = now
  }
  v.exposure = null
  core.view.exposure = null
  Object.defineProperty(v, 'exposure', { value: null })
  globalThis.gc()
  parts.exposureAndRest = Math.round(((last - process.memoryUsage().heapUsed) / 2 ** 20) * 10) / 10
  console.log(JSON.stringify(parts))
}
