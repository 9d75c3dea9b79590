import { decideOffline, decideUnheldOnline, originView, unheldOnlineExposure } from '@nullmesh/policy'
import {
  type CommitMode,
  createProof,
  type DeclineCode,
  decodeAck,
  equalBytes,
  isDeclineCode,
  ONLINE_ACK_REASON,
  type ProofDecision,
  type Reservation,
  type SignedAck,
  type SignedEvent,
  signAck,
  toHex,
  verifyAckSignature,
} from '@nullmesh/protocol'
import { REACHABILITY_POLL_MS } from '../constants.js'
import { CoreError, type MeshCore, type Op } from './core.js'
import * as escrow from './escrow.js'
import type { BarrierStats, MeshMode, OfflineCandidate, OfflineDecision } from './types.js'

/**
 * Barrier origin: the offline decision (policy → durable reservation → barrier → durable commit →
 * proof, within the tap budget), the online reservation held by a quorum before central is asked,
 * and the online outcome. Each is a generator the core runs: it yields what it waits for.
 */

export type Outcome =
  | { kind: 'quorum'; acks: SignedAck[] }
  | { kind: 'refused'; code: string; acks: number }
  | { kind: 'unreachable' | 'timeout'; acks: number }

/** One barrier round: requests out, acks in, until quorum, impossibility or timeout. */
export class Round {
  readonly acks: SignedAck[]
  readonly outstanding = new Map<number, string>()
  refusal: string | undefined
  result: Outcome | undefined
  timer = 0
  private cb: ((o: Outcome) => void) | undefined

  constructor(
    readonly reservation: SignedEvent<Reservation>,
    readonly reason: string,
    /** our own ack: only when we are a member of the card's custodian group */
    self: SignedAck | undefined,
    /** acks needed: a majority of the card's custodian group */
    readonly quorum: number,
  ) {
    this.acks = self === undefined ? [] : [self]
  }

  onFinish(cb: (o: Outcome) => void): void {
    if (this.result !== undefined) cb(this.result)
    else this.cb = cb
  }

  finish(core: MeshCore, o: Outcome): void {
    if (this.result !== undefined) return
    this.result = o
    core.cancel(this.timer)
    for (const rid of this.outstanding.keys()) core.rounds.delete(rid)
    this.outstanding.clear()
    this.cb?.(o)
  }
}

const RETRYABLE: ReadonlySet<string> = new Set([
  'nullifier_seen',
  'card_cap_exceeded',
  'card_count_exceeded',
  'device_cap_exceeded',
  'venue_cap_exceeded',
  'conflict',
  // a member still catching up after a (re)connection: with group members dialled on demand, new
  // connections are frequent and each starts with a catch-up; it ends soon
  'catching_up',
])

/**
 * Collect acks from the card's custodian group until a majority of the group acked, one is no
 * longer possible, or `timeoutMs` passes. Our own ack counts only if we are a member.
 * `online`: the peers judge it by the online rules and answer with an `online` ack.
 */
export function collect(
  core: MeshCore,
  reservation: SignedEvent<Reservation>,
  view: string[],
  opts: { timeoutMs: number; online: boolean },
): Round {
  const reason = opts.online ? ONLINE_ACK_REASON : ''
  const group = core.groupOf(reservation.event.cardKey)
  const member = group.has(core.me)
  const self = member
    ? signAck(core.key, {
        venue: core.venueId,
        acker: core.key.publicKey,
        reservationId: reservation.id,
        ok: true,
        reason,
        ts: core.wall(),
      })
    : undefined
  const round = new Round(reservation, reason, self, core.quorum)
  // mutation 'ack-outside-group': every ready peer is asked and counted, member or not
  const anyone = core.mut('ack-outside-group')
  // the group's ready members (sorted, as ready() is): O(G) per round, not O(roster)
  const targets = anyone ? core.reach.ready() : core.reach.readyAmong(group.members)
  if (targets.length + round.acks.length < round.quorum) {
    round.finish(core, { kind: 'unreachable', acks: round.acks.length })
    return round
  }
  // a group of one (or a quorum of one): our own durable ack is the quorum
  if (round.acks.length >= round.quorum) {
    round.finish(core, { kind: 'quorum', acks: round.acks })
    return round
  }
  round.timer = core.after(opts.timeoutMs, () =>
    round.finish(core, { kind: 'timeout', acks: round.acks.length }),
  )
  for (const peer of targets) {
    const rid = core.nextRid++
    round.outstanding.set(rid, peer)
    core.rounds.set(rid, round)
    core.send(peer, { t: 'req', rid, bytes: reservation.bytes, view, online: opts.online })
  }
  return round
}

/** a peer's answer (null: no answer, the stream failed, or the peer was lost) */
export function onAnswer(core: MeshCore, from: string, rid: number, bytes: Uint8Array | null): void {
  const round = core.rounds.get(rid)
  if (round === undefined || round.outstanding.get(rid) !== from) return
  round.outstanding.delete(rid)
  core.rounds.delete(rid)
  const decoded = bytes === null ? undefined : decodeAck(bytes)
  const ack = decoded?.ok === true ? decoded.value : undefined
  const valid =
    ack !== undefined &&
    equalBytes(ack.ack.reservationId, round.reservation.id) &&
    toHex(ack.ack.acker) === from &&
    !core.isRevoked(from, ack.ack.ts) &&
    verifyAckSignature(ack)
  if (valid && ((ack.ack.ok && ack.ack.reason === round.reason) || core.mut('refusal-as-ack'))) {
    round.acks.push(ack)
    if (round.acks.length >= round.quorum) round.finish(core, { kind: 'quorum', acks: round.acks })
  } else if (valid && !ack.ack.ok) {
    // a refusal does not end the barrier while a quorum is still possible: safety comes from
    // quorum intersection, and stopping at the first "no" turns contention into livelock
    round.refusal ??= ack.ack.reason
  }
  if (round.result === undefined && round.acks.length + round.outstanding.size < round.quorum) {
    round.finish(
      core,
      round.refusal !== undefined
        ? { kind: 'refused', code: round.refusal, acks: round.acks.length }
        : { kind: 'unreachable', acks: round.acks.length },
    )
  }
}

export function peerLost(core: MeshCore, key: string): void {
  const rids: number[] = []
  for (const [rid, round] of core.rounds) if (round.outstanding.get(rid) === key) rids.push(rid)
  for (const rid of rids) onAnswer(core, key, rid, null)
}

/**
 * Wait (within the deadline) until a majority of the card's custodian group is reachable or known
 * to be unreachable. A card whose group has no reachable majority alone takes the isolated path.
 */
function* awaitReachability(
  core: MeshCore,
  op: number,
  deadline: number,
  cardKey: Uint8Array,
): Op<'quorum' | 'isolated' | 'unknown'> {
  const group = core.groupOf(cardKey)
  const hex = toHex(cardKey)
  const down = (k: string) => core.memberDown(k)
  for (;;) {
    const outside = core.mut('ack-outside-group')
    // members we are not connected to are dialled now; until a dial fails they are possibly
    // reachable, so "not connected" alone never sends a card to the isolated rules
    if (!outside) core.dialGroup(group.members, deadline - core.mono())
    const r = outside
      ? core.reach.reach(core.mono())
      : core.reach.reachGroup(group.members, core.me, core.quorum, core.mono(), down)
    if (r !== 'unknown') core.noteGroupReach(hex, r === 'quorum')
    // our history, learned from a quorum, is being made durable (recovery.learned): wait for it
    const settling = r === 'quorum' && core.clearing
    if ((r !== 'unknown' && !settling) || core.mono() >= deadline) return r
    core.throwIfAborted(op)
    yield { w: 'sleep', ms: Math.min(REACHABILITY_POLL_MS, Math.max(1, deadline - core.mono())) }
  }
}

/** A terminal without its own history learns it (from a roster majority, dialled) within the deadline. */
function* awaitHistory(core: MeshCore, op: number, deadline: number): Op<boolean> {
  for (;;) {
    if (core.view.seqKnown) return true
    if (core.mono() >= deadline || core.reach.partitioned) return false
    core.learnHistory(deadline - core.mono())
    core.throwIfAborted(op)
    yield { w: 'sleep', ms: Math.min(REACHABILITY_POLL_MS, Math.max(1, deadline - core.mono())) }
  }
}

function proofFor(
  core: MeshCore,
  candidate: OfflineCandidate,
  decision: ProofDecision,
  seq: number,
  ts: number,
  declineCode?: DeclineCode,
): Uint8Array {
  return createProof(core.key, {
    nullifier: candidate.nullifier,
    amountMinor: candidate.amountMinor,
    currency: candidate.currency,
    decision,
    declineCode,
    ts,
    seq,
    policyVersion: core.policy.version,
  })
}

/** randomised exponential back-off: contenders for one card spread out instead of colliding again */
function backoff(core: MeshCore, attempt: number, timeLeft: number): { w: 'sleep'; ms: number } {
  // the window must exceed a barrier round, or contenders meet again: scale by the recent one
  const window = (core.policy.barrier.retryJitterMs + core.recentBarrierMs) * 2 ** (attempt - 1)
  return { w: 'sleep', ms: Math.min(2 + core.rng() * window, Math.max(0, timeLeft)) }
}

function appendReservation(core: MeshCore, candidate: OfflineCandidate) {
  const { signed, write } = core.appendOwn({
    type: 'reservation',
    nullifier: candidate.nullifier,
    cardKey: candidate.cardKey,
    amountMinor: candidate.amountMinor,
    currency: candidate.currency,
    method: candidate.method,
    policyVersion: core.policy.version,
  })
  return { signed: signed as SignedEvent<Reservation>, write }
}

/**
 * fsync before send, for Releases too: a Release pushed before it is durable and lost in a crash
 * leaves peers holding (origin, seq) while the restarted origin signs another event (the recovery
 * release of the same reservation) with that seq — equivocation at the peers, ERR_SEQ_CONFLICT at
 * central for the rest of the origin's log. Found by the simulator (docs/protocol.md,
 * "Found by the simulator"). The decision does not wait for it: nothing was approved.
 */
function publishWhenDurable(core: MeshCore, signed: SignedEvent, write: number, cardKey: Uint8Array): void {
  core.onDurable(write, (ok) => {
    if (ok) core.publish(signed, cardKey)
  })
}

/** mutation `isolated-window`: the isolated budget measured per card window, not until central confirms */
function windowedIsolatedBudget(core: MeshCore, now: number): void {
  if (core.mut('isolated-window')) core.view.confirmWhere((c) => c.ts < now - core.policy.cardWindowMs)
}

export function* authorize(
  core: MeshCore,
  op: number,
  candidate: OfflineCandidate,
  opts: { reservation?: SignedEvent<Reservation> | undefined; deadline?: number | undefined },
): Op<OfflineDecision> {
  const t0 = core.mono()
  // every decision returns within the tap budget; a barrier round needs a little room to commit
  const deadline = opts.deadline ?? t0 + core.tapBudgetMs
  const retries = core.policy.barrier.retries
  let lastAcks = 0
  let attempts = 0
  let lastReleaseSeq = 0
  const stats = (): BarrierStats => ({
    acks: lastAcks,
    quorum: core.quorum,
    ms: Math.round((core.mono() - t0) * 1000) / 1000,
    attempts,
  })
  // An existing reservation of ours (an online attempt whose answer never came): decided offline
  // under the same payment identity, and never released here — the caller must void it at
  // central first, since central may have authorised it.
  const existing = opts.reservation
  // decided offline now: its Commit, if any, is not an online one
  if (existing !== undefined) core.onlineAcks.delete(existing.idHex)
  // Our own reservation of this decision, kept held after a round that only ran out of time (slow
  // peers, or one still catching up) and asked again as is: its holders answer the retry from the
  // ack they gave, where a new reservation would wait for its fsync and be refused `nullifier_seen`
  // by every peer that still holds the first one (docs/protocol.md, "Retries keep the reservation").
  // Released once, when the decision declines.
  let kept: SignedEvent<Reservation> | undefined
  const releaseKept = (reason: string): number => {
    if (kept === undefined) return 0
    const { signed: release, write } = core.appendOwn({ type: 'release', reservationId: kept.id, reason })
    publishWhenDurable(core, release, write, kept.event.cardKey)
    kept = undefined
    return release.event.seq
  }
  const decline = (mode: MeshMode, code: string, message?: string, seq = 0): OfflineDecision => {
    if (kept !== undefined) seq = releaseKept(code)
    const declineCode: DeclineCode = isDeclineCode(code) ? code : 'other'
    const ts = core.wall()
    return {
      approved: false,
      decision: 'declined_offline',
      declineCode,
      message,
      mode,
      seq,
      ts,
      proof: proofFor(core, candidate, 'declined_offline', seq, ts, declineCode),
      barrier: stats(),
      ...(existing === undefined ? {} : { reservationId: existing.idHex }),
    }
  }
  // the barrier (and any wait before it) ends early enough to commit, or to record a decline,
  // within the deadline; re-read each time, since the fsync latency it keeps room for moves
  const timeLeft = () => deadline - core.finishReserveMs() - core.mono()
  let lastReason: { code: string; message?: string | undefined } | undefined
  try {
    for (;;) {
      core.throwIfAborted(op)
      attempts++
      // Another round only if it can finish in time: a reservation made now would wait for its own
      // fsync and then for a round that has no time left, and decide after the deadline.
      if (
        lastReason !== undefined &&
        existing === undefined &&
        !core.mut('no-finish-reserve') &&
        timeLeft() < core.recentDurableMs + core.recentBarrierMs
      )
        return decline('quorum', lastReason.code, lastReason.message, lastReleaseSeq)
      const reach = yield* awaitReachability(core, op, deadline - core.finishReserveMs(), candidate.cardKey)
      if (reach === 'unknown')
        return decline(
          core.reach.mode,
          'quorum_unavailable',
          'peers are still connecting: no quorum within the tap budget',
        )
      if (!(yield* awaitHistory(core, op, deadline - core.finishReserveMs())))
        return decline(
          core.reach.mode,
          'quorum_unavailable',
          'this terminal has no history of its own yet and has not learned it from a quorum',
        )
      // isolated: a kept reservation goes (its holders are out of reach); the isolated path makes its own
      if (reach === 'isolated') lastReleaseSeq = releaseKept('quorum_unavailable') || lastReleaseSeq
      const now = core.wall()
      const again = existing ?? kept
      const base = {
        id: again?.idHex,
        origin: core.me,
        nullifier: toHex(candidate.nullifier),
        cardKey: toHex(candidate.cardKey),
        amountMinor: candidate.amountMinor,
        currency: candidate.currency,
        method: candidate.method,
        bin: candidate.bin,
        ts: again?.event.ts ?? now,
      }
      if (reach === 'isolated') return yield* authorizeIsolated(core, candidate, base, stats, existing)
      const verdict = decideOffline(core.policy, core.view.exposure, base, { mode: 'quorum', now })
      if (!verdict.approve) {
        // the conflict may be a reservation still in flight that is about to be released
        if (
          RETRYABLE.has(verdict.code) &&
          core.view.inflight.size > 0 &&
          attempts <= retries &&
          timeLeft() > 0
        ) {
          lastReason = { code: verdict.code, message: verdict.message }
          yield backoff(core, attempts, timeLeft())
          continue
        }
        return decline('quorum', verdict.code, verdict.message)
      }
      // the venue cap, exactly: within this terminal's escrow share, no coordination needed
      const room = escrow.fits(core, candidate.currency, candidate.amountMinor, now, again?.event.amountMinor)
      if (!room.ok) return decline('quorum', 'venue_cap_exceeded', room.message)
      // The waits above (reachability, our own history) may have used the budget: a reservation made
      // now waits for its fsync, then for a round, and would decide after the deadline.
      if (
        existing === undefined &&
        !core.mut('no-finish-reserve') &&
        timeLeft() < core.recentDurableMs + core.recentBarrierMs
      )
        return lastReason !== undefined
          ? decline('quorum', lastReason.code, lastReason.message, lastReleaseSeq)
          : decline('quorum', 'barrier_timeout', 'no time left in the tap budget for a barrier round')
      const appended = again === undefined ? appendReservation(core, candidate) : undefined
      const res = appended?.signed ?? again!
      // The view is what this decision counted: taken in the same synchronous step as the decision,
      // before anything is awaited. Taken after the fsync it could name a reservation committed
      // meanwhile that the decision never counted, and a peer holding it would wrongly find no
      // conflict (this broke a card cap in the double-tap sim; mutant 'view-after-fsync').
      const view = core.mut('view-after-fsync')
        ? undefined
        : originView(core.policy, core.view.exposure, { ...base, id: res.idHex })
      // fsync before send: peers must never hold a reservation we could lose in a crash (we would
      // reuse its seq for another event, and the peers would hold it for good)
      if (appended !== undefined && !core.mut('send-before-durable')) {
        // A stalled disk must not hold the tap past its deadline: a reservation not durable in time
        // is declined at once (nothing was sent; its Release follows it in our log, sent when durable)
        const inTime = yield {
          w: 'durable',
          id: appended.write,
          ...(core.mut('no-finish-reserve') ? {} : { until: deadline - core.finishReserveMs() }),
        }
        if (inTime === false) {
          const { signed: release, write } = core.appendOwn({
            type: 'release',
            reservationId: res.id,
            reason: 'barrier_timeout',
          })
          publishWhenDurable(core, release, write, res.event.cardKey)
          return decline(
            'quorum',
            'barrier_timeout',
            'our own reservation was not durable within the tap budget (a slow disk)',
            release.event.seq,
          )
        }
      }
      // nothing left for a round (a late start: the online attempt's answer, or a starved loop,
      // came after the deadline less its reserve): decline now rather than approve late
      if (timeLeft() <= 0 && !core.mut('no-finish-reserve')) {
        if (appended !== undefined) kept = res // released by the decline (an online one is voided by its caller)
        return decline('quorum', 'barrier_timeout', 'no time left in the tap budget for a barrier round')
      }
      const roundStart = core.mono()
      const round = collect(
        core,
        res,
        view ?? originView(core.policy, core.view.exposure, { ...base, id: res.idHex }),
        {
          timeoutMs: Math.min(core.policy.barrier.timeoutMs, timeLeft()),
          online: false,
        },
      )
      const outcome = (yield { w: 'round', round }) as Outcome
      core.recentBarrierMs = 0.8 * core.recentBarrierMs + 0.2 * (core.mono() - roundStart)
      if (outcome.kind === 'quorum') {
        lastAcks = outcome.acks.length
        kept = undefined // committed now, never released
        return yield* commitApproval(core, candidate, res, 'quorum', outcome.acks, stats)
      }
      lastAcks = outcome.acks
      const reason =
        outcome.kind === 'refused'
          ? outcome.code
          : outcome.kind === 'timeout'
            ? 'barrier_timeout'
            : 'quorum_unavailable'
      const retryable =
        outcome.kind === 'refused'
          ? RETRYABLE.has(outcome.code) && attempts <= retries
          : outcome.kind === 'timeout'
            ? // a loaded peer, not a lost one: try again after a back-off
              attempts <= Math.min(retries, 2)
            : true // peers were lost mid-round: reachability decides on the next turn
      const retry = retryable && timeLeft() > 0 && existing === undefined
      let releaseSeq = 0
      if (existing === undefined) {
        // out of time only: the same reservation is asked again. Refused for a conflict: released, so
        // that two contenders for one card (each held by some members) do not block each other until
        // both decline; the retry makes a new one.
        kept = res
        const outOfTime =
          outcome.kind === 'timeout' || (outcome.kind === 'refused' && outcome.code === 'catching_up')
        if (!retry || !outOfTime) releaseSeq = releaseKept(reason)
      }
      if (retry) {
        lastReason = {
          code: reason,
          message: outcome.kind === 'refused' ? `refused by a peer: ${outcome.code}` : undefined,
        }
        lastReleaseSeq = releaseSeq
        yield backoff(core, attempts, timeLeft())
        continue
      }
      if (outcome.kind === 'refused')
        return decline('quorum', outcome.code, `refused by a peer: ${outcome.code}`, releaseSeq)
      // Peers are connected but slow: decline. Falling back to isolated mode here would let
      // every terminal of a loaded venue approve the same card alone.
      return decline('quorum', reason, undefined, releaseSeq)
    }
  } catch (err: unknown) {
    // aborted (or a write failed) while a kept reservation waited for its next round: release it
    releaseKept('aborted')
    throw err
  }
}

function* authorizeIsolated(
  core: MeshCore,
  candidate: OfflineCandidate,
  base: Parameters<typeof decideOffline>[2],
  stats: () => BarrierStats,
  existing?: SignedEvent<Reservation>,
): Op<OfflineDecision> {
  const now = core.wall()
  windowedIsolatedBudget(core, now)
  const verdict = decideOffline(
    core.policy,
    core.view.exposure,
    { ...base, ts: existing?.event.ts ?? now },
    { mode: 'isolated', now },
  )
  const room = escrow.fits(core, candidate.currency, candidate.amountMinor, now, existing?.event.amountMinor)
  if (!verdict.approve || !room.ok) {
    const code = verdict.approve ? 'venue_cap_exceeded' : verdict.code
    const declineCode: DeclineCode = isDeclineCode(code) ? code : 'other'
    return {
      approved: false,
      decision: 'declined_offline',
      declineCode,
      message: verdict.approve ? (room as { message: string }).message : verdict.message,
      mode: 'isolated',
      ...(existing === undefined ? {} : { reservationId: existing.idHex }),
      seq: 0,
      ts: now,
      proof: proofFor(core, candidate, 'declined_offline', 0, now, declineCode),
      barrier: stats(),
    }
  }
  const res = existing ?? appendReservation(core, candidate).signed
  return yield* commitApproval(core, candidate, res, 'isolated', [], stats)
}

/** The Commit of an approval, durable before it is published and answered (quorum or isolated). */
function* commitApproval(
  core: MeshCore,
  candidate: OfflineCandidate,
  res: SignedEvent<Reservation>,
  mode: 'quorum' | 'isolated',
  acks: SignedAck[],
  stats: () => BarrierStats,
): Op<OfflineDecision> {
  const { signed: commit, write } = core.appendOwn({ type: 'commit', reservation: res, mode, acks })
  yield { w: 'durable', id: write }
  core.publish(commit)
  const decision = mode === 'quorum' ? 'approved_offline' : 'approved_offline_isolated'
  return {
    approved: true,
    decision,
    mode,
    reservationId: res.idHex,
    commitId: commit.idHex,
    seq: commit.event.seq,
    ts: commit.event.ts,
    proof: proofFor(core, candidate, decision, commit.event.seq, commit.event.ts),
    barrier: stats(),
  }
}

export function* reserveOnline(
  core: MeshCore,
  op: number,
  candidate: OfflineCandidate,
  opts: { deadline?: number | undefined },
): Op<SignedEvent<Reservation>> {
  const deadline = opts.deadline ?? core.mono() + core.tapBudgetMs
  // Our own ack counts toward the quorum, so we check what every acker checks: a credential use
  // we hold (ours or one we acked) is not reserved again.
  if (
    !core.mut('no-online-nullifier-check') &&
    core.view.exposure.nullifierHolder(toHex(candidate.nullifier)) !== undefined
  )
    throw new CoreError('ERR_REFUSED', 'this credential use is already held: nullifier_seen')
  const reach = yield* awaitReachability(core, op, deadline - core.finishReserveMs(), candidate.cardKey)
  if (reach === 'unknown' || !(yield* awaitHistory(core, op, deadline - core.finishReserveMs())))
    throw new CoreError(
      'ERR_REFUSED',
      'no quorum reachable yet and none known to be lost: quorum_unavailable',
    )
  // again after the wait, in the same synchronous step as the append: a decision that ran in the
  // meantime may hold this credential use now, and our own ack counts toward the quorum
  if (
    !core.mut('no-online-nullifier-check') &&
    core.view.exposure.nullifierHolder(toHex(candidate.nullifier)) !== undefined
  )
    throw new CoreError('ERR_REFUSED', 'this credential use is already held: nullifier_seen')
  // Without a quorum (really isolated) no peer holds it, and central's dedup does not know offline
  // approvals of this credential use not synced yet: admitted only within the isolated budget, which
  // it uses until central confirms it (docs/protocol.md, "Online without a quorum")
  const unheld = reach === 'isolated' && !core.mut('unheld-online-unbounded')
  if (unheld) {
    const verdict = decideUnheldOnline(core.policy, core.view.exposure, {
      origin: core.me,
      cardKey: toHex(candidate.cardKey),
      currency: candidate.currency,
      amountMinor: candidate.amountMinor,
    })
    if (!verdict.approve)
      throw new CoreError('ERR_REFUSED', `no quorum can hold this online payment: ${verdict.code}`)
  }
  const { signed: res, write } = appendReservation(core, candidate)
  if (unheld)
    core.view.exposure.exposeUnheld(
      res.idHex,
      unheldOnlineExposure(core.policy, candidate.currency, candidate.amountMinor),
    )
  if (!core.mut('send-before-durable')) {
    // a stalled disk must not hold the tap past its deadline (as in authorize): not durable in
    // time, it is released (sent when durable) and the offline path declines in time
    const inTime = yield {
      w: 'durable',
      id: write,
      ...(core.mut('no-finish-reserve') ? {} : { until: deadline - core.finishReserveMs() }),
    }
    if (inTime === false) {
      const { signed: release, write: w } = core.appendOwn({
        type: 'release',
        reservationId: res.id,
        reason: 'barrier_timeout',
      })
      publishWhenDurable(core, release, w, res.event.cardKey)
      throw new CoreError(
        'ERR_REFUSED',
        'our own reservation was not durable within the tap budget (a slow disk): barrier_timeout',
      )
    }
  }
  // With a quorum reachable, an online payment is held by a quorum before central is asked. A
  // refusal or a timeout means it is not held: released, never sent to central.
  if (reach === 'quorum') {
    const view = originView(core.policy, core.view.exposure, {
      cardKey: toHex(candidate.cardKey),
      currency: candidate.currency,
      ts: res.event.ts,
      id: res.idHex,
    })
    const round = collect(core, res, view, {
      timeoutMs: Math.min(core.policy.barrier.timeoutMs, deadline - core.finishReserveMs() - core.mono()),
      online: true,
    })
    const outcome = (yield { w: 'round', round }) as Outcome
    if (outcome.kind !== 'quorum') {
      const code =
        outcome.kind === 'refused'
          ? outcome.code
          : outcome.kind === 'timeout'
            ? 'barrier_timeout'
            : 'quorum_unavailable'
      const { signed: release, write } = core.appendOwn({
        type: 'release',
        reservationId: res.id,
        reason: code,
      })
      publishWhenDurable(core, release, write, res.event.cardKey)
      throw new CoreError('ERR_REFUSED', `the reservation is not held by a quorum: ${code}`)
    }
    // its Commit carries them: an online Commit without acks counts in the isolated budget
    core.onlineAcks.set(res.idHex, outcome.acks)
  }
  return res
}

export function* completeOnline(
  core: MeshCore,
  reservation: SignedEvent<Reservation>,
  approved: boolean,
  reason: string,
): Op<{ event: SignedEvent; proof: Uint8Array }> {
  const mode: CommitMode = 'online'
  const acks = core.onlineAcks.get(reservation.idHex) ?? []
  core.onlineAcks.delete(reservation.idHex)
  const { signed, write } = approved
    ? core.appendOwn({ type: 'commit', reservation, mode, acks })
    : core.appendOwn({ type: 'release', reservationId: reservation.id, reason })
  yield { w: 'durable', id: write }
  core.publish(signed, reservation.event.cardKey)
  const r = reservation.event
  const declineCode = isDeclineCode(reason) ? reason : 'issuer_declined'
  const proof = createProof(core.key, {
    nullifier: r.nullifier,
    amountMinor: r.amountMinor,
    currency: r.currency,
    decision: approved ? 'approved_online' : 'declined_online',
    declineCode: approved ? undefined : declineCode,
    ts: signed.event.ts,
    seq: signed.event.seq,
    policyVersion: core.policy.version,
  })
  return { event: signed, proof }
}
