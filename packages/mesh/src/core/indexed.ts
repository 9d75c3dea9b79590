import type { EventLocation, ReservationEntry } from '@nullmesh/ledger'
import type { ReservationFacts } from '@nullmesh/policy'
import type { CommitMode, PaymentMethod, SignedAck, SignedEvent } from '@nullmesh/protocol'
import type { MeshCore } from './core.js'
import { facts } from './view.js'

/**
 * Start-up from the store's indexes instead of replaying every event: the view is what the
 * replay of recovery.load would build, from what the ledger keeps as point indexes anyway —
 * every stored event's (id, origin, seq), every reservation's record (facts, state, held,
 * commit modes), the acks given for held reservations — so no event body is decoded except our
 * own isolated and online commits (their seqs decide when central confirmed them; an online one's
 * acks, whether it uses the isolated budget). The adapter streams these
 * in chunks, then calls `load` with no events (nextSeq, confirmations, seqKnown) as before.
 */

/** known and idsAt of stored events; our own highest seq */
export function loadIds(core: MeshCore, ids: EventLocation[]): void {
  const view = core.view
  for (const { id, origin, seq } of ids) {
    view.known.add(id)
    view.idsAt.set(origin, seq, id)
    if (origin === view.me && seq >= view.nextSeq) view.nextSeq = seq + 1
  }
}

/**
 * Reservations from their records, as the replay of their Reservation, Commit and Release events
 * (or, for pruned bodies, recovery.load's pruned path) would apply them. Returns the ids of our
 * own reservations committed in isolated mode whose bodies are stored: the adapter passes their
 * Commits to `loadOwnIsolated`.
 */
export function loadReservations(
  core: MeshCore,
  entries: ReservationEntry[],
  acks: ReadonlyMap<string, SignedAck>,
): string[] {
  const view = core.view
  const ownIsolated: string[] = []
  // a few distinct origins, currencies and methods, each parsed anew from every record: one copy
  const interned = new Map<string, string>()
  const intern = (x: string): string => {
    const known = interned.get(x)
    if (known !== undefined) return known
    interned.set(x, x)
    return x
  }
  for (const entry of entries) {
    const { id, state } = entry
    const r = entry.summary
    if (r === undefined) {
      // only a Release of it is known: the replay marks it released and settled
      if (state === 'released') {
        view.exposure.addRelease(id)
        view.settled.add(id)
      }
      continue
    }
    const origin = intern(r.origin ?? '')
    const f: ReservationFacts = {
      id,
      origin,
      nullifier: r.nullifier,
      cardKey: r.cardKey,
      amountMinor: r.amountMinor,
      currency: intern(r.currency),
      method: intern(r.method ?? 'contactless') as PaymentMethod,
      ts: r.ts,
    }
    view.known.add(id)
    view.reservationOrigin.set(id, origin)
    // the replay holds our own reservations, those we acked and those relearned as held after a
    // lost disk (catchup.ts) — not released since
    const ack = acks.get(id)
    const held =
      origin === view.me || ack !== undefined || (r.held && (!entry.bodyStored || state !== 'released'))
    if (ack !== undefined && entry.bodyStored) view.acksGiven.set(id, ack)
    view.exposure.addReservation(f, held)
    if (state === 'committed') {
      const modes = r.modes.length > 0 ? r.modes : ['quorum']
      for (const m of modes) view.exposure.addCommit(f, m as CommitMode)
    }
    if (state === 'released') view.exposure.addRelease(id)
    if (state === 'reserved') view.inflight.add(id)
    else view.settled.add(id)
    if (r.modes.includes('isolated')) {
      // pruned means central confirmed it: no longer in the isolated budget
      if (!entry.bodyStored) view.exposure.confirmIsolated(id)
      else if (origin === view.me) ownIsolated.push(id)
    } else if (r.modes.includes('online') && origin === view.me && entry.bodyStored) {
      // its Commit says whether a quorum held it (acks): one without uses the isolated budget
      ownIsolated.push(id)
    }
  }
  return ownIsolated
}

/**
 * our own isolated Commits and online ones without acks (decoded): the isolated budget they use
 * until central confirms them
 */
export function loadOwnIsolated(core: MeshCore, commits: SignedEvent[]): void {
  const view = core.view
  for (const c of commits) {
    const e = c.event
    if (e.type !== 'commit') continue
    view.ownCommit(e.mode, e.acks.length, facts(e.reservation), e.seq)
  }
}
