/**
 * @packageDocumentation
 *
 * The `nullmesh` command (see bin.ts) and the pieces of it that are useful as a library: the sim's
 * deterministic load plan and its ledger analysis, the CLI program itself, and peer ids from
 * roster keys, and the `scale` bench figure (run by scripts/bench.js).
 */

export { parseHostPort } from './args.js'
export type { LatencySummary, ScaleFigure, ScaleGoal, ScaleInit, ScaleRun } from './bench/scale.js'
export { runScale, scaleGoals } from './bench/scale.js'
export { scaleChartSvg } from './bench/scale-chart.js'
export { UserError } from './errors.js'
export { findLedgerDir } from './ledger-dir.js'
export { buildProgram, main, VERSION } from './main.js'
export { base58btc, peerIdFromEd25519 } from './peer-id.js'
export type { DuplicateReport, OverCapReport, OverCountReport } from './sim/analyze.js'
export {
  type CommitFact,
  duplicateApprovals,
  isolatedApprovedMinor,
  LedgerUnion,
  overCapCards,
  overCountCards,
  settledNotApproved,
  uniqueReservations,
} from './sim/analyze.js'
export { SCENARIOS, type Scenario, type SimOptions } from './sim/options.js'
export type { CardKind, PaymentKind, Plan, PlanInput, PlannedPayment, SimCard, Step } from './sim/plan.js'
export { burstAmounts, makePlan } from './sim/plan.js'
export { LinkProxy } from './sim/proxy.js'
export { Random } from './sim/random.js'
export type { SimSummary } from './sim/report.js'
export { formatSummary, violations } from './sim/report.js'
