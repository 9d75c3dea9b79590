import { checkCommitStateless, currencyLimits, type VenuePolicy } from '@nullmesh/policy'
import {
  type Commit,
  decodeEvent,
  type ExposureTransfer,
  eventIdHex,
  type Group,
  type Release,
  type Reservation,
  type SignedEvent,
  toHex,
  verifyEventSignature,
  verifyQuorumCertificate,
} from '@nullmesh/protocol'
import type { CatchupHave } from './core/catchup.js'
import { EventValidationError } from './errors.js'

/** What validation needs to know about the node's view; narrow and synchronous (hot path). */
export interface ValidationContext {
  venue: string
  now: number
  maxClockSkewMs: number
  /** acks a commit needs within its card's custodian group */
  quorum: number
  /** the custodian group of a card key (CustodianGroups.of): quorum certificates count acks from it only */
  group(cardKey: Uint8Array): Group
  /** the venue policy: offline Commits are held to its stateless limits */
  policy: VenuePolicy
  isEnrolled(publicKeyHex: string): boolean
  /** operator revocation (issue 17): is what this key signed at `at` void? */
  isRevoked?(publicKeyHex: string, at: number): boolean
  /** is an event with this id already recorded? */
  isKnown(idHex: string): boolean
  /** id of the event already recorded at (origin, seq), if any */
  idAt(originHex: string, seq: number): string | undefined
  /** origin of a known reservation, if known */
  reservationOrigin(reservationIdHex: string): string | undefined
  /** a terminal's escrow share of the venue cap as known here (transfers); absent: not checked */
  escrowShare?(publicKeyHex: string, currency: string): number
  /** our own public key (hex), when the context is a terminal's */
  self?: string
}

function reject(code: ConstructorParameters<typeof EventValidationError>[0], message: string): never {
  throw new EventValidationError(code, message)
}

/** Checks every event type shares. Order: cheap and stateless first, signature last. */
function validateCommon(ctx: ValidationContext, signed: SignedEvent): void {
  const e = signed.event
  // [IGNORE] already recorded (same content hash)
  if (ctx.isKnown(signed.idHex))
    throw new EventValidationError('ERR_ALREADY_KNOWN', `${signed.idHex.slice(0, 12)} already known`)
  // [REJECT] event of another venue
  if (e.venue !== ctx.venue) reject('ERR_WRONG_VENUE', `event of venue ${e.venue}`)
  const origin = toHex(e.origin)
  // [REJECT] origin holds no valid, unexpired enrollment certificate for this venue
  if (!ctx.isEnrolled(origin)) reject('ERR_NOT_ENROLLED', `origin ${origin.slice(0, 16)}… is not enrolled`)
  // [REJECT] the operator revoked the origin at or before the event's time (what it signed before
  // keeps counting: it arrives late through catch-up)
  if (ctx.isRevoked?.(origin, e.ts) === true)
    reject('ERR_REVOKED', `origin ${origin.slice(0, 16)}… was revoked before it signed this`)
  // [REJECT] timestamp too far in the future (configurable skew) — but not our own event coming
  // back (a lost disk's refill, a catch-up): we signed it, so its seq is used whatever our clock
  // says now; dropping it because our clock went back made a wiped terminal sign that seq again
  // (simulator seed 400: a refill from central refused as "36 s in the future")
  if (e.ts > ctx.now + ctx.maxClockSkewMs && origin !== ctx.self)
    reject('ERR_FUTURE_TIMESTAMP', `timestamp ${e.ts - ctx.now} ms in the future`)
  // [REJECT] origin signed two different events with one (origin, seq): equivocation
  const existing = ctx.idAt(origin, e.seq)
  if (existing !== undefined && existing !== signed.idHex)
    reject('ERR_EQUIVOCATION', `origin ${origin.slice(0, 16)}… reused seq ${e.seq}`)
  // [REJECT] signature invalid
  if (!verifyEventSignature(signed)) reject('ERR_BAD_SIGNATURE', 'origin signature invalid')
}

export function validateReservation(ctx: ValidationContext, signed: SignedEvent<Reservation>): void {
  validateCommon(ctx, signed)
}

export function validateCommit(ctx: ValidationContext, signed: SignedEvent<Commit>): void {
  validateCommon(ctx, signed)
  const commit = signed.event
  const inner = commit.reservation
  // [REJECT] embedded reservation invalid (venue, enrollment, signature) — validated as its own event
  if (!ctx.isKnown(inner.idHex)) {
    try {
      validateReservation(ctx, inner)
    } catch (err: unknown) {
      if (!(err instanceof EventValidationError) || err.action !== 'IGNORE') throw err
    }
  }
  // [REJECT] quorum certificate: own reservation, ≥ quorum distinct enrolled positive acks, all from
  // members of the card's custodian group (quorum mode); an ack its acker signed at or after its
  // revocation certifies nothing
  const qc = verifyQuorumCertificate(commit, {
    isEnrolled: (k, signedAt) => ctx.isEnrolled(k) && ctx.isRevoked?.(k, signedAt) !== true,
    group: (cardKey) => ctx.group(cardKey),
    quorum: ctx.quorum,
  })
  if (!qc.ok) reject('ERR_BAD_QUORUM_CERTIFICATE', qc.error.message)
  // [REJECT] outside the policy's stateless limits for its mode: an isolated commit above the
  // isolated floor limit (or while isolated mode is disabled), a quorum commit of this policy
  // version above the floor limit, a currency not supported or a method not allowed offline. What
  // needs state (the origin's unconfirmed isolated total, one per card) is checkIsolatedCommit's,
  // run by central; peers cannot run it yet (they do not learn other origins' confirmations).
  const r = inner.event
  const verdict = checkCommitStateless(ctx.policy, r, commit.mode)
  if (!verdict.approve) reject('ERR_POLICY_VIOLATION', `${commit.mode} commit: ${verdict.message}`)
}

export function validateRelease(ctx: ValidationContext, signed: SignedEvent<Release>): void {
  validateCommon(ctx, signed)
  const owner = ctx.reservationOrigin(toHex(signed.event.reservationId))
  // [IGNORE] release of a reservation not known here: who may release it cannot be checked yet, and
  // accepting it would let any enrolled terminal free another's headroom. The origin's own log
  // carries the reservation before its release, so catch-up delivers both, in that order.
  if (owner === undefined)
    throw new EventValidationError('ERR_UNKNOWN_RESERVATION', 'release of a reservation not known here')
  // [REJECT] a terminal may only release its own reservations
  if (owner !== toHex(signed.event.origin))
    reject('ERR_FOREIGN_RELEASE', 'release of another terminal’s reservation')
}

/**
 * An escrow transfer: the origin moves unused share of the venue cap to another terminal
 * (docs/protocol.md, "Escrow of the venue cap").
 */
export function validateTransfer(ctx: ValidationContext, signed: SignedEvent<ExposureTransfer>): void {
  validateCommon(ctx, signed)
  const t = signed.event
  const origin = toHex(t.origin)
  const to = toHex(t.to)
  // [REJECT] a transfer to itself (it would only churn the log)
  if (to === origin) reject('ERR_BAD_TRANSFER', 'transfer to the origin itself')
  // [REJECT] the recipient is not an enrolled terminal of the venue
  if (!ctx.isEnrolled(to)) reject('ERR_BAD_TRANSFER', `recipient ${to.slice(0, 16)}… is not enrolled`)
  const limits = currencyLimits(ctx.policy, t.currency)
  // [REJECT] a currency the policy does not accept offline (it has no venue cap to share)
  if (limits === undefined) reject('ERR_BAD_TRANSFER', `currency ${t.currency} has no venue cap`)
  // [REJECT] nothing, or more than the whole venue cap
  if (t.amountMinor < 1 || t.amountMinor > limits.venueCapMinor)
    reject('ERR_BAD_TRANSFER', `amount ${t.amountMinor} outside [1, ${limits.venueCapMinor}]`)
  // [IGNORE] more than the origin's share as known here: a credit it received may not have reached
  // us yet (catch-up delivers this transfer again later); an honest origin never overdraws
  const share = ctx.escrowShare?.(origin, t.currency)
  if (share !== undefined && t.amountMinor > share)
    throw new EventValidationError(
      'ERR_UNKNOWN_SHARE',
      `transfer of ${t.amountMinor} exceeds the origin's share known here (${share})`,
    )
}

/** Decode and validate an event from untrusted bytes (gossip, catch-up, barrier requests). */
export function validateEventBytes(ctx: ValidationContext, bytes: Uint8Array, maxBytes: number): SignedEvent {
  // [REJECT] oversized
  if (bytes.byteLength > maxBytes) reject('ERR_TOO_LARGE', `${bytes.byteLength} bytes`)
  // [IGNORE] already recorded: the id is the hash of these very bytes, so they were validated
  // when first recorded; checked before decoding (most gossip and catch-up frames are duplicates)
  const idHex = eventIdHex(bytes)
  if (ctx.isKnown(idHex))
    throw new EventValidationError('ERR_ALREADY_KNOWN', `${idHex.slice(0, 12)} already known`)
  const decoded = decodeEvent(bytes)
  // [REJECT] not a canonical, well-formed event
  if (!decoded.ok) reject('ERR_DECODE', decoded.error.message)
  const signed = decoded.value
  switch (signed.event.type) {
    case 'reservation':
      validateReservation(ctx, signed as SignedEvent<Reservation>)
      break
    case 'commit':
      validateCommit(ctx, signed as SignedEvent<Commit>)
      break
    case 'release':
      validateRelease(ctx, signed as SignedEvent<Release>)
      break
    case 'transfer':
      validateTransfer(ctx, signed as SignedEvent<ExposureTransfer>)
      break
  }
  return signed
}

/** the largest seq an event may carry (packages/protocol events.ts) */
const MAX_EVENT_SEQ = 2 ** 40

/**
 * A catch-up request frame: [marks, held?] with marks = [[originHex, mark], …] and held =
 * [[originHex, [from, to, from, to, …]], …] (docs/protocol.md, "Catch-up (anti-entropy)").
 * `held` is absent in a request from a peer running the code before it: everything above the
 * marks is answered then, as that code expects.
 */
export function validateCatchupRequest(frame: unknown, maxRanges: number): CatchupHave {
  const bad = (message: string): never => reject('ERR_BAD_CATCHUP_REQUEST', message)
  const isSeq = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
  const isOrigin = (x: unknown): x is string => typeof x === 'string' && /^(?:[0-9a-f]{2}){1,64}$/.test(x)
  // [REJECT] not [marks, held?]
  if (!Array.isArray(frame) || !Array.isArray(frame[0]) || frame.length > 2) bad('not [marks, held?]')
  const f = frame as unknown[]
  const marks: Record<string, number> = {}
  for (const entry of f[0] as unknown[]) {
    // [REJECT] a mark that is not [origin (lowercase hex), seq]
    if (!Array.isArray(entry) || entry.length !== 2 || !isOrigin(entry[0]) || !isSeq(entry[1]))
      bad('a mark is not [origin, seq]')
    marks[(entry as [string, number])[0]] = (entry as [string, number])[1]
  }
  const held: Record<string, number[]> = {}
  if (f.length < 2) return { marks, held }
  // [REJECT] held ranges that are not a list
  if (!Array.isArray(f[1])) bad('held ranges are not a list')
  let total = 0
  for (const entry of f[1] as unknown[]) {
    // [REJECT] not [origin, ranges], or an origin twice
    if (!Array.isArray(entry) || entry.length !== 2 || !isOrigin(entry[0]) || !Array.isArray(entry[1]))
      bad('held ranges of an origin are not [origin, [from, to, …]]')
    const [origin, ranges] = entry as [string, unknown[]]
    if (Object.hasOwn(held, origin)) bad('held ranges of one origin given twice')
    // [REJECT] an odd count, or more ranges than a request may carry (a bounded answer to compute)
    total += ranges.length / 2
    if (ranges.length % 2 !== 0 || total > maxRanges) bad(`held ranges: odd count or over ${maxRanges}`)
    let prev = 0
    for (let i = 0; i < ranges.length; i += 2) {
      const from = ranges[i]
      const to = ranges[i + 1]
      // [REJECT] not ascending, disjoint inclusive [from ≥ 1, to ≥ from] within the seq range
      if (!isSeq(from) || !isSeq(to) || from <= prev || to < from || to > MAX_EVENT_SEQ)
        bad('held ranges are not ascending, disjoint seq ranges')
      prev = to as number
    }
    held[origin] = ranges as number[]
  }
  return { marks, held }
}
