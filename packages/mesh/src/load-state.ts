import type { EventLocation, Ledger, ReservationEntry } from '@nullmesh/ledger'
import type { SignedEvent } from '@nullmesh/protocol'
import { LOAD_CHUNK } from './constants.js'
import type { MeshCore } from './core/core.js'
import * as indexed from './core/indexed.js'

/**
 * Rebuild the core's view at start from the ledger's indexes (core/indexed.ts), streamed in
 * chunks: no event body is decoded but our own isolated Commits, and nothing is held in memory
 * beyond the view itself. Returns how many stored events and reservation records it read.
 */
export async function loadFromIndexes(
  core: MeshCore,
  ledger: Ledger,
  opts: { signal?: AbortSignal | undefined } = {},
): Promise<{ events: number; reservations: number }> {
  const signal = opts.signal
  const acks = await ledger.heldAcks({ signal })
  let events = 0
  let ids: EventLocation[] = []
  for await (const loc of ledger.eventIds({ signal })) {
    ids.push(loc)
    if (ids.length >= LOAD_CHUNK) {
      indexed.loadIds(core, ids)
      events += ids.length
      ids = []
    }
  }
  indexed.loadIds(core, ids)
  events += ids.length
  let reservations = 0
  const ownIsolated = new Set<string>()
  let entries: ReservationEntry[] = []
  const flush = (): void => {
    for (const id of indexed.loadReservations(core, entries, acks)) ownIsolated.add(id)
    reservations += entries.length
    entries = []
  }
  for await (const entry of ledger.reservationEntries({ signal })) {
    entries.push(entry)
    if (entries.length >= LOAD_CHUNK) flush()
  }
  flush()
  if (ownIsolated.size > 0) {
    const commits: SignedEvent[] = []
    for await (const ev of ledger.events({ origin: core.me, signal })) {
      if (ev.event.type === 'commit' && ownIsolated.has(ev.event.reservation.idHex)) commits.push(ev)
    }
    indexed.loadOwnIsolated(core, commits)
  }
  // escrow shares: every transfer we know, our debits and our credits (ledger keeps them all)
  const transfers: { signed: SignedEvent; held: boolean }[] = []
  for await (const signed of ledger.transferEvents({ signal })) transfers.push({ signed, held: false })
  core.load({
    events: transfers,
    pruned: [],
    confirmedMarks: await ledger.confirmedMarks({ signal }),
    nextSeq: await ledger.nextSeq(core.me, { signal }),
    // a refill from a quorum after a lost disk that did not finish: learn again (recovery.ts)
    relearning: await ledger.relearning({ signal }),
    // own reservations up to it were learned back: start() keeps them held (recovery.ts)
    learnedThrough: await ledger.learnedThrough({ signal }),
  })
  return { events, reservations }
}
