import { type DeclineCode, isDeclineCode } from '@nullmesh/protocol'

/**
 * The terminal's online path, without I/O: a payment reserved for an online authorisation, the
 * durable "online pending" mark, central's answer or its silence, the offline fallback under the
 * same reservation, and the void at central before a pending attempt may be released (also after
 * a crash). Inputs are method calls; each returns the effects to carry out, in order. At most one
 * effect of a list waits for an answer (it is the last one), and that answer is the next input:
 *
 *   mark-pending → pendingDurable · authorize → answered | rejected | unanswered
 *   complete → completed · fallback → fallbackDecided · void → voidAnswered | voidFailed
 *
 * The terminal daemon (packages/terminal/src/online.ts) and the deterministic simulator
 * (packages/cli/src/dst) drive this same class. No real time (every input that needs the time gets
 * `now`, monotonic ms), no randomness, iteration in sorted order.
 */

/** part of the tap budget kept for the offline fallback when central does not answer */
export const FALLBACK_RESERVE_MS = 600
/** a void left unanswered (lost answer, crash of the asker) is sent again after this long */
export const VOID_RETRY_MS = 2_000

export type OnlineEffect =
  /**
   * write the attempt's "online pending" mark durably (fsync); then `pendingDurable`, or
   * `markLate` if it is not durable by `until` (the decision must not wait past its deadline)
   */
  | { type: 'mark-pending'; id: string; until: number }
  /** ask central, giving up after timeoutMs; then `answered`, `rejected` (4xx) or `unanswered` */
  | { type: 'authorize'; id: string; timeoutMs: number }
  /** commit (approved) or release the reservation through the mesh; then `completed` */
  | { type: 'complete'; id: string; approved: boolean; reason: string | undefined }
  /** the attempt is resolved: its mark may go (no fsync needed: a stale mark only asks central again) */
  | { type: 'mark-done'; id: string }
  /** decide offline under the same reservation, by this deadline; then `fallbackDecided` */
  | { type: 'fallback'; id: string; deadline: number }
  /** answer the POS with central's answer (after the Commit or Release is durable) */
  | { type: 'answer'; id: string; approved: boolean; declineCode: string | undefined }
  /** answer the POS declined now; the attempt stays pending until central has voided it */
  | { type: 'decline'; id: string; code: DeclineCode }
  /** central refused the request itself and charged nothing: the offline path, under a new reservation */
  | { type: 'offline'; id: string }
  /** void the attempt at central; then `voidAnswered` or `voidFailed` */
  | { type: 'void'; id: string }
  /** a retried payment's pending attempt was voided: decide the retry afresh */
  | { type: 'afresh'; id: string }

type State =
  /** the decision is writing the mark */
  | 'marking'
  /** the decision is waiting for central */
  | 'asking'
  /** the decision is committing or releasing after an answer */
  | 'completing'
  /** the decision is deciding offline under the same reservation */
  | 'fallback'
  /** no decision owns it: central may have charged it, it waits to be voided */
  | 'pending'
  /** a void is on its way to central */
  | 'voiding'
  /** voided: the reservation is being released */
  | 'releasing'

interface Attempt {
  state: State
  requireOnline: boolean
  deadline: number
  /** a POS retry is resolving it (recovery): its answer goes to that retry */
  retry: boolean
  voidSentAt: number
  /** central's answer, kept from `answered` until `completed` */
  approved: boolean
  declineCode: string | undefined
  /** completing a void, not an answer */
  voided: boolean
}

export interface OnlineCoreInit {
  /** the policy's tap budget: the whole decision, online attempt and fallback included */
  tapBudgetMs: number
  /** the longest an authorisation may take */
  onlineTimeoutMs: number
  /** simulator only: known-bad mutations of this path */
  mutations?: ReadonlySet<OnlineMutationName>
}

/** Known-bad mutations of the online path, for `npm run dst:mutants`; production never sets any. */
export const ONLINE_MUTATIONS = [
  /** release an unanswered attempt when the fallback declines, without voiding it at central */
  'release-unanswered',
  /** ask central before the pending mark is durable */
  'authorize-before-mark',
  /** wait for the pending mark however long its fsync takes, and ask central whatever time is left */
  'unbounded-mark',
] as const
export type OnlineMutationName = (typeof ONLINE_MUTATIONS)[number]

export class OnlineCore {
  readonly #attempts = new Map<string, Attempt>()
  readonly #init: OnlineCoreInit
  readonly #mut: ReadonlySet<OnlineMutationName>

  constructor(init: OnlineCoreInit) {
    this.#init = init
    this.#mut = init.mutations ?? new Set()
  }

  /** attempts that central may have charged and that are not resolved yet (status: onlineUnresolved) */
  get unresolved(): number {
    let n = 0
    for (const a of this.#attempts.values()) if (a.state !== 'marking') n++
    return n
  }

  /** is this reservation an online attempt not resolved yet (its mark may still say pending)? */
  has(id: string): boolean {
    return this.#attempts.has(id)
  }

  /** held by a quorum for an online attempt: make the mark durable before central is asked */
  reserved(id: string, opts: { deadline: number; requireOnline: boolean }): OnlineEffect[] {
    this.#attempts.set(id, {
      state: 'marking',
      requireOnline: opts.requireOnline,
      deadline: opts.deadline,
      retry: false,
      voidSentAt: 0,
      approved: false,
      declineCode: undefined,
      voided: false,
    })
    if (this.#mut.has('authorize-before-mark')) {
      const a = this.#attempts.get(id)!
      a.state = 'asking'
      return [{ type: 'authorize', id, timeoutMs: this.#timeout(a, a.deadline - this.#init.tapBudgetMs) }]
    }
    return [{ type: 'mark-pending', id, until: opts.deadline }]
  }

  /** the mark is durable: from here a crash leaves the attempt pending, to be voided */
  pendingDurable(id: string, now: number): OnlineEffect[] {
    const a = this.#attempts.get(id)
    if (a === undefined) return []
    if (a.state !== 'marking') return [] // the authorize-before-mark mutant asked already; or late
    if (this.#timeLeft(a, now) <= 0 && !this.#mut.has('unbounded-mark')) {
      // no time left to ask central and still decide within the budget: central is not asked
      if (a.requireOnline) return this.#late(a, id)
      a.state = 'fallback'
      return [{ type: 'fallback', id, deadline: a.deadline }]
    }
    a.state = 'asking'
    return [{ type: 'authorize', id, timeoutMs: this.#timeout(a, now) }]
  }

  /**
   * The mark was not durable by its deadline (a stalled disk): the POS is declined now rather than
   * late. Central was not asked, and is not: the attempt is pending like an unanswered one (voided
   * at central, a no-op there, then released), since the mark may still become durable.
   */
  markLate(id: string): OnlineEffect[] {
    const a = this.#attempts.get(id)
    if (a === undefined || a.state !== 'marking' || this.#mut.has('unbounded-mark')) return []
    return this.#late(a, id)
  }

  #late(a: Attempt, id: string): OnlineEffect[] {
    a.state = 'pending'
    a.retry = false
    return [{ type: 'decline', id, code: 'barrier_timeout' }]
  }

  /** what is left of the budget for central, after the room kept for the offline fallback */
  #timeLeft(a: Attempt, now: number): number {
    const reserve = a.requireOnline ? 0 : Math.min(FALLBACK_RESERVE_MS, this.#init.tapBudgetMs / 3)
    return a.deadline - now - reserve
  }

  #timeout(a: Attempt, now: number): number {
    return Math.max(1, Math.floor(Math.min(this.#init.onlineTimeoutMs, this.#timeLeft(a, now))))
  }

  /** central answered in time: commit or release, then answer the POS */
  answered(id: string, approved: boolean, declineCode?: string): OnlineEffect[] {
    const a = this.#attempts.get(id)
    // a late answer (the decision timed out and went on) changes nothing: central dedups the id
    if (a === undefined || a.state !== 'asking') return []
    a.state = 'completing'
    a.approved = approved
    a.declineCode = approved ? undefined : (declineCode ?? 'issuer_declined')
    const reason =
      a.declineCode === undefined
        ? undefined
        : isDeclineCode(a.declineCode)
          ? a.declineCode
          : 'issuer_declined'
    return [{ type: 'complete', id, approved, reason }]
  }

  /** central refused the request itself (4xx): it charged nothing, so releasing is safe */
  rejected(id: string): OnlineEffect[] {
    const a = this.#attempts.get(id)
    if (a === undefined || a.state !== 'asking') return []
    a.state = 'completing'
    a.approved = false
    a.declineCode = undefined
    a.voided = true
    return [{ type: 'complete', id, approved: false, reason: 'other' }]
  }

  /** no answer (timeout, network): the outcome is unknown, so the reservation stays this payment's identity */
  unanswered(id: string): OnlineEffect[] {
    const a = this.#attempts.get(id)
    if (a === undefined || a.state !== 'asking') return []
    if (a.requireOnline) {
      // the POS wants online only: declined, and voided at central before it is released
      a.state = 'pending'
      return [{ type: 'decline', id, code: 'offline_not_allowed' }]
    }
    a.state = 'fallback'
    return [{ type: 'fallback', id, deadline: a.deadline }]
  }

  /** the offline decision under the same reservation */
  fallbackDecided(id: string, approved: boolean): OnlineEffect[] {
    const a = this.#attempts.get(id)
    if (a === undefined || a.state !== 'fallback') return []
    if (approved) {
      // committed: central counts it once, whichever way it arrives
      this.#attempts.delete(id)
      return [{ type: 'mark-done', id }]
    }
    if (this.#mut.has('release-unanswered')) {
      a.state = 'releasing'
      a.voided = true
      a.retry = false
      return [{ type: 'complete', id, approved: false, reason: 'other' }]
    }
    // declined: still pending, never released while central may have charged it
    a.state = 'pending'
    a.retry = false
    return []
  }

  /** the Commit or Release asked for by `complete` is durable */
  completed(id: string): OnlineEffect[] {
    const a = this.#attempts.get(id)
    if (a === undefined || (a.state !== 'completing' && a.state !== 'releasing')) return []
    this.#attempts.delete(id)
    if (a.state === 'releasing')
      return a.retry
        ? [
            { type: 'mark-done', id },
            { type: 'afresh', id },
          ]
        : [{ type: 'mark-done', id }]
    if (a.voided)
      return [
        { type: 'mark-done', id },
        { type: 'offline', id },
      ]
    return [
      { type: 'mark-done', id },
      { type: 'answer', id, approved: a.approved, declineCode: a.declineCode },
    ]
  }

  /** an attempt found pending at start (its mark survived a crash) */
  recovered(id: string): void {
    if (this.#attempts.has(id)) return
    this.#attempts.set(id, {
      state: 'pending',
      requireOnline: false,
      deadline: 0,
      retry: false,
      voidSentAt: 0,
      approved: false,
      declineCode: undefined,
      voided: false,
    })
  }

  /** the reservation was settled some other way (committed, released): nothing left to void */
  settled(id: string): OnlineEffect[] {
    const a = this.#attempts.get(id)
    if (a === undefined || (a.state !== 'pending' && a.state !== 'voiding')) return []
    this.#attempts.delete(id)
    return [{ type: 'mark-done', id }]
  }

  /** a sync round, a clock tick: void what no decision owns (again if the last void went unanswered) */
  tick(now: number): OnlineEffect[] {
    const out: OnlineEffect[] = []
    for (const id of [...this.#attempts.keys()].sort()) {
      const a = this.#attempts.get(id)!
      if (a.retry) continue
      if (a.state === 'pending' || (a.state === 'voiding' && now - a.voidSentAt >= VOID_RETRY_MS)) {
        a.state = 'voiding'
        a.voidSentAt = now
        out.push({ type: 'void', id })
      }
    }
    return out
  }

  /**
   * A POS retry of a payment whose attempt a crash left pending. Central reachable: void it, then
   * decide the retry afresh; else decide it offline under the same reservation. undefined: not a
   * pending attempt, or one a void or a decision is busy with.
   */
  retried(
    id: string,
    opts: { deadline: number; centralReachable: boolean },
    now: number,
  ): OnlineEffect[] | undefined {
    const a = this.#attempts.get(id)
    if (a === undefined || a.state !== 'pending' || a.retry) return undefined
    a.retry = true
    a.deadline = opts.deadline
    if (opts.centralReachable) {
      a.state = 'voiding'
      a.voidSentAt = now
      return [{ type: 'void', id }]
    }
    a.state = 'fallback'
    return [{ type: 'fallback', id, deadline: a.deadline }]
  }

  /** central's answer to a void: voided (release it now) or committed (it was approved after all) */
  voidAnswered(id: string, status: 'voided' | 'committed'): OnlineEffect[] {
    const a = this.#attempts.get(id)
    if (a === undefined || (a.state !== 'voiding' && a.state !== 'pending')) return []
    if (status === 'committed') {
      // a Commit of it reached central: it is settled as approved, and must not be released
      this.#attempts.delete(id)
      if (a.retry)
        return [
          { type: 'mark-done', id },
          { type: 'fallback', id, deadline: a.deadline },
        ]
      return [{ type: 'mark-done', id }]
    }
    a.state = 'releasing'
    a.voided = true
    return [{ type: 'complete', id, approved: false, reason: 'voided' }]
  }

  /** the void did not reach central (or its answer did not come back): pending again */
  voidFailed(id: string): OnlineEffect[] {
    const a = this.#attempts.get(id)
    if (a === undefined || a.state !== 'voiding') return []
    if (a.retry) {
      a.state = 'fallback'
      return [{ type: 'fallback', id, deadline: a.deadline }]
    }
    a.state = 'pending'
    return []
  }

  /**
   * The decision that owned this attempt ended without finishing it (an error, a stop): an
   * attempt not asked yet is forgotten (central never saw it); one asked stays pending.
   */
  abandoned(id: string): void {
    const a = this.#attempts.get(id)
    if (a === undefined) return
    if (a.state === 'marking') this.#attempts.delete(id)
    else if (
      a.state === 'asking' ||
      a.state === 'fallback' ||
      a.state === 'completing' ||
      a.state === 'releasing'
    ) {
      a.state = 'pending'
      a.retry = false
    } else if (a.state === 'voiding' && a.retry) {
      a.retry = false
    }
  }
}
