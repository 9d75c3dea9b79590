import {
  EscrowBook,
  effectiveGroupSize,
  groupQuorum,
  quorumSize,
  unheldOnlineExposure,
  type VenuePolicy,
} from '@nullmesh/policy'
import {
  type Commit,
  CustodianGroups,
  type ExposureTransfer,
  type Group,
  type KeyPair,
  type NullmeshEvent,
  type Release,
  type Reservation,
  type SignedAck,
  type SignedEvent,
  signEvent,
  toHex,
} from '@nullmesh/protocol'
import {
  DIAL_RETRY_MS,
  FINISH_MARGIN_MS,
  ISOLATION_PROBE_MS,
  ON_DEMAND_DIAL_TIMEOUT_MS,
  RECENT_DURABLE_WINDOW,
  REFUSED_DIAL_RETRY_MS,
} from '../constants.js'
import type { ValidationContext } from '../validation.js'
import * as catchup from './catchup.js'
import * as escrow from './escrow.js'
import * as origin from './origin.js'
import { type DialResult, Reachability } from './reachability.js'
import * as recovery from './recovery.js'
import * as responder from './responder.js'
import type {
  CoreInit,
  Effect,
  MutationName,
  OfflineCandidate,
  OpResult,
  WireMsg,
  WriteRecord,
} from './types.js'
import { View } from './view.js'

/** What an operation waits for: a write made durable, some monotonic time, a barrier round. */
export type Wait =
  /** resumes once the write is durable (value true); with `until` (mono ms), false if that comes first */
  | { w: 'durable'; id: number; until?: number }
  | { w: 'sleep'; ms: number }
  | { w: 'round'; round: origin.Round }

export type Op<T> = Generator<Wait, T, unknown>

export class CoreError extends Error {
  constructor(
    readonly code: 'ERR_REFUSED' | 'ERR_ABORTED' | 'ERR_WRITE',
    message: string,
  ) {
    super(message)
  }
}

/** cards without a reachable group majority kept for status */
const NO_QUORUM_GROUPS_KEPT = 256
/** escrow: no second gift to one terminal within this (its credit needs time to be seen) */
const ESCROW_GIVE_COOLDOWN_MS = 10_000

const NO_MUTATIONS: ReadonlySet<MutationName> = Object.freeze(new Set<MutationName>())

/**
 * The protocol core of one terminal, without I/O: synchronous methods take inputs (a message from
 * a peer, a peer ready or lost, a write made durable, a timer, a payment request) and hand effects
 * (messages, writes, timers, answers) to `init.effects`, in order. No clock, randomness or timer
 * of its own: the libp2p adapter (node.ts) and the simulator inject them. Roles, one file each:
 * barrier origin (origin.ts), barrier responder (responder.ts), catch-up (catchup.ts), membership
 * and reachability (reachability.ts), recovery on start (recovery.ts), the shared view (view.ts).
 */
export class MeshCore {
  readonly me: string
  readonly key: KeyPair
  readonly policy: VenuePolicy
  readonly venueId: string
  /** acks a commit needs within its card's custodian group (all groups have one size) */
  readonly quorum: number
  /** a majority of the whole roster: what a terminal with an empty ledger must learn from */
  readonly rosterQuorum: number
  /**
   * Peers (ourselves excluded: a lost disk holds nothing) a terminal without its own history must
   * learn it from: N − q + 1 of the N − 1 others meet every roster quorum's q − 1 other members.
   */
  readonly learnQuorum: number
  /** each card's custodian group over the enrolled roster (docs/protocol.md, "Custodian groups") */
  readonly groups: CustodianGroups
  /** cards (key hex) whose group had no reachable majority at their last decision → mono time */
  readonly noQuorumGroups = new Map<string, number>()
  readonly view: View
  readonly reach: Reachability
  readonly mutations: ReadonlySet<MutationName>
  readonly init: CoreInit
  readonly tapBudgetMs: number
  /** enrolled peers (public key hex) whose history we caught up with in this run */
  readonly learnedFrom = new Set<string>()
  /** initial catch-ups running, per peer (acks no longer wait for them: responder.ts) */
  readonly catchups = new Map<string, number>()
  /** escrow: when we last gave share to a terminal, per `key|currency` (mono ms) */
  readonly gaveAt = new Map<string, number>()
  /** internal operations (escrow rebalancing) use negative op ids: no caller waits for them */
  private internalOp = 0
  /** our store is being refilled from a quorum after a lost disk: its "relearning" mark is set */
  relearning = false
  /**
   * the largest own seq learned back after a lost disk (durable with the cleared relearning mark):
   * own reservations up to it without a Commit here are kept at start, not released (recovery.ts)
   */
  learnedThrough = 0
  /** the relearning mark is being cleared (recovery.learned) */
  clearing = false
  /**
   * our own events back from central after a lost disk (init.centralRefill): 'awaiting' holds our
   * learning back until central answered or could not be asked (recovery.ts)
   */
  refill: 'none' | 'awaiting' | 'done' = 'none'
  /** moving average of recent barrier rounds (ms), sizing the retry back-off */
  recentBarrierMs = 5
  /** moving average of recent durable writes (ms): the time a decision keeps to finish */
  recentDurableMs = 5
  /** the last RECENT_DURABLE_WINDOW durable-write latencies (ms), a ring: their max sizes the reserve too */
  private readonly durableLatencies: number[] = []
  private durableNext = 0
  started = false
  private nextWrite = 1
  private nextTimer = 1
  nextRid = 1
  private readonly writes = new Map<number, ((ok: boolean) => void)[]>()
  /** monotonic time each sync write was asked for (its fsync latency feeds recentDurableMs) */
  private readonly writeStart = new Map<number, number>()
  private readonly timers = new Map<number, () => void>()
  private readonly aborted = new Set<number>()
  readonly rounds = new Map<number, origin.Round>()
  readonly parked: responder.Parked[] = []
  readonly ackWaiters = new Map<string, responder.Waiter[]>()
  /**
   * The online acks of our online reservations a quorum holds, until their Commit carries them: an
   * online Commit without acks says no quorum held it (view.ts ownCommit). Lost on restart: a
   * Commit written after one then counts in the isolated budget, the safe side.
   */
  readonly onlineAcks = new Map<string, SignedAck[]>()

  constructor(init: CoreInit) {
    this.init = init
    this.key = init.key
    this.policy = init.policy
    this.venueId = init.venueId
    this.me = toHex(init.key.publicKey)
    this.mutations = init.mutations ?? NO_MUTATIONS
    this.quorum = groupQuorum(this.policy, init.roster.size)
    this.rosterQuorum = quorumSize(this.policy, init.roster.size)
    this.learnQuorum = Math.max(1, init.roster.size - this.rosterQuorum + 1)
    const groupSize = effectiveGroupSize(this.policy, init.roster.size)
    if (init.groups !== undefined && init.groups.size !== groupSize)
      throw new RangeError(`shared custodian groups of ${init.groups.size}, the policy's are ${groupSize}`)
    this.groups = init.groups ?? new CustodianGroups(init.roster.members, groupSize)
    this.tapBudgetMs = this.policy.tapBudgetMs
    this.view = new View(this.me)
    this.view.escrow = new EscrowBook(this.policy, init.roster.members)
    this.view.unheldExposure = (f) => unheldOnlineExposure(this.policy, f.currency, f.amountMinor)
    // the mode says whether enough peers are ready for any group quorum; each decision asks
    // about its own card's group (reachGroup)
    this.reach = new Reachability(
      this.quorum,
      Math.min(ISOLATION_PROBE_MS, Math.floor(this.tapBudgetMs * 0.75)),
      DIAL_RETRY_MS,
      REFUSED_DIAL_RETRY_MS,
      ON_DEMAND_DIAL_TIMEOUT_MS,
    )
  }

  // ---- environment ----------------------------------------------------------------------------

  wall(): number {
    return this.init.clock.wall()
  }
  mono(): number {
    return this.init.clock.mono()
  }
  rng(): number {
    return this.init.rng()
  }
  isRevoked(publicKeyHex: string, at: number): boolean {
    return this.init.roster.isRevoked?.(publicKeyHex, at) ?? false
  }
  mut(name: MutationName): boolean {
    return this.mutations.has(name)
  }
  out(effect: Effect): void {
    this.init.effects(effect)
  }
  log(message: string): void {
    this.out({ type: 'log', message })
  }

  /** ask for records to be written; sync writes complete with durable(id) and run `then` */
  write(
    records: WriteRecord[],
    opts: { sync: boolean; own: boolean; relearning?: boolean; learnedThrough?: number },
  ): number {
    const id = this.nextWrite++
    if (opts.sync) {
      this.writes.set(id, [])
      this.writeStart.set(id, this.mono())
    }
    this.out({
      type: 'write',
      id,
      records,
      sync: opts.sync,
      own: opts.own,
      ...(opts.relearning === undefined ? {} : { relearning: opts.relearning }),
      ...(opts.learnedThrough === undefined ? {} : { learnedThrough: opts.learnedThrough }),
    })
    return id
  }

  onDurable(id: number, then: (ok: boolean) => void): void {
    const waiters = this.writes.get(id)
    if (waiters === undefined) then(true)
    else waiters.push(then)
  }

  after(ms: number, then: () => void): number {
    const id = this.nextTimer++
    this.timers.set(id, then)
    this.out({ type: 'timer', id, afterMs: Math.max(0, ms) })
    return id
  }

  cancel(timer: number): void {
    this.timers.delete(timer)
  }

  send(to: string, msg: WireMsg): void {
    this.out({ type: 'send', to, msg })
  }

  validationContext(): ValidationContext {
    const now = this.wall()
    return {
      venue: this.venueId,
      now,
      maxClockSkewMs: this.policy.maxClockSkewMs,
      quorum: this.quorum,
      group: (cardKey) => this.groups.of(cardKey),
      policy: this.policy, // issue 17: offline commits are held to the policy's stateless limits
      isEnrolled: (k) => this.init.roster.isEnrolled(k, now),
      isRevoked: (k, at) => this.isRevoked(k, at),
      isKnown: (id) => this.view.known.has(id),
      idAt: (o, seq) => this.view.idsAt.get(o, seq),
      reservationOrigin: (id) => this.view.reservationOrigin.get(id),
      escrowShare: (k, currency) => this.view.escrow!.share(k, currency),
      self: this.me,
    }
  }

  /**
   * Append one of our own events: seq assigned and view updated synchronously (so concurrent
   * decisions see it at once); the durable write is ordered behind earlier own writes.
   */
  appendOwn(
    fields:
      | Omit<Reservation, 'venue' | 'origin' | 'seq' | 'ts'>
      | Omit<Commit, 'venue' | 'origin' | 'seq' | 'ts'>
      | Omit<Release, 'venue' | 'origin' | 'seq' | 'ts'>
      | Omit<ExposureTransfer, 'venue' | 'origin' | 'seq' | 'ts'>,
  ): { signed: SignedEvent; write: number } {
    const event = {
      ...fields,
      venue: this.venueId,
      origin: this.key.publicKey,
      seq: this.view.nextSeq++,
      ts: this.wall(),
    } as NullmeshEvent
    const signed = signEvent(this.key, event)
    this.view.apply(signed, true)
    const write = this.write([{ event: signed, held: true }], { sync: true, own: true })
    this.out({ type: 'event', event: signed, source: 'self' })
    return { signed, write }
  }

  /**
   * Disseminate our Commit or Release: pushed to the ready members of its card's custodian group
   * (they hold the reservation; with one group, every ready peer), gossiped to reach the rest.
   * `cardKey` unknown (a recovery release): pushed to every ready peer.
   */
  publish(signed: SignedEvent, cardKey?: Uint8Array): void {
    const e = signed.event
    const card = e.type === 'commit' ? e.reservation.event.cardKey : cardKey
    const group = card === undefined ? undefined : this.groups.of(card)
    let pushed = 0
    for (const peer of group === undefined ? this.reach.ready() : this.reach.readyAmong(group.members)) {
      this.send(peer, { t: 'push', bytes: signed.bytes })
      pushed++
    }
    if (pushed < this.init.roster.size - 1) this.out({ type: 'gossip', bytes: signed.bytes })
  }

  /** the custodian group of a card, and whether we are a member */
  groupOf(cardKey: Uint8Array | string): Group {
    return this.groups.of(cardKey)
  }

  /** record whether a card's group had a reachable majority at its last decision (for status) */
  noteGroupReach(cardKeyHex: string, hasQuorum: boolean): void {
    if (hasQuorum) {
      this.noQuorumGroups.delete(cardKeyHex)
      return
    }
    this.noQuorumGroups.delete(cardKeyHex)
    this.noQuorumGroups.set(cardKeyHex, this.mono())
    // bounded: the oldest entries go first (insertion order)
    if (this.noQuorumGroups.size > NO_QUORUM_GROUPS_KEPT)
      this.noQuorumGroups.delete(this.noQuorumGroups.keys().next().value!)
  }

  /**
   * Dial the members of a card's group we are not connected to and have not tried lately (a
   * terminal keeps no full mesh: docs/protocol.md, "Connections"). Each dial is bounded by
   * `withinMs` (what is left of the decision's wait) and ON_DEMAND_DIAL_TIMEOUT_MS.
   */
  dialGroup(members: readonly string[], withinMs: number): void {
    const mono = this.mono()
    const now = this.wall()
    const timeoutMs = Math.max(1, Math.min(ON_DEMAND_DIAL_TIMEOUT_MS, Math.floor(withinMs)))
    for (const key of this.reach.toDial(members, this.me, mono)) {
      if (this.memberDown(key, now)) continue
      this.reach.dialStarted(key, mono, timeoutMs)
      this.out({ type: 'dial', key, timeoutMs })
    }
  }

  /**
   * A terminal without its own history (an empty ledger) must learn it from a majority of the
   * roster before it signs again; with no full mesh it dials roster members it has not learned
   * from (key order) until enough are connected or being dialled.
   */
  learnHistory(withinMs: number): void {
    if (this.view.seqKnown || !this.started || this.reach.partitioned) return
    let missing = this.learnQuorum - this.learnedFrom.size
    for (const key of this.reach.keys()) if (!this.learnedFrom.has(key)) missing--
    if (missing <= 0) return
    const now = this.wall()
    const candidates = this.init.roster.members.filter(
      (k) => k !== this.me && !this.learnedFrom.has(k) && !this.memberDown(k, now),
    )
    const timeoutMs = Math.max(1, Math.min(ON_DEMAND_DIAL_TIMEOUT_MS, Math.floor(withinMs)))
    const mono = this.mono()
    for (const key of this.reach.toDial(candidates, this.me, mono)) {
      if (missing-- <= 0) break
      this.reach.dialStarted(key, mono, timeoutMs)
      this.out({ type: 'dial', key, timeoutMs })
    }
  }

  /** a member that is not enrolled now, or revoked: never dialled, never counted as reachable */
  memberDown(key: string, now: number = this.wall()): boolean {
    return !this.init.roster.isEnrolled(key, now) || this.isRevoked(key, now)
  }

  updateMode(): void {
    const changed = this.reach.update(this.mono())
    if (changed !== undefined) this.out({ type: 'mode', mode: changed })
  }

  // ---- operations -------------------------------------------------------------------------------

  private run(op: number, gen: Op<unknown>): void {
    this.resume(op, gen, {})
  }

  private resume(op: number, gen: Op<unknown>, input: { v?: unknown; err?: Error }): void {
    let r: IteratorResult<Wait, unknown>
    try {
      r = input.err !== undefined ? gen.throw(input.err) : gen.next(input.v)
    } catch (err: unknown) {
      this.aborted.delete(op)
      const code = err instanceof CoreError ? err.code : 'ERR_WRITE'
      this.out({ type: 'done', op, result: { ok: false, code, message: (err as Error).message } })
      return
    }
    if (r.done) {
      this.aborted.delete(op)
      const result: OpResult = { ok: true, value: r.value }
      this.out({ type: 'done', op, result })
      return
    }
    const w = r.value
    switch (w.w) {
      case 'durable': {
        let settled = false
        const finish = (input: { v?: unknown; err?: Error }): void => {
          if (settled) return
          settled = true
          this.resume(op, gen, input)
        }
        this.onDurable(w.id, (ok) =>
          finish(ok ? { v: true } : { err: new CoreError('ERR_WRITE', 'ledger write failed') }),
        )
        if (w.until !== undefined) this.after(Math.max(0, w.until - this.mono()), () => finish({ v: false }))
        break
      }
      case 'sleep':
        this.after(w.ms, () => this.resume(op, gen, {}))
        break
      case 'round':
        w.round.onFinish((outcome) => this.resume(op, gen, { v: outcome }))
        break
    }
  }

  /**
   * Time a decision keeps, before its deadline, to finish once its barrier is over: one durable
   * write (the Commit of an approval, or the terminal's record of a decline) and the bookkeeping
   * around it. Twice the recent fsync latency, or the slowest of the last few if a stall was longer
   * (a moving average forgets a disk that stalls now and then: the simulator's seeds 49 and 333
   * approved 5–13 ms late after one), plus a margin; never more than a quarter of the budget.
   */
  finishReserveMs(): number {
    if (this.mut('no-finish-reserve')) return 0
    let slowest = 0
    for (const ms of this.durableLatencies) if (ms > slowest) slowest = ms
    return Math.min(
      Math.floor(this.tapBudgetMs / 4),
      Math.ceil(Math.max(2 * this.recentDurableMs, slowest)) + FINISH_MARGIN_MS,
    )
  }

  throwIfAborted(op: number): void {
    if (this.aborted.has(op)) throw new CoreError('ERR_ABORTED', 'aborted')
  }

  // ---- inputs -------------------------------------------------------------------------------------

  /** a sync write was made durable (or failed) */
  durable(id: number, ok = true): void {
    const waiters = this.writes.get(id)
    if (waiters === undefined) return
    this.writes.delete(id)
    const started = this.writeStart.get(id)
    this.writeStart.delete(id)
    if (ok && started !== undefined) {
      const ms = this.mono() - started
      this.recentDurableMs = 0.8 * this.recentDurableMs + 0.2 * ms
      this.durableLatencies[this.durableNext] = ms
      this.durableNext = (this.durableNext + 1) % RECENT_DURABLE_WINDOW
    }
    for (const w of waiters) w(ok)
  }

  timer(id: number): void {
    const t = this.timers.get(id)
    if (t === undefined) return
    this.timers.delete(id)
    t()
  }

  abort(op: number): void {
    this.aborted.add(op)
  }

  /** restore the view from the ledger (recovery.ts) */
  load(state: recovery.LoadedState): void {
    recovery.load(this, state)
  }

  /** recovery on start: answers `op` once pending own reservations are dealt with */
  start(op: number, pending: recovery.Pending[]): void {
    this.run(op, recovery.start(this, pending))
  }

  authorize(
    op: number,
    candidate: OfflineCandidate,
    opts: { reservation?: SignedEvent<Reservation> | undefined; deadline?: number | undefined } = {},
  ): void {
    this.run(op, origin.authorize(this, op, candidate, opts))
  }

  reserveOnline(op: number, candidate: OfflineCandidate, opts: { deadline?: number | undefined } = {}): void {
    this.run(op, origin.reserveOnline(this, op, candidate, opts))
  }

  completeOnline(op: number, reservation: SignedEvent<Reservation>, approved: boolean, reason: string): void {
    this.run(op, origin.completeOnline(this, reservation, approved, reason))
  }

  /** move `amountMinor` of our unused escrow share to terminal `to` (escrow.ts); answers the signed transfer */
  transferShare(op: number, to: string, currency: string, amountMinor: number): void {
    this.run(op, escrow.transfer(this, to, currency, amountMinor))
  }

  message(from: string, msg: WireMsg): void {
    switch (msg.t) {
      case 'req':
        responder.onRequest(this, from, msg)
        break
      case 'ans':
        origin.onAnswer(this, from, msg.rid, msg.ack)
        break
      case 'push':
        this.receive(msg.bytes)
        break
    }
  }

  /** an event pushed by a peer or relayed by gossip: returns the validation error, if any */
  receive(bytes: Uint8Array): unknown {
    return catchup.receive(this, bytes)
  }

  peerConnected(key: string): void {
    if (key === this.me) return
    this.reach.connect(key)
    this.updateMode()
  }

  /** an on-demand dial (effect `dial`) ended */
  dialEnded(key: string, result: DialResult): void {
    this.reach.dialEnded(key, result, this.mono())
  }

  peerVerified(key: string): void {
    this.reach.markVerified(key)
  }

  peerLost(key: string): void {
    if (!this.reach.lose(key, this.mono())) return
    this.catchups.delete(key)
    origin.peerLost(this, key)
    responder.wake(this)
    this.out({ type: 'peer', key, state: 'disconnected' })
    this.updateMode()
  }

  catchupStarted(key: string, initial: boolean): void {
    catchup.started(this, key, initial)
  }

  catchupBatch(key: string, frames: Uint8Array[]): number {
    return catchup.batch(this, key, frames)
  }

  catchupEnded(key: string, ok: boolean, initial: boolean): void {
    catchup.ended(this, key, ok, initial)
  }

  /** one page of our own events from central (effect `refill`): returns how many were new */
  refillBatch(frames: Uint8Array[]): number {
    return catchup.refillBatch(this, frames)
  }

  /** the refill from central ended: every page given (ok) or central could not be asked */
  refillEnded(ok: boolean): void {
    recovery.refillEnded(this, ok)
  }

  setPartitioned(partitioned: boolean): void {
    this.reach.partitioned = partitioned
    if (partitioned) for (const key of this.reach.keys()) this.peerLost(key)
    this.updateMode()
  }

  /** the transport stopped: every peer is gone (no events) */
  disconnectAll(): void {
    for (const key of this.reach.keys()) origin.peerLost(this, key)
    this.reach.clear()
    this.catchups.clear()
  }

  confirmed(marks: Record<string, number>): void {
    this.view.confirmed(marks)
  }

  /**
   * Central's signed abandonment list (issue 17, item 5): these reservations have no Commit in any
   * ledger of the venue and never will count: release their headroom and nullifier here. Not
   * written to the store (the adapter keeps the list and gives it again after a restart).
   */
  abandoned(reservationIds: readonly string[]): number {
    let released = 0
    for (const id of reservationIds) {
      if (this.view.settled.has(id)) continue
      this.view.inflight.delete(id)
      this.view.settled.add(id)
      this.view.exposure.addRelease(id)
      released++
    }
    return released
  }

  /**
   * The peer periodic anti-entropy asks, chosen with the injected rng. The same periodic turn
   * rebalances escrow shares (escrow.ts), off the hot path.
   */
  antiEntropyPeer(): string | undefined {
    this.learnHistory(ON_DEMAND_DIAL_TIMEOUT_MS)
    escrow.rebalance(this, () => --this.internalOp, ESCROW_GIVE_COOLDOWN_MS)
    const ready = this.reach.ready()
    if (ready.length === 0) return undefined
    return ready[Math.floor(this.rng() * ready.length)]
  }
}
