import {
  type Commit,
  type SignedEvent,
  type SignedRevocation,
  toHex,
  verifyRevocation,
} from '@nullmesh/protocol'
import type { PolicyViolation } from './commit-policy.js'
import { CentralError } from './errors.js'
import type { CentralStore } from './store.js'
import type { AbortOptions, RevocationRecord } from './types.js'
import type { VenueContext, VenueRegistry } from './venues.js'

/*
 * Terminal revocation at central (issue 17, item 2). The operator signs a revocation (terminal
 * key, effective time, reason) with the venue's operator key and publishes it here; central keeps
 * it (table revocations), serves every revocation of the venue to its terminals at sync (like the
 * deny list) and judges by it:
 *
 * - an ack signed at or after its acker's effective time does not count in a quorum certificate
 *   (a Commit that needs it fails ERR_QUORUM);
 * - a Commit (or the reservation it embeds) its origin signed at or after the effective time is
 *   failed as a policy violation `terminal_revoked`: never settled, counted for that terminal in
 *   the venue summary's policyViolations; a reservation so signed carries the flag
 *   `terminal_revoked`;
 * - what the terminal signed before the effective time keeps its meaning.
 *
 * Payments central had already merged when the revocation is published are flagged
 * `terminal_revoked` (their settlement is not undone: a charge may be in flight).
 */

export const REVOKED_FLAG = 'terminal_revoked'

export function revokedAtSigning(
  venues: VenueRegistry,
  venueId: string,
  origin: string,
  ts: number,
): boolean {
  const venue = venues.get(venueId)
  return venue !== undefined && venues.isRevoked(venue, origin, ts)
}

/** A Commit its origin signed (or whose reservation it signed) after its revocation took effect. */
export function revokedCommitViolation(
  venues: VenueRegistry,
  venue: VenueContext,
  signed: SignedEvent<Commit>,
): PolicyViolation | undefined {
  const c = signed.event
  const origin = toHex(c.origin)
  if (!venues.isRevoked(venue, origin, Math.min(c.ts, c.reservation.event.ts))) return undefined
  return {
    code: REVOKED_FLAG,
    message: `terminal ${origin.slice(0, 16)}… was revoked by the operator before it signed this`,
  }
}

function toRecord(doc: SignedRevocation, now: number): RevocationRecord {
  const p = doc.payload
  return {
    venueId: p.venueId,
    terminal: p.terminal,
    effectiveAt: p.effectiveAt,
    reason: p.reason,
    issuedAt: p.issuedAt,
    document: JSON.stringify(doc),
    receivedAt: now,
  }
}

export interface RevocationDeps {
  store: CentralStore
  venues: VenueRegistry
  now: () => number
  write: (ops: Parameters<CentralStore['apply']>[0]) => Promise<void>
  /** add a flag to these payments (engine.flag) */
  flag: (ids: string[], flag: string, opts: AbortOptions) => Promise<number>
}

/** What the store holds, verified again (a row is only ever trusted with its operator signature). */
export async function loadRevocations(deps: RevocationDeps, opts: AbortOptions = {}): Promise<void> {
  for (const row of await deps.store.listRevocations(undefined, opts)) {
    const venue = deps.venues.get(row.venueId)
    if (venue === undefined) continue
    let doc: unknown
    try {
      doc = JSON.parse(row.document)
    } catch {
      continue
    }
    const v = verifyRevocation(doc, { operatorPublicKey: venue.bundle.operatorPublicKey, venueId: venue.id })
    if (v.ok) deps.venues.revoke(venue.id, [v.value])
  }
}

export interface PublishResult {
  terminal: string
  effectiveAt: number
  /** false when an earlier (or the same) revocation of this terminal was in force already */
  changed: boolean
  /** payments already merged that its terminal signed at or after the effective time, now flagged */
  flagged: number
}

/**
 * Publish an operator-signed revocation of one of the venue's terminals. Bad input → CentralError
 * 400/404/422 with a code, nothing recorded.
 */
export async function publishRevocation(
  deps: RevocationDeps,
  venueId: string,
  doc: unknown,
  opts: AbortOptions = {},
): Promise<PublishResult> {
  const venue = deps.venues.get(venueId)
  if (venue === undefined)
    throw new CentralError('ERR_UNKNOWN_VENUE', `venue ${venueId} is not served here`, 404)
  const v = verifyRevocation(doc, { operatorPublicKey: venue.bundle.operatorPublicKey, venueId })
  if (!v.ok) {
    const code =
      v.error.code === 'ERR_BAD_SIGNATURE' || v.error.code === 'ERR_WRONG_ISSUER'
        ? 'ERR_BAD_SIGNATURE'
        : 'ERR_INVALID_REQUEST'
    throw new CentralError(
      code,
      `revocation refused: ${v.error.message}`,
      code === 'ERR_BAD_SIGNATURE' ? 422 : 400,
    )
  }
  const p = v.value.payload
  if (!venue.bundle.roster.some((r) => r.publicKeyHex === p.terminal))
    throw new CentralError(
      'ERR_INVALID_REQUEST',
      `terminal ${p.terminal.slice(0, 16)}… is not in the roster of ${venueId}`,
      400,
    )
  // the store keeps the earliest effective time; so does the registry
  const before = (await deps.store.listRevocations(venueId, opts)).find((r) => r.terminal === p.terminal)
  await deps.write([{ op: 'putRevocation', revocation: toRecord(v.value, deps.now()) }])
  deps.venues.revoke(venueId, [v.value])
  const changed = before === undefined || p.effectiveAt < before.effectiveAt
  const effectiveAt = changed ? p.effectiveAt : before.effectiveAt
  // flag what it signed at or after the effective time and central merged already
  const ids: string[] = []
  for await (const pay of deps.store.scanPayments({ venue: venueId }, opts)) {
    if (pay.origin === p.terminal && pay.queuedAt >= effectiveAt && !pay.flags.includes(REVOKED_FLAG))
      ids.push(pay.paymentId)
  }
  const flagged = await deps.flag(ids, REVOKED_FLAG, opts)
  return { terminal: p.terminal, effectiveAt, changed, flagged }
}

/** Every revocation of the venue, as signed documents (terminals verify each). */
export async function listRevocationDocuments(
  deps: Pick<RevocationDeps, 'store' | 'venues'>,
  venueId: string,
  opts: AbortOptions = {},
): Promise<{ venueId: string; revocations: unknown[] }> {
  if (deps.venues.get(venueId) === undefined)
    throw new CentralError('ERR_UNKNOWN_VENUE', `venue ${venueId} is not served here`, 404)
  const rows = await deps.store.listRevocations(venueId, opts)
  return { venueId, revocations: rows.map((r) => JSON.parse(r.document) as unknown) }
}
