import type { Ledger } from '@nullmesh/ledger'
import { MeshError, type MeshNode, type OfflineCandidate } from '@nullmesh/mesh'
import {
  type Commit,
  createProof,
  type DeclineCode,
  type KeyPair,
  type ProofDecision,
  type Reservation,
  type SignedEvent,
  toHex,
} from '@nullmesh/protocol'
import debug from 'debug'
import type { CentralAuthorization, CentralLink } from './central.js'
import type { ConnectivityMonitor } from './connectivity.js'
import { LOG_NAMESPACE } from './constants.js'
import { OnlineCore, type OnlineEffect } from './core/online.js'
import { TerminalError } from './errors.js'
import type { PaymentResponseBody } from './schemas.js'
import { settledBy } from './settled-by.js'

const log = debug(`${LOG_NAMESPACE}:online`)

export type SettlementStatus = 'none' | 'queued' | 'forwarded' | 'completed' | 'failed'

export interface Candidate extends OfflineCandidate {
  nullifierHex: string
  cardKeyHex: string
}

/** One decision, before it is recorded and answered. */
export interface Outcome {
  paymentId: string
  status: PaymentResponseBody['status']
  declineCode?: string | undefined
  proof: Uint8Array
  mode: PaymentResponseBody['mode']
  queued: boolean
  barrier?: { acks: number; quorum: number; ms: number } | undefined
  settlement: SettlementStatus
  completedAt?: number
  centralPaymentId?: string
}

/** ledger cursor of an online attempt: ONLINE_PENDING from before central is asked until it is resolved */
export const onlineCursor = (reservationIdHex: string) => `terminal/online/${reservationIdHex}`
export const ONLINE_PENDING = 'pending'
const ONLINE_DONE = 'done'
/** a reservation older than this many own events is not searched for its Commit on recovery */
const FIND_COMMIT_SPAN = 10_000

/** What the online path needs from the terminal that runs it. */
export interface OnlineHost {
  readonly ledger: Ledger
  readonly mesh: MeshNode
  readonly link: CentralLink | undefined
  readonly monitor: ConnectivityMonitor | undefined
  readonly key: KeyPair
  readonly publicKeyHex: string
  /** own events with a smaller seq were written by an earlier run: only those can need recovery */
  readonly firstSeqOfRun: number
  /** the offline decision under a given reservation (deny list first, then the barrier) */
  fallback(c: Candidate, reservation: SignedEvent<Reservation>, deadline: number): Promise<Outcome>
  /** a decline answered at once, under this payment id */
  decline(c: Candidate, code: DeclineCode, paymentId: string): Outcome
}

/**
 * The adapter of the online path: carries the effects of OnlineCore (core/online.ts) out to the
 * ledger, the mesh node and the central link, and their results back in.
 */
export class OnlinePayments {
  readonly core: OnlineCore
  readonly #host: OnlineHost
  /** attempts voided at central (and released) by this run */
  #voided = 0

  constructor(host: OnlineHost, opts: { tapBudgetMs: number; onlineTimeoutMs: number }) {
    this.#host = host
    this.core = new OnlineCore(opts)
  }

  /** the mesh asks at start whether a reservation left unsettled is an online attempt to keep pending */
  async keepPending(id: string): Promise<boolean> {
    const keep = (await this.#host.ledger.getCursor(onlineCursor(id))) === ONLINE_PENDING
    if (keep) this.core.recovered(id)
    return keep
  }

  /**
   * The online path. undefined: not attempted or not held (offline path next, under a new
   * reservation; central was never asked). Once central has been asked, the reservation is the
   * payment's one identity (see OnlineCore).
   */
  async pay(c: Candidate, deadline: number, requireOnline: boolean): Promise<Outcome | undefined> {
    let reservation: SignedEvent<Reservation>
    try {
      reservation = await this.#host.mesh.reserveOnline(c, { deadline })
    } catch (err: unknown) {
      // not held by a quorum (or already held): the offline path gives the precise decision
      if (err instanceof MeshError && err.code === 'ERR_REFUSED') return undefined
      throw err
    }
    const id = reservation.idHex
    try {
      const r = await this.#run(c, reservation, this.core.reserved(id, { deadline, requireOnline }))
      return r === 'afresh' ? undefined : r
    } finally {
      this.core.abandoned(id)
    }
  }

  /** Carry out effects in order until one answers the POS; each awaited result is the core's next input. */
  async #run(
    c: Candidate | undefined,
    reservation: SignedEvent<Reservation>,
    first: OnlineEffect[],
    signal?: AbortSignal,
  ): Promise<Outcome | undefined | 'afresh'> {
    const { ledger, mesh } = this.#host
    const core = this.core
    const id = reservation.idHex
    const queue = [...first]
    let proof: Uint8Array | undefined
    let answer: CentralAuthorization | undefined
    let fallback: Outcome | undefined
    for (let e = queue.shift(); e !== undefined; e = queue.shift()) {
      switch (e.type) {
        case 'mark-pending': {
          // durable before central is asked: a crash from here on leaves it pending, to be voided;
          // a stalled disk does not hold the decision past its deadline (the core declines it)
          const write = ledger.setCursor(onlineCursor(id), ONLINE_PENDING, { sync: true })
          if (await settledBy(write, e.until)) queue.push(...core.pendingDurable(id, performance.now()))
          else {
            write.catch((err: unknown) => log('online pending mark failed: %s', (err as Error).message))
            log('online pending mark of %s not durable by the deadline: declined', id.slice(0, 16))
            queue.push(...core.markLate(id))
          }
          break
        }
        case 'authorize':
          try {
            answer = await this.#host.link!.authorize(reservation.bytes, {
              signal: AbortSignal.timeout(e.timeoutMs),
            })
            this.#host.monitor?.reportSuccess()
            queue.push(...core.answered(id, answer.status === 'approved', answer.declineCode))
          } catch (err: unknown) {
            if (err instanceof TerminalError && err.code === 'central_rejected') {
              log('central refused the online authorisation (%s): offline path', err.message)
              queue.push(...core.rejected(id))
            } else {
              if (err instanceof TerminalError) this.#host.monitor?.reportFailure(err)
              log(
                'online authorisation unanswered (%s): offline under the same reservation',
                (err as Error).message,
              )
              queue.push(...core.unanswered(id))
            }
          }
          break
        case 'complete':
          ;({ proof } = await mesh.completeOnline(reservation, e.approved, e.reason))
          queue.push(...core.completed(id))
          break
        case 'mark-done':
          await ledger.setCursor(onlineCursor(id), ONLINE_DONE, { sync: false })
          break
        case 'fallback':
          fallback = await this.#host.fallback(c!, reservation, e.deadline)
          queue.push(...core.fallbackDecided(id, fallback.status === 'approved_offline'))
          break
        case 'void':
          try {
            const v = await this.#host.link!.void(reservation.bytes, signal === undefined ? {} : { signal })
            if (v.status === 'committed') log('online attempt %s was committed, not voided', id.slice(0, 16))
            else {
              this.#voided++
              log('voided the unanswered online attempt %s at central', id.slice(0, 16))
            }
            queue.push(...core.voidAnswered(id, v.status === 'committed' ? 'committed' : 'voided'))
          } catch (err: unknown) {
            queue.push(...core.voidFailed(id))
            if (c === undefined) throw err
          }
          break
        case 'decline':
          return this.#host.decline(c!, e.code, id)
        case 'offline':
          return undefined
        case 'afresh':
          return 'afresh'
        case 'answer':
          return {
            paymentId: id,
            ...(answer?.paymentId === undefined ? {} : { centralPaymentId: answer.paymentId }),
            status: e.approved ? 'approved_online' : 'declined_online',
            declineCode: e.declineCode,
            proof: proof!,
            mode: 'online',
            queued: false,
            settlement: e.approved ? 'completed' : 'none',
            ...(e.approved ? { completedAt: Date.now() } : {}),
          }
      }
    }
    return fallback
  }

  /** Void every own online attempt still pending that no decision owns (a sync round, the start). */
  async resolve(signal?: AbortSignal): Promise<number> {
    const { ledger } = this.#host
    if (this.#host.link === undefined || this.core.unresolved === 0) return 0
    const opts = signal === undefined ? {} : { signal }
    const before = this.#voided
    for (const e of this.core.tick(performance.now())) {
      if (e.type !== 'void') continue
      const pending = await ledger.getEvent(e.id, opts)
      if (
        pending?.event.type !== 'reservation' ||
        (await ledger.reservationState(e.id, opts)) !== 'reserved'
      ) {
        // settled some other way (committed, released): nothing left to void
        for (const d of this.core.settled(e.id))
          if (d.type === 'mark-done') await ledger.setCursor(onlineCursor(d.id), ONLINE_DONE, { sync: false })
        continue
      }
      try {
        await this.#run(undefined, pending as SignedEvent<Reservation>, [e], signal)
      } catch (err: unknown) {
        // unreachable: the round fails and is retried; refused: logged, and never blocks the sync
        if (err instanceof TerminalError && err.code === 'central_unavailable') throw err
        log('voiding %s failed: %s', e.id.slice(0, 16), (err as Error).message)
      } finally {
        // a release that failed leaves it pending: voided again next round (idempotent at central)
        this.core.abandoned(e.id)
      }
    }
    return this.#voided - before
  }

  /**
   * A payment whose idempotency key has no record, but whose credential use this terminal already
   * committed: the process died between the Commit and the payment record. The Commit is the
   * decision, so answer it again rather than decide a second time. A pending online reservation
   * (died while central was answering) goes through OnlineCore.retried.
   */
  async recover(c: Candidate, deadline: number): Promise<Outcome | undefined> {
    const { ledger } = this.#host
    const uses = await ledger.nullifier(c.nullifierHex)
    for (const use of uses) {
      if (use.state === 'released') continue
      if ((await ledger.getPayment(use.reservationId)) !== undefined) continue
      const ev = await ledger.getEvent(use.reservationId)
      if (
        ev === undefined ||
        ev.event.type !== 'reservation' ||
        toHex(ev.event.origin) !== this.#host.publicKeyHex
      )
        continue
      const reservation = ev as SignedEvent<Reservation>
      // a reservation of this run belongs to a decision still in flight here, not to a crash
      if (reservation.event.seq >= this.#host.firstSeqOfRun) continue
      if (reservation.event.amountMinor !== c.amountMinor || reservation.event.currency !== c.currency)
        continue
      if (use.state === 'committed') return this.#recoverCommitted(c, reservation)
      // reserved: an online attempt left pending by a crash (offline ones are released at start).
      // Its answer never reached the POS, and central may have charged it.
      const reachable = this.#host.link !== undefined && this.#host.monitor?.online === true
      const first = this.core.retried(
        reservation.idHex,
        { deadline, centralReachable: reachable },
        performance.now(),
      )
      if (first === undefined) continue
      try {
        const r = await this.#run(c, reservation, first)
        if (r !== 'afresh' && r !== undefined) return r
        if (r === 'afresh') return undefined
      } finally {
        this.core.abandoned(reservation.idHex)
      }
    }
    return undefined
  }

  async #recoverCommitted(c: Candidate, reservation: SignedEvent<Reservation>): Promise<Outcome> {
    const commit = await this.#findCommit(reservation)
    const mode = commit?.event.mode ?? 'quorum'
    const decision: ProofDecision =
      mode === 'online'
        ? 'approved_online'
        : mode === 'isolated'
          ? 'approved_offline_isolated'
          : 'approved_offline'
    const proof = createProof(this.#host.key, {
      nullifier: c.nullifier,
      amountMinor: c.amountMinor,
      currency: c.currency,
      decision,
      ts: commit?.event.ts ?? reservation.event.ts,
      seq: commit?.event.seq ?? reservation.event.seq,
      policyVersion: reservation.event.policyVersion,
    })
    log('recovered the committed payment %s after a restart', reservation.idHex.slice(0, 16))
    return mode === 'online'
      ? {
          paymentId: reservation.idHex,
          status: 'approved_online',
          proof,
          mode: 'online',
          queued: false,
          settlement: 'forwarded',
        }
      : {
          paymentId: reservation.idHex,
          status: 'approved_offline',
          proof,
          mode,
          queued: true,
          settlement: 'queued',
        }
  }

  async #findCommit(reservation: SignedEvent<Reservation>): Promise<SignedEvent<Commit> | undefined> {
    const { ledger, publicKeyHex } = this.#host
    const last = (await ledger.nextSeq(publicKeyHex)) - 1
    const start = reservation.event.seq
    for (let seq = start + 1; seq <= last && seq <= start + FIND_COMMIT_SPAN; seq++) {
      const ev = await ledger.getEventAt(publicKeyHex, seq)
      if (ev?.event.type === 'commit' && ev.event.reservation.idHex === reservation.idHex)
        return ev as SignedEvent<Commit>
    }
    return undefined
  }
}
