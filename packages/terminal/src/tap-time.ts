import { MAX_TAP_AGE_SHARE } from './constants.js'

/**
 * The tap's time on the performance clock (`nullmesh-tap-at`): the POS's claim, mapped through
 * `epochOffset` (Date.now() − performance.now()), when earlier than the request's arrival; never
 * more than MAX_TAP_AGE_SHARE of the budget before it (a POS clock behind), and a claim from the
 * future changes nothing (a POS clock ahead).
 */
export function tapTime(
  arrival: number,
  claimedEpochMs: number,
  epochOffset: number,
  tapBudgetMs: number,
): number {
  const claimed = claimedEpochMs - epochOffset
  if (!(claimed < arrival)) return arrival
  return Math.max(claimed, arrival - Math.floor(tapBudgetMs * MAX_TAP_AGE_SHARE))
}
