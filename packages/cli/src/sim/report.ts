import type { Scenario } from './options.js'

/** The sim's result. `--json` prints it as the last line of stdout. */
export interface SimSummary {
  scenario: Scenario
  terminals: number
  cards: number
  /** distinct payments made (POS retries not counted) */
  payments: number
  approved: number
  declined: number
  /** requests that got no decision (terminal unreachable, timeout) */
  errors: number
  errorsByCode: Record<string, number>
  byStatus: Record<string, number>
  /** decision mode as answered: online | quorum | isolated | floor_limit */
  byMode: Record<string, number>
  /** payments and approvals per generated kind (ordinary, over_floor, replay, double_tap, denylisted, blocked_bin) */
  byKind: Record<string, { payments: number; approved: number }>
  /** declines by code */
  declines: Record<string, number>
  /** cards whose quorum + isolated approvals within one card window exceed cardCapMinor (union of ledgers) */
  overCapCards: number
  maxOverCapMinor: number
  maxCardWindowTotalMinor: number
  cardCapMinor: number
  /** cards whose quorum + isolated approvals within one card window outnumber cardCapCount (union of ledgers) */
  overCountCards: number
  maxCardWindowCount: number
  cardCapCount: number
  /** nullifiers committed for more than one reservation across the union of ledgers */
  duplicateApprovals: number
  duplicateApprovedMinor: number
  /** of those, nullifiers with no isolated approval among them: no partition explains them */
  duplicatesWithoutIsolated: number
  barrierMs: { p50: number; p99: number; max: number; count: number }
  /** client-side decision latency */
  latencyMs: { p50: number; p99: number }
  /** the longest tap → decision (or error) over every payment, as the client timed the HTTP call */
  maxDecisionMs: number
  /** taps answered later than the tap budget (the terminal logs each: DEBUG=nullmesh:terminal:slow) */
  overBudgetDecisions: number
  /** the largest loop delay of the sim's driver (the POS) while a tap was outstanding (pos-lag.ts) */
  maxPosLagMs: number
  /** of the taps over the budget, those whose overshoot the driver's own loop delay covers */
  overBudgetWithinPosLag: number
  /**
   * the longest decision as the terminal timed it (the response's decisionMs: from its handler to
   * its answer); the rest of maxDecisionMs is queueing outside the terminal's code (a starved
   * machine: the request waiting for the event loop, the answer for the client's)
   */
  maxTerminalDecisionMs: number
  /** decisions the terminal itself timed over the tap budget */
  overBudgetInTerminal: number
  /** the policy's tapBudgetMs, which every decision should fit in */
  tapBudgetMs: number
  proofBytesMax: number
  /** proofs that did not verify with the deciding terminal's key */
  proofsInvalid: number
  /** isolated-mode commits in the union of ledgers */
  isolatedApprovals: number
  /** what those approved in `currency` (each reservation once): at most exposureBoundMinor */
  isolatedExposureMinor: number
  commitsByMode: { quorum: number; isolated: number; online: number }
  /** partitionExposureBound(policy, terminals, currency) */
  exposureBoundMinor: number
  currency: string
  doubleTaps: { groups: number; maxApprovalsPerGroup: number }
  /** per terminal: most cards at once whose custodian group had no reachable majority (polled) */
  groupsWithoutQuorum: Record<string, number>
  replays: { total: number; approved: number }
  retries: { total: number; mismatches: number }
  /** central's settlement outcome */
  settled: { completed: number; failed: number }
  failedByCode: Record<string, number>
  partitionLosses: number
  /** central's partition losses in `currency` (duplicates it failed with duplicate_nullifier) */
  partitionLossMinor: number
  /** payments a client saw approved that central does not hold as committed */
  lost: number
  /**
   * payments central settled (completed) under an id no client saw approved: money taken without
   * the customer being told (a violation). An unanswered request, or an online authorisation whose
   * answer was lost and the payment then approved offline under a new id, can cause it.
   */
  settledNotApproved: number
  syncTimedOut: boolean
  ledgers: { perTerminal: Record<string, number>; unionEvents: number; byType: Record<string, number> }
  /** processes that exited unexpectedly or had to be killed */
  crashed: string[]
  /** process ids of central and the terminals (all stopped when the sim returns) */
  pids: Record<string, number | null>
  /** invariants this run broke (exit code 3) */
  violations: string[]
  seed: string | number
  /** the load phase alone */
  loadMs: number
  /** the whole run */
  durationMs: number
  /** with --keep: where the venue, data directories and logs are */
  dataDir: string | null
}

const money = (minor: number): string => (minor / 100).toFixed(2)
const list = (m: Record<string, number>): string =>
  Object.entries(m)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(' · ') || 'none'

/** The readable summary. */
export function formatSummary(s: SimSummary): string {
  const ok = (cond: boolean): string => (cond ? '✔' : '✘')
  const partition = s.scenario === 'partition'
  const rate = s.loadMs > 0 ? (s.payments / (s.loadMs / 1000)).toFixed(1) : '–'
  const online = s.byStatus.approved_online ?? 0
  const offline = s.byStatus.approved_offline ?? 0
  const kinds = Object.entries(s.byKind)
    .map(([k, v]) => `${k} ${v.approved}/${v.payments}`)
    .join(' · ')
  const lines = [
    '',
    `nullmesh sim — scenario ${s.scenario}, ${s.terminals} terminals, ${s.cards} cards, seed ${s.seed}`,
    `  payments     ${s.payments} in ${(s.loadMs / 1000).toFixed(1)} s (${rate}/s): ${s.approved} approved (online ${online}, offline ${offline}), ${s.declined} declined${s.errors > 0 ? `, ${s.errors} without answer (${list(s.errorsByCode)})` : ''}`,
    `  by kind      ${kinds} (approved/made)`,
    `  declines     ${list(s.declines)}`,
    `  barrier      p50 ${s.barrierMs.p50} ms · p99 ${s.barrierMs.p99} ms · max ${s.barrierMs.max} ms over ${s.barrierMs.count} offline decisions; request latency p50 ${s.latencyMs.p50} ms · p99 ${s.latencyMs.p99} ms`,
    `  tap time     ${s.maxDecisionMs <= s.tapBudgetMs ? ok(true) : '⚠'} longest tap → decision ${s.maxDecisionMs} ms (tap budget ${s.tapBudgetMs} ms, ${s.overBudgetDecisions} over it); inside the terminal at most ${s.maxTerminalDecisionMs} ms (${s.overBudgetInTerminal} over); the POS's own loop delay up to ${s.maxPosLagMs} ms (${s.overBudgetWithinPosLag} of the taps over the budget by no more than that)`,
    `  proofs       ≤ ${s.proofBytesMax} bytes, ${s.proofsInvalid === 0 ? 'every one verified with its terminal’s key' : `${s.proofsInvalid} FAILED verification`}`,
    `  ledgers      ${Object.entries(s.ledgers.perTerminal)
      .map(([t, n]) => `${t} ${n}`)
      .join(
        ' · ',
      )} events; union ${s.ledgers.unionEvents} · commits quorum ${s.commitsByMode.quorum} · isolated ${s.commitsByMode.isolated} · online ${s.commitsByMode.online}`,
  ]
  const noQuorum = Object.entries(s.groupsWithoutQuorum ?? {})
  lines.push(
    `  groups       ${noQuorum.length === 0 ? "every card's custodian group had a reachable majority when asked" : `cards whose group had no reachable majority (isolated rules): ${noQuorum.map(([t, n]) => `${t} ${n}`).join(' · ')}`}`,
  )
  if (s.doubleTaps.groups > 0) {
    lines.push(
      `  double taps  ${s.doubleTaps.groups} cards tapped at every terminal at once: at most ${s.doubleTaps.maxApprovalsPerGroup} approval per card`,
    )
  }
  lines.push(
    `  replays      ${s.replays.total} credential replays at another terminal, ${s.replays.approved} approved · ${s.retries.total} POS retries, ${s.retries.mismatches === 0 ? 'all got the first decision' : `${s.retries.mismatches} got another decision`}`,
    `  caps         ${ok(s.overCapCards === 0)} ${s.overCapCards} card(s) over the offline cap (worst card window ${money(s.maxCardWindowTotalMinor)} of ${money(s.cardCapMinor)} ${s.currency}${s.maxOverCapMinor > 0 ? `, over by ${money(s.maxOverCapMinor)}` : ''})`,
    `  counts       ${ok(s.overCountCards === 0)} ${s.overCountCards} card(s) over the offline count cap (worst card window ${s.maxCardWindowCount} of ${s.cardCapCount} payments)`,
    `  double spend ${ok(s.duplicateApprovals === 0 || (partition && s.duplicatesWithoutIsolated === 0))} ${s.duplicateApprovals} nullifier(s) approved twice${s.duplicateApprovals > 0 ? ` (${money(s.duplicateApprovedMinor)} ${s.currency}; ${s.duplicatesWithoutIsolated} without an isolated approval)` : ''}`,
    `  exposure     ${ok(s.isolatedExposureMinor <= s.exposureBoundMinor)} ${s.isolatedApprovals} isolated approval(s) of ${money(s.isolatedExposureMinor)} ${s.currency} within the partition bound ${money(s.exposureBoundMinor)}${s.partitionLosses > 0 ? `; central counted ${s.partitionLosses} partition loss(es) of ${money(s.partitionLossMinor)}` : ''}`,
    `  settlement   ${s.settled.completed} completed, ${s.settled.failed} failed (${list(s.failedByCode)})${s.syncTimedOut ? ' — sync did NOT complete in time' : ''}`,
    `  lost         ${ok(s.lost === 0)} ${s.lost} approved payment(s) missing at central`,
    `  reconcile    ${ok(s.settledNotApproved === 0)} ${s.settledNotApproved} payment(s) settled under an id no client saw approved${s.errors > 0 ? ` (${s.errors} request(s) went unanswered)` : ''}`,
    `  processes    ${s.crashed.length === 0 ? `central + ${s.terminals} terminals stopped cleanly` : `CRASHED: ${s.crashed.join(', ')}`}`,
    `  run          ${(s.durationMs / 1000).toFixed(1)} s${s.dataDir === null ? '' : `; data kept in ${s.dataDir}`}`,
  )
  if (s.violations.length > 0) lines.push(`  VIOLATIONS   ${s.violations.join('; ')}`)
  if (s.crashed.length > 0) lines.push(`  result       ${ok(false)} ${s.crashed.length} process(es) crashed`)
  else if (s.violations.length === 0)
    lines.push(
      `  result       ${ok(true)} all invariants held${partition ? ' (a partition may approve within the exposure bound)' : ''}`,
    )
  return lines.join('\n')
}

/**
 * Invariants a run must hold (exit code 3 when one breaks). Pure over the summary. A partition
 * may approve a credential twice or push a card over its caps, but only through isolated
 * approvals, and those within exposureBoundMinor; every other scenario allows neither.
 */
export function violations(s: SimSummary): string[] {
  const v: string[] = []
  if (s.proofBytesMax > 90) v.push(`a proof of ${s.proofBytesMax} bytes (limit 90)`)
  if (s.proofsInvalid > 0) v.push(`${s.proofsInvalid} proof(s) failed verification`)
  if (s.lost > 0) v.push(`${s.lost} approved payment(s) never reached central`)
  if (s.settledNotApproved > 0)
    v.push(`${s.settledNotApproved} payment(s) settled under an id no client saw approved`)
  if (s.retries.mismatches > 0) v.push(`${s.retries.mismatches} retry(ies) got a different decision`)
  if (s.approved === 0 && s.payments > 0) v.push('no payment was approved')
  if (s.isolatedExposureMinor > s.exposureBoundMinor) {
    v.push(
      `isolated approvals of ${money(s.isolatedExposureMinor)} ${s.currency} exceed the partition exposure bound of ${money(s.exposureBoundMinor)}`,
    )
  }
  if (s.scenario === 'partition') {
    if (s.duplicatesWithoutIsolated > 0)
      v.push(`${s.duplicatesWithoutIsolated} nullifier(s) approved more than once without isolated mode`)
  } else {
    if (s.duplicateApprovals > 0) v.push(`${s.duplicateApprovals} nullifier(s) approved more than once`)
    if (s.overCapCards > 0) v.push(`${s.overCapCards} card(s) over their offline cap`)
    if (s.overCountCards > 0) v.push(`${s.overCountCards} card(s) over their offline count cap`)
    if (s.doubleTaps.maxApprovalsPerGroup > 1) v.push('a double tap was approved more than once')
  }
  return v
}
