export { checkCommitStateless, checkIsolatedCommit } from './commit-check.js'
export * from './constants.js'
export {
  type AckContext,
  type Decision,
  type DecisionContext,
  decideAck,
  decideOffline,
  decideOnlineAck,
  decideUnheldOnline,
  type OfflineCandidate,
  originView,
  unheldOnlineExposure,
} from './decide.js'
export * from './errors.js'
export { EscrowBook, initialShare, type TransferFacts } from './escrow.js'
export {
  createExposureState,
  type ExposureRecord,
  type ExposureSnapshot,
  type ExposureState,
  type ReservationFacts,
} from './exposure.js'
export {
  currencyLimits,
  defaultPolicy,
  effectiveGroupSize,
  groupQuorum,
  type ParsePolicyResult,
  parsePolicy,
  partitionExposureBound,
  quorumIssues,
  quorumSize,
  rosterSizeIssue,
  signPolicy,
  type VerifyPolicyResult,
  verifySignedPolicy,
} from './policy.js'
export { CurrencyLimitsSchema, VenuePolicySchema } from './schema.js'
export * from './types.js'
export {
  BUNDLE_FILES,
  type CreateVenueBundleOptions,
  createVenueBundle,
  decodeSwarmKey,
  encodeSwarmKey,
  type LoadVenueBundleOptions,
  loadTerminalKey,
  loadVenueBundle,
  type RosterEntry,
  type VenueBundle,
} from './venue-bundle.js'
export type { WindowTotal } from './window.js'
