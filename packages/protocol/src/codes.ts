/**
 * Stable decline / refusal codes. The order is part of the wire format (proofs carry the index),
 * so only append.
 */
export const DECLINE_CODES = [
  'floor_limit_exceeded',
  'max_amount_exceeded',
  'card_cap_exceeded',
  'card_count_exceeded',
  'device_cap_exceeded',
  'venue_cap_exceeded',
  'queue_full',
  'blocked_bin',
  'denylisted_card',
  'method_not_allowed_offline',
  'currency_not_supported',
  'nullifier_seen',
  'quorum_unavailable',
  'conflict',
  'offline_not_allowed',
  'isolated_limit_exceeded',
  'isolated_card_used',
  'barrier_timeout',
  'policy_mismatch',
  'stale_reservation',
  'issuer_declined',
  'insufficient_funds',
  'lost_or_stolen',
  'duplicate_nullifier',
  'expired',
  'not_enrolled',
  'other',
  // appended (proofs carry the index): a peer still catching up; an online attempt voided
  'catching_up',
  'voided',
] as const

export type DeclineCode = (typeof DECLINE_CODES)[number]

export function isDeclineCode(value: unknown): value is DeclineCode {
  return typeof value === 'string' && (DECLINE_CODES as readonly string[]).includes(value)
}

export const PAYMENT_METHODS = ['chip', 'contactless', 'nfc', 'qr', 'swipe'] as const
export type PaymentMethod = (typeof PAYMENT_METHODS)[number]

export function isPaymentMethod(value: unknown): value is PaymentMethod {
  return typeof value === 'string' && (PAYMENT_METHODS as readonly string[]).includes(value)
}

/** ISO 4217 alphabetic code shape. Which currencies a venue accepts is policy. */
export const CURRENCY_PATTERN = /^[A-Z]{3}$/
/** Amounts are integer minor units; 2^48-1 fits the proof's 6-byte field. */
export const MAX_AMOUNT_MINOR = 2 ** 48 - 1
