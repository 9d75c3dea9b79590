import { KEY_END, KEY_SEPARATOR, MAX_SEQ, SEQ_DIGITS, TS_DIGITS } from './constants.js'
import { LedgerError } from './errors.js'

const HEX = /^[0-9a-f]+$/

/** Lower-cases and checks a hex argument, so that it cannot widen a prefix range. */
export function hexArg(value: string, name: string): string {
  const hex = typeof value === 'string' ? value.toLowerCase() : ''
  if (!HEX.test(hex)) throw new LedgerError('ERR_INVALID_ARGUMENT', `${name} must be a hex string`)
  return hex
}

export function seqArg(seq: number, name = 'seq'): number {
  if (!Number.isSafeInteger(seq) || seq < 1 || seq > MAX_SEQ) {
    throw new LedgerError('ERR_INVALID_ARGUMENT', `${name} must be an integer from 1 to ${MAX_SEQ}`)
  }
  return seq
}

/** A key part that must not contain the separator (statuses, currencies). */
export function plainArg(value: string, name: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.includes(KEY_SEPARATOR)) {
    throw new LedgerError(
      'ERR_INVALID_ARGUMENT',
      `${name} must be a non-empty string without '${KEY_SEPARATOR}'`,
    )
  }
  return value
}

function pad(n: number, digits: number): string {
  return String(n).padStart(digits, '0')
}

/** Inclusive-exclusive bounds of every key starting with `prefix!`. */
export function prefixRange(prefix: string): { gte: string; lt: string } {
  return { gte: prefix + KEY_SEPARATOR, lt: prefix + KEY_END }
}

/** `events` and `pending` key: originHex!seq, seq zero-padded so keys sort by origin then seq. */
export function eventKey(originHex: string, seq: number): string {
  return originHex + KEY_SEPARATOR + pad(seq, SEQ_DIGITS)
}

export function parseEventKey(key: string): { origin: string; seq: number } {
  const i = key.indexOf(KEY_SEPARATOR)
  return { origin: key.slice(0, i), seq: Number(key.slice(i + 1)) }
}

/** `nullifiers` key: nullifierHex!reservationIdHex. */
export function nullifierKey(nullifierHex: string, reservationIdHex: string): string {
  return nullifierHex + KEY_SEPARATOR + reservationIdHex
}

/** `cards` key prefix of one card and currency; the full key adds !ts!reservationId. */
export function cardPrefix(cardKeyHex: string, currency: string): string {
  return cardKeyHex + KEY_SEPARATOR + currency
}

export function cardKey(cardKeyHex: string, currency: string, ts: number, reservationIdHex: string): string {
  return (
    cardPrefix(cardKeyHex, currency) + KEY_SEPARATOR + pad(ts, TS_DIGITS) + KEY_SEPARATOR + reservationIdHex
  )
}

/** Lower bound of a card's entries with ts >= sinceTs. */
export function cardSince(cardKeyHex: string, currency: string, sinceTs: number): string {
  return cardPrefix(cardKeyHex, currency) + KEY_SEPARATOR + pad(Math.max(0, Math.ceil(sinceTs)), TS_DIGITS)
}

/** `payStatus` key: status!paymentId. */
export function statusKey(status: string, id: string): string {
  return status + KEY_SEPARATOR + id
}

/**
 * A fresh copy of a string read from a key or a record: V8 keeps a substring as a slice that holds
 * its whole parent alive (the key with its sublevel prefix, a composite index key). Ids kept for
 * the life of the process (every event id, at start-up) are copied flat: about a third less memory.
 */
export function flat(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1')
}
