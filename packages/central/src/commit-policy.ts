import {
  checkCommitStateless,
  checkIsolatedCommit,
  createExposureState,
  type ReservationFacts,
} from '@nullmesh/policy'
import {
  type Commit,
  decodeEvent,
  fromBase64url,
  type Reservation,
  type SignedEvent,
  toHex,
} from '@nullmesh/protocol'
import { MAX_ISOLATED_LOOKBACK, OFFLINE_SYNC_FAILURE } from './constants.js'
import type { PaymentRecord, StoredEvent } from './types.js'
import type { VenueContext } from './venues.js'

/*
 * Central's check of a Commit against the venue policy at ingest (issue 17, item 1). Peers reject
 * what breaks the policy's stateless limits; central also knows what no peer does: its own record
 * of online authorisations, and which isolated commits it had confirmed to their terminal. A
 * violating Commit is failed (never settled, never counted in offline exposure) and its payment
 * flagged `policy_violation`: the venue summary counts them per terminal.
 */

export interface PolicyViolation {
  /** the policy's decline code, or online_not_authorised */
  code: string
  message: string
}

/** What the check reads: the ingest transaction (its own writes included) and its clock. */
export interface CommitPolicyView {
  readonly now: number
  getEvent(origin: string, seq: number): Promise<StoredEvent | undefined>
  getPayment(paymentId: string): Promise<PaymentRecord | undefined>
}

function factsOf(r: SignedEvent<Reservation>): ReservationFacts & { policyVersion: number } {
  const e = r.event
  return {
    id: r.idHex,
    origin: toHex(e.origin),
    nullifier: toHex(e.nullifier),
    cardKey: toHex(e.cardKey),
    amountMinor: e.amountMinor,
    currency: e.currency,
    method: e.method,
    ts: e.ts,
    policyVersion: e.policyVersion,
  }
}

/**
 * Is this Commit (of a payment central has not authorised online) outside the policy? Called for a
 * Commit whose payment is still `created` or `released` at central.
 *
 * - online: central never authorised it → online_not_authorised.
 * - quorum: checkCommitStateless (floor limit, currency, method of its policy version).
 * - isolated: checkIsolatedCommit against the isolated commits of its origin (violations excluded)
 *   that were certainly not confirmed to it when it decided: with a lower seq, and arrived at central in this batch or
 *   later, or more than maxClockSkewMs after the reservation's time (the terminal learns a
 *   confirmation only from central's answer, after it arrived). Anything else might have been
 *   confirmed already, so it is not counted: central flags only what certainly broke the limits.
 *   Looks back at most MAX_ISOLATED_LOOKBACK events of the origin (a store index would remove the
 *   walk: origin's isolated commits by seq).
 */
export async function commitPolicyViolation(
  view: CommitPolicyView,
  venue: VenueContext,
  signed: SignedEvent<Commit>,
): Promise<PolicyViolation | undefined> {
  const c = signed.event
  if (c.mode === 'online')
    return { code: 'online_not_authorised', message: 'online commit of a payment central never authorised' }
  const r = factsOf(c.reservation)
  if (c.mode === 'quorum') {
    const v = checkCommitStateless(venue.policy, r, 'quorum')
    return v.approve ? undefined : { code: v.code, message: v.message }
  }
  const stateless = checkCommitStateless(venue.policy, r, 'isolated')
  if (!stateless.approve) return { code: stateless.code, message: stateless.message }
  const state = createExposureState()
  const confirmedBy = r.ts + venue.policy.maxClockSkewMs
  const seq = c.reservation.event.seq
  for (let s = seq - 1; s >= Math.max(1, seq - MAX_ISOLATED_LOOKBACK); s--) {
    const e = await view.getEvent(r.origin, s)
    if (e?.type !== 'commit') continue
    // arrived before this batch, early enough that its terminal may have known it was confirmed
    if (e.receivedAt < view.now && e.receivedAt <= confirmedBy) continue
    const d = decodeEvent(fromBase64url(e.bytes))
    if (!d.ok || d.value.event.type !== 'commit' || d.value.event.mode !== 'isolated') continue
    const inner = d.value.event.reservation
    // a violation was never honoured: it uses no budget (and is reported on its own)
    if ((await view.getPayment(inner.idHex))?.syncDeclineCode === 'policy_violation') continue
    state.addCommit(factsOf(inner), 'isolated')
  }
  const v = checkIsolatedCommit(venue.policy, state, r)
  return v.approve ? undefined : { code: v.code, message: v.message }
}

/** The payment of a violating Commit: failed with syncDeclineCode policy_violation, never settled. */
export function violatedPayment(
  p: PaymentRecord,
  signed: SignedEvent<Commit>,
  violation: PolicyViolation,
  now: number,
): PaymentRecord {
  const mode = signed.event.mode
  const flags = [...p.flags, ...(mode === 'isolated' ? ['isolated'] : []), 'policy_violation']
  return {
    ...p,
    commitId: signed.idHex,
    mode,
    flags,
    status: 'failed',
    declineCode: OFFLINE_SYNC_FAILURE,
    syncDeclineCode: 'policy_violation',
    violation: `${violation.code}: ${violation.message}`,
    completedAt: now,
  }
}
