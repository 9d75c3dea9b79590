import type { ReservationSummary } from '@nullmesh/ledger'
import type { ReservationFacts } from '@nullmesh/policy'
import type { CommitMode, PaymentMethod, Reservation, SignedAck, SignedEvent } from '@nullmesh/protocol'
import type { MeshCore, Op } from './core.js'
import * as responder from './responder.js'
import { facts } from './view.js'

/** What the store holds at start, read by the adapter (LevelDB ledger, or the simulator's disk). */
export interface LoadedState {
  /** stored events in store order; `held`: originated or acked by us, with the ack we gave */
  events: { signed: SignedEvent; held: boolean; ackGiven?: SignedAck | undefined }[]
  /** reservations whose bodies were pruned after central confirmed them (their indexes survive) */
  pruned: ReservationSummary[]
  confirmedMarks: Record<string, number>
  /** the store's next own seq (1 for an empty store) */
  nextSeq: number
  /** the store's durable "relearning" mark: a refill from a quorum after a lost disk did not finish */
  relearning?: boolean | undefined
  /** the largest own seq a finished relearning took back (0: none) */
  learnedThrough?: number | undefined
}

export interface Pending {
  reservation: SignedEvent<Reservation>
  /** an online attempt that central may have authorised: kept pending until it is voided */
  keepPending: boolean
}

/** Rebuild the view from the store. */
export function load(core: MeshCore, state: LoadedState): void {
  const view = core.view
  for (const { signed, held, ackGiven } of state.events) {
    if (signed.event.type === 'reservation' && held && ackGiven !== undefined)
      view.acksGiven.set(signed.idHex, ackGiven)
    view.apply(signed, signed.event.type === 'reservation' ? held : false)
  }
  // Bodies central confirmed may have been pruned: their reservations still hold their nullifier
  // and count in their card's window, from the indexes the store keeps (a replayed credential
  // must not be approved again after a restart, nor a card pass its cap).
  for (const r of state.pruned) {
    if (view.known.has(r.id)) continue
    const f: ReservationFacts = {
      id: r.id,
      origin: r.origin ?? '',
      nullifier: r.nullifier,
      cardKey: r.cardKey,
      amountMinor: r.amountMinor,
      currency: r.currency,
      method: (r.method ?? 'contactless') as PaymentMethod,
      ts: r.ts,
    }
    view.known.add(r.id)
    view.reservationOrigin.set(r.id, f.origin)
    view.exposure.addReservation(f, r.held)
    if (r.state === 'committed') {
      const modes = r.modes.length > 0 ? r.modes : ['quorum']
      for (const m of modes) view.exposure.addCommit(f, m as CommitMode)
    }
    if (r.state === 'released') view.exposure.addRelease(r.id)
    if (r.state !== 'reserved') view.settled.add(r.id)
    // pruned means central confirmed it: an isolated approval no longer uses the isolated budget
    if (r.modes.includes('isolated')) view.exposure.confirmIsolated(r.id)
  }
  view.confirmed(state.confirmedMarks)
  view.nextSeq = Math.max(view.nextSeq, state.nextSeq)
  // An intact store knows our own high-water mark (own events are durable before they leave).
  // An empty one may be a lost disk: learn from a quorum before signing (catchup.ts). One with the
  // relearning mark is neither: a refill from a quorum (written without fsync) was cut by a crash,
  // so whatever own events it holds say nothing about our high-water mark: learn again.
  core.relearning = state.relearning === true && !core.mut('no-relearning-mark')
  core.learnedThrough = Math.max(core.learnedThrough, state.learnedThrough ?? 0)
  view.seqKnown =
    (view.nextSeq > 1 && !core.relearning) || core.rosterQuorum <= 1 || core.mut('reuse-seq-after-wipe')
}

/**
 * Learned once a quorum of peers taught us (catchup.ts) **and** central gave back the own events it
 * kept, or could not be asked. Peers alone miss an own event that reached no peer: an isolated
 * approval synced to central before the disk was lost (simulator seed 14 at 40,000 steps signed
 * its seq again, and central refused the new events as ERR_SEQ_CONFLICT).
 */
export function maybeLearned(core: MeshCore): void {
  if (core.view.seqKnown || core.learnedFrom.size < core.learnQuorum) return
  if (core.refill === 'awaiting') return
  learned(core)
}

/** the refill from central ended (ok: every page was given; otherwise central could not be asked) */
export function refillEnded(core: MeshCore, ok: boolean): void {
  if (core.refill !== 'awaiting') return
  core.refill = 'done'
  core.log(
    ok
      ? `own events taken back from central: next seq ${core.view.nextSeq}`
      : 'central could not give our own events back: learning from peers only',
  )
  maybeLearned(core)
}

/**
 * Our own history was learned from a quorum (catchup.ts). With the relearning mark set, we sign
 * nothing until what was learned is durable and the mark is durably cleared: the first write
 * syncs every earlier (unsynced) write of the refill; the mark is cleared only after it, so a
 * store without the mark always holds the learned history. Until the clear is durable, a crash
 * leaves the mark and the next start learns again.
 */
export function learned(core: MeshCore): void {
  if (core.relearning) {
    if (core.clearing) return
    core.clearing = true
    const synced = core.write([], { sync: true, own: false, relearning: true })
    core.onDurable(synced, (ok) => {
      if (!ok) {
        core.clearing = false // the next catch-up that ends tries again
        return
      }
      // what was learned back is kept with the cleared mark: start() must not release those
      const through = core.view.nextSeq - 1
      const cleared = core.write([], { sync: true, own: false, relearning: false, learnedThrough: through })
      core.onDurable(cleared, (done) => {
        core.clearing = false
        core.relearning = !done
        if (done) core.learnedThrough = Math.max(core.learnedThrough, through)
        if (done) learned(core)
      })
    })
    return
  }
  core.view.seqKnown = true
  core.log(`learned our own history from ${core.learnedFrom.size} peers: next seq ${core.view.nextSeq}`)
  // barrier requests parked while we relearned are answered now
  responder.wake(core)
}

/**
 * Recovery on start: our own reservations without Commit or Release that this store wrote were
 * never answered "approved" (the Commit is durable here before the answer). An offline one is
 * released. One that was sent to central (keepPending) may have been authorised there: it stays
 * pending until central has been asked (the terminal voids it). One learned back after a lost disk
 * (seq ≤ learnedThrough) says nothing by lacking a Commit here: its Commit may be held only by peers
 * outside the learn quorum, or have died with the old disk after the answer. Releasing it freed the
 * card's headroom of an approved payment (simulator seed 2449): it is kept held, as a dead
 * terminal's reservation is, until its Commit arrives or central abandons it.
 */
export function* start(core: MeshCore, pending: Pending[]): Op<number> {
  core.reach.quorumLostAt = core.mono()
  core.started = true
  let released = 0
  if (!core.view.seqKnown) {
    // We ask central for the own events it kept, and learning waits for its answer (maybeLearned)
    // from now on, before anything is awaited: peers may teach us while the mark below is being
    // written, and a refill not yet awaited then would not hold learning back (simulator seed
    // 3394: a quorum of catch-ups ended during the mark's fsync, the terminal learned from peers
    // alone, ignored the isolated approval central gave back and signed its seq again).
    const refill =
      core.init.centralRefill === true && core.refill === 'none' && !core.mut('no-central-refill')
    if (refill) core.refill = 'awaiting'
    // A store we cannot trust for our high-water mark: mark it durably before anything is learned
    // (learned() clears the mark). Its own reservations, if any, were learned back, not written by
    // us: they are not released (docs/protocol.md, "lost-disk-online-pending" says why).
    if (!core.relearning && !core.mut('no-relearning-mark')) {
      core.relearning = true
      yield { w: 'durable', id: core.write([], { sync: true, own: false, relearning: true }) }
    }
    if (refill) core.out({ type: 'refill' })
    core.updateMode()
    return released
  }
  // a single-terminal venue has nothing to learn from: a leftover mark is cleared
  if (core.relearning) learned(core)
  for (const p of pending) {
    if (p.reservation.event.seq <= core.learnedThrough && !core.mut('release-relearned')) {
      core.log(`own reservation seq ${p.reservation.event.seq} learned back without its outcome: kept held`)
      continue
    }
    if (p.keepPending && !core.mut('release-pending-online')) {
      // whether a quorum held it was not written down: it uses the isolated budget until resolved
      // with central (the safe side; a Commit with acks afterwards would not count, but the acks
      // are lost with the restart: view.ts ownCommit)
      const f = facts(p.reservation)
      core.view.exposure.exposeUnheld(f.id, core.view.unheldExposure?.(f) ?? 0)
      continue
    }
    const { write } = core.appendOwn({
      type: 'release',
      reservationId: p.reservation.id,
      reason: 'recovered_after_restart',
    })
    yield { w: 'durable', id: write }
    released++
  }
  core.updateMode()
  return released
}
