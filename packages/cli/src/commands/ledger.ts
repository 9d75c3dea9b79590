import { basename, resolve } from 'node:path'
import type { VenueBundle } from '@nullmesh/policy'
import { toHex } from '@nullmesh/protocol'
import { existingDir } from '../args.js'
import { UserError } from '../errors.js'
import { openLedger } from '../ledger-dir.js'
import { nameOf, openVenue } from '../venue-tools.js'

export interface LedgerInspection {
  path: string
  events: number
  byType: Record<'reservation' | 'commit' | 'release' | 'transfer', number>
  commitsByMode: Record<'quorum' | 'isolated' | 'online', number>
  byOrigin: Record<string, { events: number; maxSeq: number; commits: number }>
  payments: number
  paymentsByStatus: Record<string, number>
  venues: string[]
  highWaterMarks: Record<string, number>
  confirmedMarks: Record<string, number>
}

/** Read a whole ledger (the terminal must be stopped) and count what is in it. */
export async function inspectLedger(data: string, bundle?: VenueBundle): Promise<LedgerInspection> {
  const ledger = await openLedger(data)
  try {
    const out: LedgerInspection = {
      path: ledger.path,
      events: 0,
      byType: { reservation: 0, commit: 0, release: 0, transfer: 0 },
      commitsByMode: { quorum: 0, isolated: 0, online: 0 },
      byOrigin: {},
      payments: 0,
      paymentsByStatus: {},
      venues: [],
      highWaterMarks: {},
      confirmedMarks: {},
    }
    const venues = new Set<string>()
    for await (const ev of ledger.events()) {
      const e = ev.event
      out.events++
      out.byType[e.type]++
      venues.add(e.venue)
      const origin = nameOf(bundle, toHex(e.origin))
      if (out.byOrigin[origin] === undefined) out.byOrigin[origin] = { events: 0, maxSeq: 0, commits: 0 }
      const o = out.byOrigin[origin]
      o.events++
      o.maxSeq = Math.max(o.maxSeq, e.seq)
      if (e.type === 'commit') {
        out.commitsByMode[e.mode]++
        o.commits++
      }
    }
    for await (const p of ledger.payments()) {
      out.payments++
      out.paymentsByStatus[p.status] = (out.paymentsByStatus[p.status] ?? 0) + 1
    }
    out.venues = [...venues]
    for (const [k, v] of Object.entries(await ledger.highWaterMarks()))
      out.highWaterMarks[nameOf(bundle, k)] = v
    for (const [k, v] of Object.entries(await ledger.confirmedMarks()))
      out.confirmedMarks[nameOf(bundle, k)] = v
    return out
  } finally {
    await ledger.close()
  }
}

export async function ledgerInspect(opts: { data: string; venue?: string; json?: boolean }): Promise<void> {
  const bundle = opts.venue === undefined ? undefined : await openVenue(existingDir(opts.venue, '--venue'))
  const r = await inspectLedger(opts.data, bundle)
  if (opts.json === true) {
    console.log(JSON.stringify(r))
    return
  }
  console.log(`ledger ${r.path}${r.venues.length > 0 ? ` (venue ${r.venues.join(', ')})` : ''}`)
  console.log(
    `  events ${r.events}: ${r.byType.reservation} reservations, ${r.byType.commit} commits, ${r.byType.release} releases`,
  )
  console.log(
    `  commits by mode: quorum ${r.commitsByMode.quorum}, isolated ${r.commitsByMode.isolated}, online ${r.commitsByMode.online}`,
  )
  console.log('  by origin:')
  for (const [origin, o] of Object.entries(r.byOrigin).sort(([a], [b]) => a.localeCompare(b))) {
    const confirmed = r.confirmedMarks[origin]
    console.log(
      `    ${origin.padEnd(14)} ${String(o.events).padStart(6)} events, ${String(o.commits).padStart(5)} commits, seq ≤ ${o.maxSeq}` +
        `${confirmed !== undefined ? `, central confirmed ≤ ${confirmed}` : ''}`,
    )
  }
  const statuses = Object.entries(r.paymentsByStatus)
    .map(([s, n]) => `${s} ${n}`)
    .join(', ')
  console.log(`  own payments ${r.payments}${statuses === '' ? '' : `: ${statuses}`}`)
  // bodies central confirmed are deleted when the terminal prunes: fewer events than the high-water mark
  const pruned = Object.entries(r.highWaterMarks).some(
    ([origin, hwm]) => (r.byOrigin[origin]?.events ?? 0) < hwm,
  )
  if (pruned)
    console.log('  (some events central confirmed were pruned: counts cover the bodies still stored)')
}

export async function ledgerExport(opts: {
  data: string
  out: string
  venue?: string
  json?: boolean
}): Promise<void> {
  const { writeLedgerExport } = await import('@nullmesh/central')
  const bundle = opts.venue === undefined ? undefined : await openVenue(existingDir(opts.venue, '--venue'))
  const ledger = await openLedger(opts.data)
  let count = 0
  let venue = bundle?.venueId
  try {
    // venue and exporting terminal for the file header: from the bundle, else from the events
    const counts = new Map<string, number>()
    for await (const ev of ledger.events()) {
      venue ??= ev.event.venue
      const origin = toHex(ev.event.origin)
      counts.set(origin, (counts.get(origin) ?? 0) + 1)
    }
    if (venue === undefined)
      throw new UserError(`the ledger in ${ledger.path} holds no events: nothing to export`, 1)
    const dirName = basename(resolve(opts.data))
    const byName = bundle?.roster.find((r) => r.id === dirName)?.id
    const busiest = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0]
    const terminal = byName ?? (busiest === undefined ? 'unknown' : nameOf(bundle, busiest).replace('…', ''))
    const events = (async function* () {
      for await (const ev of ledger.events()) yield ev.bytes
    })()
    count = await writeLedgerExport(resolve(opts.out), { venue, terminal }, events)
  } finally {
    await ledger.close()
  }
  if (opts.json === true) console.log(JSON.stringify({ out: resolve(opts.out), events: count, venue }))
  else
    console.log(
      `exported ${count} events of venue ${venue} to ${resolve(opts.out)} (merge with \`nullmesh central import\`)`,
    )
}
