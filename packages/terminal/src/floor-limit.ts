import {
  createExposureState,
  decideOffline,
  type ExposureState,
  type ReservationFacts,
  type VenuePolicy,
} from '@nullmesh/policy'
import type { DeclineCode, PaymentMethod } from '@nullmesh/protocol'
import type { Candidate } from './online.js'

/**
 * The benchmark comparison mode `floor-limit-only`: the floor limit and the caps on this
 * terminal's own approvals, no barrier (and no protection against the same card elsewhere).
 */
export class FloorLimit {
  readonly #state: ExposureState = createExposureState()
  readonly #policy: VenuePolicy
  readonly #origin: string

  constructor(policy: VenuePolicy, origin: string) {
    this.#policy = policy
    this.#origin = origin
  }

  /** an approval of this mode (also one recorded by an earlier run) */
  add(
    id: string,
    nullifier: string,
    cardKey: string,
    amountMinor: number,
    currency: string,
    method: PaymentMethod,
    ts: number,
  ): void {
    const facts: ReservationFacts = {
      id,
      origin: this.#origin,
      nullifier,
      cardKey,
      amountMinor,
      currency,
      method,
      ts,
    }
    this.#state.addReservation(facts, true)
    this.#state.addCommit(facts, 'quorum')
  }

  /** undefined: approved (and counted); else the decline code */
  decide(id: string, c: Candidate, now: number): DeclineCode | undefined {
    const verdict = decideOffline(
      this.#policy,
      this.#state,
      {
        origin: this.#origin,
        nullifier: c.nullifierHex,
        cardKey: c.cardKeyHex,
        amountMinor: c.amountMinor,
        currency: c.currency,
        method: c.method,
        bin: c.bin,
        ts: now,
      },
      { mode: 'quorum', now },
    )
    if (!verdict.approve) return verdict.code
    this.add(id, c.nullifierHex, c.cardKeyHex, c.amountMinor, c.currency, c.method, now)
    return undefined
  }
}
