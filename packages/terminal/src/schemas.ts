import { MAX_AMOUNT_MINOR, PAYMENT_METHODS } from '@nullmesh/protocol'
import { type Static, type TLiteral, type TSchema, type TUnion, Type } from '@sinclair/typebox'
import { TypeCompiler, type ValueError, ValueErrorType } from '@sinclair/typebox/compiler'
import { LIMITS } from './constants.js'
import { TerminalError } from './errors.js'

/*
 * TypeBox schemas of the local HTTP API: they validate requests, describe responses in
 * /openapi.json, and must agree with the wire types of @nullmesh/client (a test checks a real
 * request and its answer against both).
 */

const literals = <T extends readonly string[]>(
  values: T,
  description: string,
): TUnion<TLiteral<T[number]>[]> =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    { description },
  ) as TUnion<TLiteral<T[number]>[]>

export const OFFLINE_BEHAVIORS = ['prefer_online', 'require_online', 'force_offline'] as const
export const PAYMENT_STATUSES = [
  'approved_online',
  'approved_offline',
  'declined_online',
  'declined_offline',
] as const
export const DECISION_MODES = ['online', 'quorum', 'isolated', 'floor_limit'] as const
export const SETTLEMENT_STATUSES = ['none', 'queued', 'forwarded', 'completed', 'failed'] as const

const ContextField = Type.String({ minLength: 1, maxLength: LIMITS.contextFieldMaxLength })

export const PaymentContextSchema = Type.Object(
  {
    location: Type.Optional(ContextField),
    eventId: Type.Optional(ContextField),
    vertical: Type.Optional(ContextField),
  },
  { additionalProperties: false, description: 'free-form labels kept with the payment record' },
)

export const PaymentRequestSchema = Type.Object(
  {
    idempotencyKey: Type.String({
      minLength: 1,
      maxLength: LIMITS.idempotencyKeyMaxLength,
      pattern: '^[\\x21-\\x7e]+$',
      description:
        'the same key with the same amount, currency, method and card returns the first decision, even across a restart; other parameters → 409 idempotency_key_reused (printable ASCII, no spaces)',
    }),
    cardToken: Type.String({
      minLength: 1,
      maxLength: LIMITS.cardTokenMaxLength,
      pattern: '^[\\x20-\\x7e]+$',
      description:
        'card token or PAN-shaped string: used to compute the nullifier, card key and BIN, never stored',
    }),
    amountMinor: Type.Integer({ minimum: 1, maximum: MAX_AMOUNT_MINOR, description: 'integer minor units' }),
    currency: Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217 alphabetic code' }),
    method: literals(PAYMENT_METHODS, 'how the card was presented'),
    offlineBehavior: Type.Optional(literals(OFFLINE_BEHAVIORS, 'default prefer_online')),
    credentialCounter: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: LIMITS.maxCredentialCounter,
        description: 'the card transaction counter (EMV ATC)',
      }),
    ),
    context: Type.Optional(PaymentContextSchema),
  },
  { additionalProperties: false },
)

export type PaymentRequestBody = Static<typeof PaymentRequestSchema>

export const BarrierSchema = Type.Object(
  {
    acks: Type.Integer({ minimum: 0, description: 'positive acks, this terminal included' }),
    quorum: Type.Integer({ minimum: 1 }),
    ms: Type.Number({ minimum: 0, description: 'barrier duration' }),
  },
  { additionalProperties: false },
)

const responseProperties = {
  paymentId: Type.String({ description: 'the reservation id (hex) when a reservation was made' }),
  status: literals(PAYMENT_STATUSES, 'the decision'),
  declineCode: Type.Optional(Type.String({ description: 'stable decline code' })),
  nullifier: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  proof: Type.String({
    pattern: '^[A-Za-z0-9_-]+$',
    description: 'base64url, 87 bytes, verifiable with the terminal public key',
  }),
  queued: Type.Boolean({ description: 'approved offline and waiting to be forwarded to central' }),
  barrier: Type.Optional(BarrierSchema),
  mode: literals(DECISION_MODES, 'who decided'),
  terminal: Type.String({ description: 'roster id of the deciding terminal' }),
}

export const PaymentResponseSchema = Type.Object(responseProperties, { additionalProperties: false })
export type PaymentResponseBody = Static<typeof PaymentResponseSchema>

export const SettlementSchema = Type.Object(
  {
    status: literals(SETTLEMENT_STATUSES, 'none (declined) | queued | forwarded | completed | failed'),
    declineCode: Type.Optional(Type.String()),
    syncDeclineCode: Type.Optional(Type.String()),
    completedAt: Type.Optional(Type.Integer()),
    updatedAt: Type.Integer(),
  },
  { additionalProperties: false },
)

export const PaymentSchema = Type.Object(
  {
    ...responseProperties,
    idempotencyKey: Type.String(),
    amountMinor: Type.Integer(),
    currency: Type.String(),
    method: literals(PAYMENT_METHODS, 'how the card was presented'),
    offlineBehavior: literals(OFFLINE_BEHAVIORS, 'as requested'),
    context: Type.Optional(PaymentContextSchema),
    createdAt: Type.Integer(),
    settlement: SettlementSchema,
  },
  { additionalProperties: false },
)
export type PaymentBody = Static<typeof PaymentSchema>

export const StatusSchema = Type.Object(
  {
    online: Type.Boolean({ description: 'central reachable' }),
    mesh: Type.Object(
      {
        mode: literals(['quorum', 'isolated'] as const, 'quorum reachable or not'),
        peers: Type.Integer(),
        roster: Type.Integer(),
        quorum: Type.Integer({ description: "acks a payment needs within its card's custodian group" }),
        groupSize: Type.Integer({ description: "terminals in a card's custodian group" }),
        groupsWithoutQuorum: Type.Integer({
          description: 'cards whose custodian group had no reachable majority at their last decision',
        }),
        historyKnown: Type.Optional(
          Type.Boolean({
            description:
              'false while a terminal with an empty ledger has not learned its own history from enough peers: it approves nothing until then',
          }),
        ),
        centralRefill: Type.Optional(
          literals(
            ['none', 'awaiting', 'done'] as const,
            'a terminal with an empty ledger takes its own events back from central too: awaiting until central answered or could not be reached',
          ),
        ),
      },
      { additionalProperties: false },
    ),
    queue: Type.Object(
      {
        count: Type.Integer(),
        amountsByCurrency: Type.Record(Type.String(), Type.Integer()),
      },
      { additionalProperties: false },
    ),
    exposureBoundMinor: Type.Integer(),
    decisions: Type.Object(
      {
        count: Type.Integer({ description: 'payments decided since this start' }),
        maxMs: Type.Number({
          description:
            'the longest decision as the terminal timed it, from its handler to its answer (a POS also sees the queueing before the handler runs)',
        }),
        overBudget: Type.Integer({ description: 'decisions the terminal timed over the tap budget' }),
      },
      { additionalProperties: false },
    ),
    onlineUnresolved: Type.Integer({
      description:
        'online attempts without an answer from central and not approved offline: held, to be voided at central before release',
    }),
    settlement: Type.Object(
      {
        forwarded: Type.Integer({ description: 'own payments central has and is settling' }),
        completed: Type.Integer(),
        failed: Type.Integer(),
      },
      {
        additionalProperties: false,
        description: 'own approved payments by settlement status (queued ones are in queue)',
      },
    ),
    terminal: Type.String(),
    peerId: Type.String(),
    decisionMode: literals(['mesh', 'floor-limit-only'] as const, 'how offline decisions are taken'),
    revoked: Type.Optional(
      Type.Object(
        {
          effectiveAt: Type.Integer({ description: 'ms since the epoch' }),
          reason: Type.String(),
        },
        {
          additionalProperties: false,
          description:
            'the operator revoked this terminal (issue 17): from effectiveAt on it refuses payments (403 terminal_revoked)',
        },
      ),
    ),
  },
  { additionalProperties: false },
)
export type StatusBody = Static<typeof StatusSchema>

export const ErrorSchema = Type.Object(
  {
    code: Type.String(),
    message: Type.String(),
    field: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
)

export const PaymentParamsSchema = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) })

const compiledRequest = TypeCompiler.Compile(PaymentRequestSchema)

function fieldOf(error: ValueError): string {
  const field = error.path.replace(/^\//, '').replaceAll('/', '.')
  return field === '' ? 'body' : field
}

function describe(error: ValueError, field: string): string {
  const schema = error.schema as TSchema & {
    anyOf?: { const?: unknown }[]
    maxLength?: number
    minimum?: number
    maximum?: number
  }
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return `${field} is required`
    case ValueErrorType.ObjectAdditionalProperties:
      return `${field} is not a known field`
    case ValueErrorType.Union:
      if (Array.isArray(schema.anyOf) && schema.anyOf.every((s) => s.const !== undefined)) {
        return `${field} must be one of ${schema.anyOf.map((s) => String(s.const)).join(', ')}`
      }
      return `${field}: ${error.message}`
    case ValueErrorType.Integer:
      return `${field} must be an integer`
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.IntegerMinimum:
      return `${field} must be ≥ ${schema.minimum}`
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.IntegerMaximum:
      return `${field} must be ≤ ${schema.maximum}`
    default:
      return `${field}: ${error.message.charAt(0).toLowerCase()}${error.message.slice(1)}`
  }
}

/** Validate a payment request; throws TerminalError `invalid_request` naming the first bad field. */
export function parsePaymentRequest(body: unknown): PaymentRequestBody {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new TerminalError('invalid_request', 'body must be a JSON object', { field: 'body' })
  }
  if (compiledRequest.Check(body)) return body
  // report a missing field before a wrong one, then in declaration order: stable for clients
  const errors = [...compiledRequest.Errors(body)]
  const first =
    errors.find((e) => e.type === ValueErrorType.ObjectRequiredProperty) ??
    errors.find((e) => e.type !== ValueErrorType.Object) ??
    errors[0]!
  const field = fieldOf(first)
  throw new TerminalError('invalid_request', describe(first, field), { field })
}
