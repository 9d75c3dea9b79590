import { computeCardKey, toHex } from '@nullmesh/protocol'
import { TerminalError } from './errors.js'
import type { PaymentRequestBody } from './schemas.js'

/**
 * An idempotency key names one payment: a request reusing it with other money parameters is not a
 * retry but a different sale, and answering it with the first decision would let a POS record a
 * sale that was never authorised (issue 17, item 3). What is compared: the amount, the currency,
 * the method and the card (by its keyed hash: the card token itself is never stored). Labels
 * (context, offlineBehavior) and the credential counter may differ on a retry.
 */
export interface RecordedRequest {
  amountMinor: number
  currency: string
  method: string
  /** keyed hash of the card (hex) */
  cardKey: string
}

/** The first field in which `request` differs from the recorded one (request field names), if any. */
export function requestMismatch(
  recorded: RecordedRequest,
  request: PaymentRequestBody,
  hashingKey: Uint8Array,
): 'amountMinor' | 'currency' | 'method' | 'cardToken' | undefined {
  if (recorded.amountMinor !== request.amountMinor) return 'amountMinor'
  if (recorded.currency !== request.currency) return 'currency'
  if (recorded.method !== request.method) return 'method'
  if (recorded.cardKey !== toHex(computeCardKey(hashingKey, request.cardToken))) return 'cardToken'
  return undefined
}

/** Throws `idempotency_key_reused` (409) when `request` reuses the key of `recorded` with other parameters. */
export function assertSameRequest(
  recorded: RecordedRequest,
  request: PaymentRequestBody,
  hashingKey: Uint8Array,
): void {
  const field = requestMismatch(recorded, request, hashingKey)
  if (field === undefined) return
  throw new TerminalError(
    'idempotency_key_reused',
    `idempotency key ${request.idempotencyKey} was first used with another ${field}; use a new key for a new payment`,
    { field },
  )
}

/** The request each decision in flight was started for (keyed by the decision's promise). */
const inflightRequests = new WeakMap<Promise<unknown>, RecordedRequest>()

/** Remember what a decision in flight decides, for joinInflight. */
export function trackInflight(
  decision: Promise<unknown>,
  request: PaymentRequestBody,
  hashingKey: Uint8Array,
): void {
  inflightRequests.set(decision, {
    amountMinor: request.amountMinor,
    currency: request.currency,
    method: request.method,
    cardKey: toHex(computeCardKey(hashingKey, request.cardToken)),
  })
}

/**
 * A request whose key is already being decided joins that decision: the same parameters get its
 * answer; other parameters get 409 once it is known — unless the running decision was itself
 * refused as a reuse (it differed from an earlier, recorded one), then `retry` decides this request
 * on its own against the record.
 */
export async function joinInflight<T>(
  running: Promise<T>,
  request: PaymentRequestBody,
  hashingKey: Uint8Array,
  retry: () => Promise<T>,
): Promise<T> {
  const recorded = inflightRequests.get(running)
  let answer: T
  try {
    answer = await running
  } catch (err: unknown) {
    if (err instanceof TerminalError && err.code === 'idempotency_key_reused') return retry()
    throw err
  }
  if (recorded !== undefined) assertSameRequest(recorded, request, hashingKey)
  return answer
}
