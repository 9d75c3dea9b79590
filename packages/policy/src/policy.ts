import {
  DOMAIN,
  type KeyPair,
  MAX_ACKS,
  type SignedDocument,
  signDocument,
  verifyDocument,
} from '@nullmesh/protocol'
import {
  DEFAULT_ALLOWED_METHODS_OFFLINE,
  DEFAULT_BARRIER_GROUP_SIZE,
  DEFAULT_BARRIER_QUORUM,
  DEFAULT_BARRIER_RETRIES,
  DEFAULT_BARRIER_RETRY_JITTER_MS,
  DEFAULT_BARRIER_TIMEOUT_MS,
  DEFAULT_CARD_CAP_COUNT,
  DEFAULT_CARD_WINDOW_MS,
  DEFAULT_CURRENCIES,
  DEFAULT_CURRENCY_LIMITS,
  DEFAULT_DEVICE_MAX_QUEUED,
  DEFAULT_ISOLATED_ENABLED,
  DEFAULT_ISOLATED_MAX_APPROVALS_PER_CARD,
  DEFAULT_MAX_CLOCK_SKEW_MS,
  DEFAULT_POLICY_VERSION,
  DEFAULT_QUEUE_DURATION_MS,
  DEFAULT_TAP_BUDGET_MS,
  MAX_ROSTER_SIZE,
} from './constants.js'
import { PolicyError } from './errors.js'
import { schemaIssues } from './schema.js'
import type { CurrencyLimits, PolicyIssue, PolicyOverrides, VenuePolicy } from './types.js'

/**
 * The default policy for a venue, with `overrides` applied. `currencies` in the overrides replaces
 * the currency set (limits not given take the defaults); `barrier` and `isolated` merge field by
 * field. Not validated: parsePolicy / signPolicy do that.
 */
export function defaultPolicy(venueId: string, overrides: PolicyOverrides = {}): VenuePolicy {
  const currencies: Record<string, CurrencyLimits> = {}
  const requested = overrides.currencies ?? Object.fromEntries(DEFAULT_CURRENCIES.map((c) => [c, {}]))
  for (const [code, limits] of Object.entries(requested))
    currencies[code] = { ...DEFAULT_CURRENCY_LIMITS, ...limits }
  return {
    venueId,
    version: overrides.version ?? DEFAULT_POLICY_VERSION,
    currencies,
    allowedMethodsOffline: [...(overrides.allowedMethodsOffline ?? DEFAULT_ALLOWED_METHODS_OFFLINE)],
    cardWindowMs: overrides.cardWindowMs ?? DEFAULT_CARD_WINDOW_MS,
    cardCapCount: overrides.cardCapCount ?? DEFAULT_CARD_CAP_COUNT,
    deviceMaxQueued: overrides.deviceMaxQueued ?? DEFAULT_DEVICE_MAX_QUEUED,
    queueDurationMs: overrides.queueDurationMs ?? DEFAULT_QUEUE_DURATION_MS,
    blockedBins: [...(overrides.blockedBins ?? [])],
    denylistCardKeys: [...(overrides.denylistCardKeys ?? [])],
    barrier: {
      quorum: overrides.barrier?.quorum ?? DEFAULT_BARRIER_QUORUM,
      groupSize: overrides.barrier?.groupSize ?? DEFAULT_BARRIER_GROUP_SIZE,
      timeoutMs: overrides.barrier?.timeoutMs ?? DEFAULT_BARRIER_TIMEOUT_MS,
      retries: overrides.barrier?.retries ?? DEFAULT_BARRIER_RETRIES,
      retryJitterMs: overrides.barrier?.retryJitterMs ?? DEFAULT_BARRIER_RETRY_JITTER_MS,
    },
    isolated: {
      enabled: overrides.isolated?.enabled ?? DEFAULT_ISOLATED_ENABLED,
      maxApprovalsPerCard: overrides.isolated?.maxApprovalsPerCard ?? DEFAULT_ISOLATED_MAX_APPROVALS_PER_CARD,
    },
    maxClockSkewMs: overrides.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS,
    tapBudgetMs: overrides.tapBudgetMs ?? DEFAULT_TAP_BUDGET_MS,
  }
}

export type ParsePolicyResult = { ok: true; policy: VenuePolicy } | { ok: false; errors: PolicyIssue[] }

function issue(path: string, problem: string): PolicyIssue {
  return { path, message: `${path}: ${problem}` }
}

/** Rules across fields, on a value that already matches the schema. */
function semanticIssues(p: VenuePolicy): PolicyIssue[] {
  const issues: PolicyIssue[] = []
  for (const [code, l] of Object.entries(p.currencies)) {
    const at = `/currencies/${code}`
    if (l.isolatedFloorLimitMinor > l.floorLimitMinor) {
      issues.push(issue(`${at}/isolatedFloorLimitMinor`, `must be ≤ floorLimitMinor (${l.floorLimitMinor})`))
    }
    if (l.isolatedDeviceCapMinor > l.deviceCapMinor) {
      issues.push(issue(`${at}/isolatedDeviceCapMinor`, `must be ≤ deviceCapMinor (${l.deviceCapMinor})`))
    }
  }
  if (p.barrier.timeoutMs > p.tapBudgetMs) {
    issues.push(
      issue('/barrier/timeoutMs', `must be ≤ tapBudgetMs (${p.tapBudgetMs}): one attempt must fit in a tap`),
    )
  }
  if (p.barrier.groupSize % 2 === 0) {
    issues.push(
      issue(
        '/barrier/groupSize',
        `must be odd, got ${p.barrier.groupSize}: an even group tolerates no more failures than the odd one below it and needs one more ack`,
      ),
    )
  }
  if (p.isolated.enabled && p.isolated.maxApprovalsPerCard < 1) {
    issues.push(
      issue('/isolated/maxApprovalsPerCard', 'must be ≥ 1 when isolated mode is enabled (or disable it)'),
    )
  }
  return issues
}

/**
 * Validate untrusted JSON as a VenuePolicy: schema (TypeBox) then cross-field rules. Never throws.
 * On success returns a fresh copy (card keys lowercased), safe to keep while the input changes.
 */
export function parsePolicy(json: unknown): ParsePolicyResult {
  const errors = schemaIssues(json)
  if (errors.length > 0) return { ok: false, errors }
  const policy = structuredClone(json) as VenuePolicy
  // policies signed before custodian groups carry no groupSize
  policy.barrier.groupSize ??= DEFAULT_BARRIER_GROUP_SIZE
  policy.denylistCardKeys = policy.denylistCardKeys.map((k) => k.toLowerCase())
  const semantic = semanticIssues(policy)
  if (semantic.length > 0) return { ok: false, errors: semantic }
  return { ok: true, policy }
}

function invalid(errors: PolicyIssue[]): PolicyError {
  return new PolicyError(
    'ERR_INVALID_POLICY',
    `invalid policy: ${errors.map((e) => e.message).join('; ')}`,
    errors,
  )
}

/**
 * Sign a policy as the venue operator. Throws PolicyError (ERR_INVALID_POLICY) rather than sign a
 * policy no terminal would accept. The signed payload is the validated copy, so it survives a JSON
 * round trip byte for byte (no undefined fields).
 */
export function signPolicy(operatorKey: KeyPair, policy: VenuePolicy): SignedDocument<VenuePolicy> {
  const parsed = parsePolicy(policy)
  if (!parsed.ok) throw invalid(parsed.errors)
  return signDocument(DOMAIN.policy, operatorKey, parsed.policy)
}

export type VerifyPolicyResult =
  | { ok: true; policy: VenuePolicy; document: SignedDocument<VenuePolicy> }
  | { ok: false; error: PolicyError }

/** Check a signed policy document: operator signature, then schema and rules. Never throws. */
export function verifySignedPolicy(doc: unknown, operatorPublicKey: Uint8Array): VerifyPolicyResult {
  const verified = verifyDocument<unknown>(DOMAIN.policy, doc, operatorPublicKey)
  if (!verified.ok) {
    const code = verified.error.code
    const mapped = code === 'ERR_WRONG_ISSUER' || code === 'ERR_BAD_SIGNATURE' ? code : 'ERR_MALFORMED'
    return { ok: false, error: new PolicyError(mapped, verified.error.message) }
  }
  const parsed = parsePolicy(verified.value.payload)
  if (!parsed.ok) return { ok: false, error: invalid(parsed.errors) }
  return { ok: true, policy: parsed.policy, document: verified.value as SignedDocument<VenuePolicy> }
}

/** floor(n/2)+1: the smallest quorum any two of which share a terminal. */
function majority(rosterSize: number): number {
  return Math.floor(rosterSize / 2) + 1
}

/**
 * Terminals in a card's custodian group: `barrier.groupSize`, or the whole roster when it is
 * smaller (a venue with N ≤ G behaves as before groups: one group, the roster).
 */
export function effectiveGroupSize(policy: VenuePolicy, rosterSize: number): number {
  const g = policy.barrier.groupSize ?? DEFAULT_BARRIER_GROUP_SIZE
  return Math.max(1, Math.min(g, rosterSize))
}

/**
 * Problems of a policy that only show once the roster size is known, so createVenueBundle and
 * loadVenueBundle check them: a numeric `barrier.quorum` must be a strict majority of the custodian
 * group, min(groupSize, roster) terminals (two smaller quorums of one card's group can miss each
 * other and commit one nullifier twice), and fit in one Commit (MAX_ACKS acks). A quorum above the
 * group is clamped to it by quorumSize, which is still a majority. The roster size itself must be
 * in [1, MAX_ROSTER_SIZE]; see rosterSizeIssue.
 */
export function quorumIssues(policy: VenuePolicy, rosterSize: number): PolicyIssue[] {
  const q = policy.barrier.quorum
  if (q === 'majority' || rosterSizeIssue(rosterSize) !== undefined) return []
  const group = effectiveGroupSize(policy, rosterSize)
  const effective = Math.min(q, group)
  if (2 * effective <= group) {
    const of = group === rosterSize ? `${rosterSize} terminals` : `a custodian group of ${group} terminals`
    return [
      issue(
        '/barrier/quorum',
        `${q} is not a strict majority of ${of} (needs ≥ ${majority(group)}): two quorums could miss each other and approve one card credential twice`,
      ),
    ]
  }
  if (effective > MAX_ACKS) {
    return [issue('/barrier/quorum', `${q} acks do not fit in a commit (at most ${MAX_ACKS})`)]
  }
  return []
}

/** Why a roster of this size cannot work, or undefined when it can. */
export function rosterSizeIssue(rosterSize: number): string | undefined {
  if (!Number.isSafeInteger(rosterSize) || rosterSize < 1 || rosterSize > MAX_ROSTER_SIZE) {
    return `a roster must have 1 to ${MAX_ROSTER_SIZE} terminals, got ${rosterSize}`
  }
  return undefined
}

/**
 * Acks a commit needs out of a card's custodian group (groupQuorum), or out of `rosterSize`
 * terminals for roster-wide rules (learning the own history after a lost disk): a majority,
 * floor(n/2)+1, or a fixed number clamped to [majority, n]. Never less than a majority: only
 * majorities are guaranteed to share a terminal, which is what makes a double spend impossible.
 * A too-small number is clamped up rather than thrown on because this runs inside live terminals
 * and central (e.g. when membership changes); the misconfiguration itself is rejected loudly
 * where the roster is known (quorumIssues, at bundle creation and load). Losing liveness is the
 * safe failure; losing intersection is not.
 */
export function quorumSize(policy: VenuePolicy, rosterSize: number): number {
  if (!Number.isSafeInteger(rosterSize) || rosterSize < 1)
    throw new RangeError(`roster size must be a positive integer, got ${rosterSize}`)
  const q = policy.barrier.quorum
  const m = majority(rosterSize)
  if (q === 'majority') return m
  return Math.min(Math.max(Math.trunc(q), m), rosterSize)
}

/** Acks a commit needs within a card's custodian group of min(groupSize, roster) terminals. */
export function groupQuorum(policy: VenuePolicy, rosterSize: number): number {
  return quorumSize(policy, effectiveGroupSize(policy, rosterSize))
}

/**
 * Worst case a partition can approve in `currency` with no quorum anywhere: every terminal
 * isolated and each filling its isolated-mode cap. 0 when isolated mode is disabled or the
 * currency is not accepted offline.
 *
 * It holds per partition, whatever its duration and however the terminals' clocks jump: an
 * isolated approval uses its terminal's isolated budget until central has confirmed it
 * (ExposureState.confirmIsolated), not for a time window. So at any moment the isolated
 * approvals central has not confirmed total at most this; a terminal cut off from central as
 * well as from its peers approves at most isolatedDeviceCapMinor alone for the whole partition.
 */
export function partitionExposureBound(policy: VenuePolicy, rosterSize: number, currency: string): number {
  const limits = currencyLimits(policy, currency)
  if (!policy.isolated.enabled || limits === undefined) return 0
  return Math.max(0, rosterSize) * limits.isolatedDeviceCapMinor
}

/** The limits for a currency, or undefined when it is not accepted offline. */
export function currencyLimits(policy: VenuePolicy, currency: string): CurrencyLimits | undefined {
  return Object.hasOwn(policy.currencies, currency) ? policy.currencies[currency] : undefined
}
