import { concatBytes, toHex, utf8 } from './bytes.js'
import { CURRENCY_PATTERN, MAX_AMOUNT_MINOR, PAYMENT_METHODS, type PaymentMethod } from './codes.js'
import {
  CARD_KEY_BYTES,
  DOMAIN,
  ED25519_PUBLIC_KEY_BYTES,
  ED25519_SIGNATURE_BYTES,
  EVENT_ID_BYTES,
  MAX_ACK_BYTES,
  MAX_ACKS,
  MAX_EVENT_BYTES,
  MAX_REASON_LENGTH,
  MAX_VENUE_ID_LENGTH,
  NULLIFIER_BYTES,
} from './constants.js'
import {
  asArray,
  asBool,
  asBytes,
  asString,
  asUint,
  decodeVersioned,
  encodeCbor,
  encodeVersioned,
  FieldError,
} from './encoding.js'
import { fail, ok, type Result } from './errors.js'
import { type KeyPair, sha256, signBytes, verifyBytes } from './keys.js'

export const VENUE_ID_PATTERN = /^[a-zA-Z0-9._-]{1,64}$/

/** Fields every log event carries. (origin, seq) is unique and monotonic per origin, from 1. */
export interface EventHeader {
  venue: string
  /** origin terminal's Ed25519 public key (its libp2p identity) */
  origin: Uint8Array
  seq: number
  /** origin wall-clock time, ms since the epoch */
  ts: number
}

/** A terminal's claim on a card credential use and on cap headroom, pending the barrier. */
export interface Reservation extends EventHeader {
  type: 'reservation'
  nullifier: Uint8Array
  cardKey: Uint8Array
  amountMinor: number
  currency: string
  method: PaymentMethod
  policyVersion: number
}

/** quorum: barrier met; isolated: no quorum reachable, approved within isolated limits; online: authorised by central. */
export type CommitMode = 'quorum' | 'isolated' | 'online'

/** The approved reservation plus its quorum certificate (or marked as an isolated-mode approval). */
export interface Commit extends EventHeader {
  type: 'commit'
  reservation: SignedEvent<Reservation>
  mode: CommitMode
  acks: SignedAck[]
}

/** A reservation abandoned (refused, timed out, or found unanswered after a crash). */
export interface Release extends EventHeader {
  type: 'release'
  reservationId: Uint8Array
  reason: string
}

/**
 * Escrow of the venue-wide offline exposure cap: the origin moves `amountMinor` of its unused share
 * (in `currency`) to the terminal `to`. The origin's share drops when it signs this (before it is
 * durable, so no concurrent approval can use it), the recipient's rises only when it holds the
 * signed event: a lost transfer loses capacity, never creates it (docs/protocol.md, "Escrow").
 */
export interface ExposureTransfer extends EventHeader {
  type: 'transfer'
  /** the recipient terminal's public key */
  to: Uint8Array
  amountMinor: number
  currency: string
}

export type NullmeshEvent = Reservation | Commit | Release | ExposureTransfer
export type EventType = NullmeshEvent['type']

export interface SignedEvent<T extends NullmeshEvent = NullmeshEvent> {
  event: T
  signature: Uint8Array
  /** the exact wire bytes */
  bytes: Uint8Array
  /** content address: sha256 of the wire bytes (signature included, so a forged copy has another id) */
  id: Uint8Array
  idHex: string
}

/**
 * A terminal's signed statement about a reservation: "durably recorded, no conflict" (ok) or a
 * refusal with a reason code. Acks are not log events (they have no seq and are not gossiped):
 * they travel to the origin over the barrier protocol and live on inside the Commit.
 */
export interface Ack {
  venue: string
  acker: Uint8Array
  reservationId: Uint8Array
  ok: boolean
  reason: string
  ts: number
}

export interface SignedAck {
  ack: Ack
  signature: Uint8Array
  bytes: Uint8Array
}

const TYPE_CODES = { reservation: 0, commit: 1, release: 2, transfer: 3 } as const
const MODE_CODES = { quorum: 0, isolated: 1, online: 2 } as const
const MODES = ['quorum', 'isolated', 'online'] as const

type EventFields<T extends NullmeshEvent> = T extends Commit
  ? Omit<Commit, 'type' | 'venue' | 'origin' | 'seq' | 'ts'>
  : Omit<T, 'type' | 'venue' | 'origin' | 'seq' | 'ts'>

function headerArray(e: EventHeader): unknown[] {
  return [e.venue, e.origin, e.seq, e.ts]
}

function bodyArray(e: NullmeshEvent): unknown[] {
  switch (e.type) {
    case 'reservation':
      return [
        TYPE_CODES.reservation,
        ...headerArray(e),
        e.nullifier,
        e.cardKey,
        e.amountMinor,
        e.currency,
        PAYMENT_METHODS.indexOf(e.method),
        e.policyVersion,
      ]
    case 'commit':
      return [
        TYPE_CODES.commit,
        ...headerArray(e),
        e.reservation.bytes,
        MODE_CODES[e.mode],
        e.acks.map((a) => a.bytes),
      ]
    case 'release':
      return [TYPE_CODES.release, ...headerArray(e), e.reservationId, e.reason]
    case 'transfer':
      return [TYPE_CODES.transfer, ...headerArray(e), e.to, e.amountMinor, e.currency]
  }
}

// the signing domains, encoded once (they are on every signature made and checked)
const EVENT_PREFIX = concatBytes(utf8(DOMAIN.event), new Uint8Array([0]))
const ACK_PREFIX = concatBytes(utf8(DOMAIN.ack), new Uint8Array([0]))

/** domain prefix ‖ body, in one allocation */
function withPrefix(prefix: Uint8Array, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(prefix.byteLength + body.byteLength)
  out.set(prefix, 0)
  out.set(body, prefix.byteLength)
  return out
}

function eventSigningBytes(body: unknown[]): Uint8Array {
  return withPrefix(EVENT_PREFIX, encodeCbor(body))
}

/** Sign and encode an event. Throws only on programmer error (invalid fields). */
export function signEvent<T extends NullmeshEvent>(key: KeyPair, event: T): SignedEvent<T> {
  const body = bodyArray(event)
  const signature = signBytes(key.privateKey, eventSigningBytes(body))
  const bytes = encodeVersioned([body, signature])
  const decoded = decodeEvent(bytes)
  if (!decoded.ok) throw new TypeError(`cannot encode event: ${decoded.error.message}`)
  const id = sha256(bytes)
  return { event, signature, bytes, id, idHex: toHex(id) }
}

export function eventId(bytes: Uint8Array): Uint8Array {
  return sha256(bytes)
}

function readHeader(body: unknown[]): EventHeader {
  return {
    venue: asString(body[1], 'venue', MAX_VENUE_ID_LENGTH, VENUE_ID_PATTERN),
    origin: asBytes(body[2], 'origin', ED25519_PUBLIC_KEY_BYTES),
    seq: asUint(body[3], 'seq', 2 ** 40),
    ts: asUint(body[4], 'ts', 2 ** 48 - 1),
  }
}

function readEvent(body: unknown): NullmeshEvent {
  if (!Array.isArray(body) || body.length < 5) throw new FieldError('event: expected an array')
  const type = body[0]
  switch (type) {
    case TYPE_CODES.reservation: {
      asArray(body, 11, 'reservation')
      const methodIndex = asUint(body[9], 'method', PAYMENT_METHODS.length - 1)
      return {
        type: 'reservation',
        ...readHeader(body),
        nullifier: asBytes(body[5], 'nullifier', NULLIFIER_BYTES),
        cardKey: asBytes(body[6], 'cardKey', CARD_KEY_BYTES),
        amountMinor: asUint(body[7], 'amountMinor', MAX_AMOUNT_MINOR),
        currency: asString(body[8], 'currency', 3, CURRENCY_PATTERN),
        method: PAYMENT_METHODS[methodIndex]!,
        policyVersion: asUint(body[10], 'policyVersion', 0xffff),
      }
    }
    case TYPE_CODES.commit: {
      asArray(body, 8, 'commit')
      const header = readHeader(body)
      const inner = decodeEvent(asBytes(body[5], 'reservation', undefined, MAX_EVENT_BYTES))
      if (!inner.ok) throw new FieldError(`reservation: ${inner.error.message}`)
      if (inner.value.event.type !== 'reservation') throw new FieldError('reservation: not a reservation')
      const modeCode = asUint(body[6], 'mode', 2)
      const rawAcks = body[7]
      if (!Array.isArray(rawAcks) || rawAcks.length > MAX_ACKS)
        throw new FieldError(`acks: expected at most ${MAX_ACKS}`)
      const acks = rawAcks.map((a, i) => {
        const r = decodeAck(asBytes(a, `acks[${i}]`, undefined, MAX_ACK_BYTES))
        if (!r.ok) throw new FieldError(`acks[${i}]: ${r.error.message}`)
        return r.value
      })
      return {
        type: 'commit',
        ...header,
        reservation: inner.value as SignedEvent<Reservation>,
        mode: MODES[modeCode]!,
        acks,
      }
    }
    case TYPE_CODES.release:
      asArray(body, 7, 'release')
      return {
        type: 'release',
        ...readHeader(body),
        reservationId: asBytes(body[5], 'reservationId', EVENT_ID_BYTES),
        reason: asString(body[6], 'reason', MAX_REASON_LENGTH),
      }
    case TYPE_CODES.transfer:
      asArray(body, 8, 'transfer')
      return {
        type: 'transfer',
        ...readHeader(body),
        to: asBytes(body[5], 'to', ED25519_PUBLIC_KEY_BYTES),
        amountMinor: asUint(body[6], 'amountMinor', MAX_AMOUNT_MINOR),
        currency: asString(body[7], 'currency', 3, CURRENCY_PATTERN),
      }
    default:
      throw new FieldError(`unknown event type ${String(type)}`)
  }
}

/**
 * Decode an event from hostile bytes: size limit, version, canonical CBOR, field types and
 * ranges. Does not check the signature (see verifyEventSignature) so that validation can tag
 * each rule separately.
 */
export function decodeEvent(bytes: Uint8Array): Result<SignedEvent> {
  if (decodeMemo === undefined) return decodeUncached(bytes)
  let r = decodeMemo.get(bytes)
  if (r === undefined) {
    r = decodeUncached(bytes)
    decodeMemo.set(bytes, r)
  }
  return r
}

/**
 * The hex id of an event's bytes (the hash of exactly these bytes). With the simulator's decode
 * memo, bytes another simulated terminal decoded already are not hashed again.
 */
export function eventIdHex(bytes: Uint8Array): string {
  const r = decodeMemo?.get(bytes)
  if (r?.ok === true) return r.value.idHex
  return toHex(sha256(bytes))
}

/**
 * Memo of decoded events by the identity of their byte array, off by default. Only the
 * deterministic simulator turns it on: it runs every terminal of a venue in one process and hands
 * each of them the same array a peer sent, which every one would otherwise decode again (decoding
 * is a pure function of the bytes, and nothing mutates a decoded event). Production never does.
 */
let decodeMemo: WeakMap<Uint8Array, Result<SignedEvent>> | undefined
let verifiedMemo: WeakMap<SignedEvent, boolean> | undefined

export function setDecodeMemo(on: boolean): void {
  decodeMemo = on ? new WeakMap() : undefined
  verifiedMemo = on ? new WeakMap() : undefined
}

function decodeUncached(bytes: Uint8Array): Result<SignedEvent> {
  const decoded = decodeVersioned(bytes, MAX_EVENT_BYTES)
  if (!decoded.ok) return decoded
  try {
    const outer = asArray(decoded.value, 2, 'signed event')
    const event = readEvent(outer[0])
    const signature = asBytes(outer[1], 'signature', ED25519_SIGNATURE_BYTES)
    const id = sha256(bytes)
    return ok({ event, signature, bytes, id, idHex: toHex(id) })
  } catch (err: unknown) {
    if (err instanceof FieldError) return fail('ERR_BAD_FIELD', err.message)
    return fail('ERR_MALFORMED', err instanceof Error ? err.message : String(err))
  }
}

export function verifyEventSignature(signed: SignedEvent): boolean {
  // with the simulator's decode memo, one decoded event is shared by every simulated terminal
  const memo = verifiedMemo
  const known = memo?.get(signed)
  if (known !== undefined) return known
  const ok = verifyBytes(signed.event.origin, eventSigningBytes(bodyArray(signed.event)), signed.signature)
  memo?.set(signed, ok)
  return ok
}

function ackArray(a: Ack): unknown[] {
  return [a.venue, a.acker, a.reservationId, a.ok, a.reason, a.ts]
}

function ackSigningBytes(a: Ack): Uint8Array {
  return withPrefix(ACK_PREFIX, encodeCbor(ackArray(a)))
}

export function signAck(key: KeyPair, ack: Ack): SignedAck {
  const signature = signBytes(key.privateKey, ackSigningBytes(ack))
  return { ack, signature, bytes: encodeVersioned([ackArray(ack), signature]) }
}

export function decodeAck(bytes: Uint8Array): Result<SignedAck> {
  const decoded = decodeVersioned(bytes, MAX_ACK_BYTES)
  if (!decoded.ok) return decoded
  try {
    const outer = asArray(decoded.value, 2, 'signed ack')
    const a = asArray(outer[0], 6, 'ack')
    const ack: Ack = {
      venue: asString(a[0], 'venue', MAX_VENUE_ID_LENGTH, VENUE_ID_PATTERN),
      acker: asBytes(a[1], 'acker', ED25519_PUBLIC_KEY_BYTES),
      reservationId: asBytes(a[2], 'reservationId', EVENT_ID_BYTES),
      ok: asBool(a[3], 'ok'),
      reason: asString(a[4], 'reason', MAX_REASON_LENGTH),
      ts: asUint(a[5], 'ts', 2 ** 48 - 1),
    }
    return ok({ ack, signature: asBytes(outer[1], 'signature', ED25519_SIGNATURE_BYTES), bytes })
  } catch (err: unknown) {
    if (err instanceof FieldError) return fail('ERR_BAD_FIELD', err.message)
    return fail('ERR_MALFORMED', err instanceof Error ? err.message : String(err))
  }
}

export function verifyAckSignature(signed: SignedAck): boolean {
  return verifyBytes(signed.ack.acker, ackSigningBytes(signed.ack), signed.signature)
}

/** Convenience for callers that only need the common header of any event. */
export function describeEvent(e: NullmeshEvent): string {
  return `${e.type} ${toHex(e.origin).slice(0, 8)}#${e.seq}`
}

export type { EventFields }
