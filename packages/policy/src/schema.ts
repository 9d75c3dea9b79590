import { CURRENCY_PATTERN, MAX_AMOUNT_MINOR, PAYMENT_METHODS, VENUE_ID_PATTERN } from '@nullmesh/protocol'
import { type TSchema, Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { type ValueError, ValueErrorType } from '@sinclair/typebox/errors'
import {
  BIN_PREFIX_PATTERN,
  MAX_CLOCK_SKEW_MS,
  MAX_GROUP_SIZE,
  MAX_TAP_BUDGET_MS,
  MIN_TAP_BUDGET_MS,
} from './constants.js'
import type { PolicyIssue } from './types.js'

// Each schema carries `expected`, the human phrase used in error messages, so that a wrong type
// and an out-of-range value of one field read the same: "expected integer ≥ 0".
const MAX_MS = 365 * 24 * 60 * 60 * 1000

function int(minimum: number, maximum?: number, why?: string): TSchema {
  let expected = maximum === undefined ? `integer ≥ ${minimum}` : `integer in [${minimum}, ${maximum}]`
  if (why !== undefined) expected += ` (${why})`
  return Type.Integer(maximum === undefined ? { minimum, expected } : { minimum, maximum, expected })
}

const amount = () => int(0, MAX_AMOUNT_MINOR)

function source(pattern: RegExp): string {
  return pattern.source
}

export const CurrencyLimitsSchema = Type.Object(
  {
    floorLimitMinor: amount(),
    cardCapMinor: amount(),
    deviceCapMinor: amount(),
    venueCapMinor: amount(),
    isolatedFloorLimitMinor: amount(),
    isolatedDeviceCapMinor: amount(),
  },
  { additionalProperties: false, expected: 'an object of currency limits' },
)

export const VenuePolicySchema = Type.Object(
  {
    venueId: Type.String({
      pattern: source(VENUE_ID_PATTERN),
      expected: 'a venue id of 1–64 characters [a-zA-Z0-9._-]',
    }),
    version: int(0, 0xffff),
    currencies: Type.Record(Type.String({ pattern: source(CURRENCY_PATTERN) }), CurrencyLimitsSchema, {
      additionalProperties: false,
      expected: 'an object keyed by ISO 4217 currency codes',
    }),
    allowedMethodsOffline: Type.Array(
      Type.Union(
        PAYMENT_METHODS.map((m) => Type.Literal(m)),
        { expected: `one of ${PAYMENT_METHODS.join(', ')}` },
      ),
      { uniqueItems: true, expected: 'an array of distinct payment methods' },
    ),
    cardWindowMs: int(1, MAX_MS),
    cardCapCount: int(0),
    deviceMaxQueued: int(0),
    queueDurationMs: int(1, MAX_MS),
    blockedBins: Type.Array(
      Type.String({ pattern: source(BIN_PREFIX_PATTERN), expected: 'a BIN prefix of 1–8 digits' }),
      {
        expected: 'an array of BIN prefixes',
      },
    ),
    denylistCardKeys: Type.Array(
      Type.String({ pattern: '^[0-9a-fA-F]{32}$', expected: 'a card key of 32 hex characters' }),
      { expected: 'an array of card keys' },
    ),
    barrier: Type.Object(
      {
        quorum: Type.Union([Type.Literal('majority'), Type.Integer({ minimum: 1 })], {
          expected: `"majority" or an integer ≥ 1`,
        }),
        // optional so policies signed before custodian groups still load (parsePolicy fills the default)
        groupSize: Type.Optional(int(1, MAX_GROUP_SIZE, 'an odd number of terminals')),
        timeoutMs: int(1, 60_000),
        retries: int(0, 100),
        retryJitterMs: int(0, 60_000),
      },
      {
        additionalProperties: false,
        expected: 'an object { quorum, groupSize, timeoutMs, retries, retryJitterMs }',
      },
    ),
    isolated: Type.Object(
      { enabled: Type.Boolean({ expected: 'true or false' }), maxApprovalsPerCard: int(0) },
      { additionalProperties: false, expected: 'an object { enabled, maxApprovalsPerCard }' },
    ),
    maxClockSkewMs: int(0, MAX_CLOCK_SKEW_MS, 'ms, at most 10 minutes'),
    tapBudgetMs: int(MIN_TAP_BUDGET_MS, MAX_TAP_BUDGET_MS, 'ms'),
  },
  { additionalProperties: false, expected: 'a policy object' },
)

const compiled = TypeCompiler.Compile(VenuePolicySchema)

function describe(e: ValueError): string {
  switch (e.type) {
    case ValueErrorType.ObjectAdditionalProperties:
      return 'unknown field'
    case ValueErrorType.ObjectRequiredProperty:
      return `required field missing (expected ${(e.schema as { expected?: string }).expected ?? 'a value'})`
    default: {
      const expected = (e.schema as { expected?: string }).expected
      return expected !== undefined ? `expected ${expected}` : e.message
    }
  }
}

/** Schema issues of an untrusted value, one per field (the first problem found for it). */
export function schemaIssues(value: unknown): PolicyIssue[] {
  if (compiled.Check(value)) return []
  const seen = new Set<string>()
  const issues: PolicyIssue[] = []
  for (const e of compiled.Errors(value)) {
    // a wrong currency code shows up as an unknown property of the record
    const path = e.path === '' ? '/' : e.path
    if (seen.has(path)) continue
    seen.add(path)
    let message = describe(e)
    if (e.type === ValueErrorType.ObjectAdditionalProperties && /^\/currencies\/[^/]+$/.test(path)) {
      message = 'expected an ISO 4217 currency code (three capital letters)'
    }
    issues.push({ path, message: `${path}: ${message}` })
  }
  return issues
}
