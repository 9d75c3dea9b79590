import type { CommitMode } from '@nullmesh/protocol'
import type { Decision } from './decide.js'
import type { ExposureState, ReservationFacts } from './exposure.js'
import { currencyLimits } from './policy.js'
import type { VenuePolicy } from './types.js'

/*
 * Judging a Commit someone else made (issue 17, item 1). A quorum Commit carries the acks of peers
 * that ran decideAck; an isolated one carries nothing but its origin's word, so without these
 * checks one enrolled terminal could commit 99,999.99 isolated and use up the venue's exposure.
 * Peers run the stateless part (checkCommitStateless) in gossip validation; central runs
 * checkIsolatedCommit against its own view. Both are pure, like decideOffline.
 */

const APPROVE: Decision = Object.freeze({ approve: true })

function violation(code: Extract<Decision, { approve: false }>['code'], message: string): Decision {
  return { approve: false, code, message }
}

/** What a Commit of `mode` must satisfy whoever judges it, without any state. */
export function checkCommitStateless(
  policy: VenuePolicy,
  r: Pick<ReservationFacts, 'amountMinor' | 'currency' | 'method'> & { policyVersion?: number },
  mode: CommitMode,
): Decision {
  // online: the issuer decided the money; central checks it against its own authorisation record
  if (mode === 'online') return APPROVE
  // a quorum's acks judged it under its own policy version; isolated commits carry no acks, so they
  // are held to this policy's isolated limits whatever version they name
  if (mode === 'quorum' && r.policyVersion !== undefined && r.policyVersion !== policy.version) return APPROVE
  if (!Number.isSafeInteger(r.amountMinor) || r.amountMinor < 0)
    return violation('other', `amount ${r.amountMinor} is not an integer number of minor units ≥ 0`)
  const limits = currencyLimits(policy, r.currency)
  if (limits === undefined)
    return violation('currency_not_supported', `${r.currency} is not accepted offline`)
  if (!policy.allowedMethodsOffline.includes(r.method))
    return violation('method_not_allowed_offline', `${r.method} payments are not accepted offline`)
  if (mode === 'quorum') {
    if (r.amountMinor > limits.floorLimitMinor)
      return violation(
        'floor_limit_exceeded',
        `${r.amountMinor} ${r.currency} exceeds the offline floor limit of ${limits.floorLimitMinor}`,
      )
    return APPROVE
  }
  if (!policy.isolated.enabled) return violation('quorum_unavailable', 'isolated mode is disabled')
  if (r.amountMinor > limits.isolatedFloorLimitMinor)
    return violation(
      'isolated_limit_exceeded',
      `${r.amountMinor} ${r.currency} exceeds the isolated-mode limit of ${limits.isolatedFloorLimitMinor}`,
    )
  return APPROVE
}

/**
 * Does an isolated Commit of `r` respect the isolated limits, given `state`: the isolated commits of
 * r's origin that were not confirmed by central when r was committed (and nothing else of r's
 * origin)? Checks, in order: checkCommitStateless, the origin's unconfirmed isolated total
 * (`isolated_limit_exceeded`) and the approvals of one card (`isolated_card_used`). r itself is
 * not counted twice when the state already holds it.
 */
export function checkIsolatedCommit(
  policy: VenuePolicy,
  state: ExposureState,
  r: ReservationFacts & { policyVersion?: number },
): Decision {
  const stateless = checkCommitStateless(policy, r, 'isolated')
  if (!stateless.approve) return stateless
  const limits = currencyLimits(policy, r.currency)!
  const own = state.get(r.id)
  const counted = own?.commitModes.includes('isolated') === true && !own.confirmed
  const total = state.isolatedExposure(r.origin, r.currency).amountMinor - (counted ? r.amountMinor : 0)
  if (total + r.amountMinor > limits.isolatedDeviceCapMinor)
    return violation(
      'isolated_limit_exceeded',
      `isolated-mode total ${total} + ${r.amountMinor} ${r.currency} not confirmed by central exceeds ${limits.isolatedDeviceCapMinor}`,
    )
  const uses = state.isolatedCardCount(r.origin, r.cardKey) - (counted ? 1 : 0)
  if (uses + 1 > policy.isolated.maxApprovalsPerCard)
    return violation(
      'isolated_card_used',
      `card already approved ${uses} time(s) by this terminal in isolated mode, not confirmed by central (max ${policy.isolated.maxApprovalsPerCard})`,
    )
  return APPROVE
}
