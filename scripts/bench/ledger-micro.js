// Ledger write cost alone (no mesh): recordEvent with sync vs a raw LevelDB put/batch with sync.
// node scripts/bench/ledger-micro.js
import '@nullmesh/protocol/shim'
import { join } from 'node:path'
import { createLedger } from '@nullmesh/ledger'
import { createVenueBundle } from '@nullmesh/policy'
import { Level } from 'level'
import { generateEvents } from './events.js'
import { histOf, removeDir, summary, tempRoot } from './lib.js'

const root = await tempRoot('ledger')
const b = await createVenueBundle({ outDir: join(root, 'venue'), terminals: 3, venueId: 'l' })
const { byOrigin } = await generateEvents(b, join(root, 'venue'), ['T1'], 600)
const evs = byOrigin.get('T1')
const ledger = createLedger({ path: join(root, 'ledger') })
await ledger.open()
const res = [],
  com = [],
  _nos = []
for (let i = 0; i < evs.length; i += 2) {
  let t0 = performance.now()
  await ledger.recordEvent(evs[i], { sync: true, held: true })
  res.push(performance.now() - t0)
  t0 = performance.now()
  await ledger.recordEvent(evs[i + 1], { sync: true })
  com.push(performance.now() - t0)
}
const db = new Level(join(root, 'raw'), { valueEncoding: 'view' })
await db.open()
const raw = []
for (let i = 0; i < 600; i++) {
  const t0 = performance.now()
  await db.put('k' + i, evs[i].bytes, { sync: true })
  raw.push(performance.now() - t0)
}
const rawns = []
for (let i = 0; i < 600; i++) {
  const t0 = performance.now()
  await db.put('n' + i, evs[i].bytes, { sync: false })
  rawns.push(performance.now() - t0)
}
const rawb = []
for (let i = 0; i < 600; i++) {
  const t0 = performance.now()
  await db.batch(
    [
      { type: 'put', key: 'b' + i, value: evs[i].bytes },
      { type: 'put', key: 'c' + i, value: evs[i].bytes },
      { type: 'put', key: 'd' + i, value: evs[i].bytes },
    ],
    { sync: true },
  )
  rawb.push(performance.now() - t0)
}
console.log(
  JSON.stringify(
    {
      ledgerReservationSync: summary(histOf(res.slice(50))),
      ledgerCommitSync: summary(histOf(com.slice(50))),
      rawPutSync: summary(histOf(raw.slice(50))),
      rawPutNoSync: summary(histOf(rawns.slice(50))),
      rawBatch3Sync: summary(histOf(rawb.slice(50))),
    },
    null,
    1,
  ),
)
await ledger.close()
await db.close()
await removeDir(root)
