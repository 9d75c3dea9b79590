import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * What central POSTs to a merchant's webhook endpoint: one event per payment status change. The
 * same types as central's (packages/central), without its storage: a merchant's server imports
 * only this SDK.
 */
export type WebhookEventType =
  | 'payment.queued'
  | 'payment.processing'
  | 'payment.completed'
  | 'payment.failed'

export const WEBHOOK_EVENT_TYPES: readonly WebhookEventType[] = [
  'payment.queued',
  'payment.processing',
  'payment.completed',
  'payment.failed',
]

/** Central's settlement state of a payment. */
export type CentralPaymentStatus =
  | 'created'
  | 'released'
  | 'queued'
  | 'processing'
  | 'completed'
  | 'failed'
  | 'voided'
  /** no Commit exists in any live ledger of the venue (issue 17): released, never settled */
  | 'abandoned'

export interface WebhookPayment {
  /** the reservation id: the same id the terminal answered the POS with */
  paymentId: string
  venue: string
  /** the terminal that approved it (Ed25519 public key, hex) */
  origin: string
  /** integer minor units of `currency` */
  amountMinor: number
  /** ISO 4217 */
  currency: string
  status: CentralPaymentStatus
  /** `offline_sync_failure` for an offline approval that failed at settlement; `voided`, … */
  declineCode?: string
  /** why settlement failed: insufficient_funds, lost_or_stolen, expired, duplicate_nullifier, … */
  syncDeclineCode?: string
  queuedAt: number
  completedAt?: number
  mode?: 'quorum' | 'isolated' | 'online'
  flags: string[]
  authorizationCode?: string
}

interface WebhookEventBase<T extends WebhookEventType, S extends CentralPaymentStatus> {
  /** stable per (payment, status): a redelivery carries the same id — deduplicate on it */
  id: string
  type: T
  createdAt: number
  /** only on test events (`nullmesh webhooks trigger`): a made-up payment, not in the event log */
  test?: true
  data: { payment: WebhookPayment & { status: S } }
}

/** Discriminated on `type`: `switch (event.type)` narrows `event.data.payment.status`. */
export type WebhookEvent =
  | WebhookEventBase<'payment.queued', 'queued'>
  | WebhookEventBase<'payment.processing', 'processing'>
  | WebhookEventBase<'payment.completed', 'completed'>
  | WebhookEventBase<'payment.failed', 'failed' | 'voided'>

/** the header central signs every delivery with: `t=<ms>,v1=<hex HMAC-SHA256>[,v1=…]` */
export const WEBHOOK_SIGNATURE_HEADER = 'nullmesh-signature'
/** default tolerance between the signature's timestamp and the receiver's clock */
export const DEFAULT_WEBHOOK_TOLERANCE_MS = 5 * 60_000

export type WebhookVerificationCode =
  | 'missing_header'
  | 'malformed_header'
  | 'timestamp_out_of_tolerance'
  | 'signature_mismatch'
  | 'invalid_payload'

export class WebhookVerificationError extends Error {
  readonly code: WebhookVerificationCode
  constructor(code: WebhookVerificationCode, message: string) {
    super(message)
    this.name = 'WebhookVerificationError'
    this.code = code
  }
}

export interface ConstructEventOptions {
  /** how far the signature's timestamp may be from `now` (default 5 minutes): limits replays */
  toleranceMs?: number
  /** the receiver's clock, ms since the epoch (default Date.now()) */
  now?: number
}

function hmac(secret: string, t: string, rawBody: string | Uint8Array): Buffer {
  return createHmac('sha256', secret).update(`${t}.`).update(rawBody).digest()
}

/**
 * Verify a delivery and parse it, in one call (as Stripe's `webhooks.constructEvent`): `rawBody` is
 * the request body exactly as received (verify before any JSON parsing), `header` the
 * `nullmesh-signature` header, `secret` the endpoint's secret. During a secret rotation the header
 * carries one `v1=` per valid secret; one match is enough. Throws WebhookVerificationError.
 *
 * @example
 * ```ts
 * app.post('/hooks', express.raw({ type: 'application/json' }), (req, res) => {
 *   const event = constructEvent(req.body, req.get('nullmesh-signature'), process.env.WHSEC!)
 *   if (event.type === 'payment.failed') console.log(event.data.payment.syncDeclineCode)
 *   res.sendStatus(204)
 * })
 * ```
 */
export function constructEvent(
  rawBody: string | Uint8Array,
  header: string | null | undefined,
  secret: string,
  opts: ConstructEventOptions = {},
): WebhookEvent {
  if (typeof header !== 'string' || header === '')
    throw new WebhookVerificationError('missing_header', `no ${WEBHOOK_SIGNATURE_HEADER} header`)
  if (header.length > 4096)
    throw new WebhookVerificationError('malformed_header', 'signature header too long')
  let t: string | undefined
  const candidates: string[] = []
  for (const part of header.split(',')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const k = part.slice(0, eq).trim()
    const v = part.slice(eq + 1).trim()
    if (k === 't') t = v
    else if (k === 'v1' && /^[0-9a-f]{64}$/i.test(v)) candidates.push(v)
  }
  if (t === undefined || !/^\d{1,16}$/.test(t) || candidates.length === 0)
    throw new WebhookVerificationError('malformed_header', 'expected t=<ms>,v1=<64 hex digits>')
  const tolerance = opts.toleranceMs ?? DEFAULT_WEBHOOK_TOLERANCE_MS
  const now = opts.now ?? Date.now()
  if (Math.abs(now - Number(t)) > tolerance)
    throw new WebhookVerificationError(
      'timestamp_out_of_tolerance',
      `signed ${now - Number(t)} ms from this clock (tolerance ${tolerance} ms): a replay, or a clock to fix`,
    )
  const expected = hmac(secret, t, rawBody)
  if (!candidates.some((c) => timingSafeEqual(expected, Buffer.from(c, 'hex'))))
    throw new WebhookVerificationError('signature_mismatch', 'no signature matches this secret and body')
  let parsed: unknown
  try {
    parsed = JSON.parse(typeof rawBody === 'string' ? rawBody : Buffer.from(rawBody).toString('utf8'))
  } catch {
    throw new WebhookVerificationError('invalid_payload', 'the signed body is not JSON')
  }
  const e = parsed as Partial<WebhookEvent> | null
  if (
    e === null ||
    typeof e !== 'object' ||
    typeof e.id !== 'string' ||
    !WEBHOOK_EVENT_TYPES.includes(e.type as WebhookEventType) ||
    typeof e.data?.payment?.paymentId !== 'string'
  )
    throw new WebhookVerificationError('invalid_payload', 'the signed body is not a nullmesh webhook event')
  return parsed as WebhookEvent
}
