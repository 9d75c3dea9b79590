import { fromHex, toHex } from './bytes.js'
import { type SignedDocument, signDocument, verifyDocument } from './documents.js'
import { fail, ok, type Result } from './errors.js'
import type { KeyPair } from './keys.js'

/*
 * Reservations of a dead terminal (issue 17, item 5). Two documents:
 *
 * - a sync checkpoint, signed by a terminal: "every event my ledger held at `at` has reached
 *   central" (sent after a sync round that left nothing behind and found no gap);
 * - an abandonment list, signed with the venue's operator key by central: reservations no ledger
 *   of the venue holds a Commit of, now past any Commit, which the venue's terminals release.
 *
 * The argument is in docs/protocol.md, "Reservations of a dead terminal".
 */

export const CHECKPOINT_DOMAIN = 'nullmesh/sync-checkpoint/v1'
export const ABANDONMENT_DOMAIN = 'nullmesh/abandoned/v1'

export interface CheckpointPayload {
  venueId: string
  /** the signing terminal's public key (hex) */
  terminal: string
  /** ms since the epoch, the terminal's clock when the round that flushed everything began */
  at: number
}

export interface AbandonmentPayload {
  venueId: string
  /** reservation ids (hex), sorted */
  reservations: string[]
  /** when central signed the list (ms) */
  issuedAt: number
}

export type SignedCheckpoint = SignedDocument<CheckpointPayload>
export type SignedAbandonment = SignedDocument<AbandonmentPayload>

const HEX32 = /^[0-9a-f]{64}$/

export function signCheckpoint(terminalKey: KeyPair, venueId: string, at: number): SignedCheckpoint {
  return signDocument<CheckpointPayload>(CHECKPOINT_DOMAIN, terminalKey, {
    venueId,
    terminal: toHex(terminalKey.publicKey),
    at,
  })
}

/** Never throws: the payload's schema, then the signature of the terminal it names. */
export function verifyCheckpoint(doc: unknown): Result<SignedCheckpoint> {
  const d = doc as Partial<SignedCheckpoint> | null
  const p = (d !== null && typeof d === 'object' ? d.payload : undefined) as Partial<CheckpointPayload>
  if (
    p === null ||
    typeof p !== 'object' ||
    Object.keys(p).sort().join(',') !== 'at,terminal,venueId' ||
    typeof p.venueId !== 'string' ||
    typeof p.terminal !== 'string' ||
    !HEX32.test(p.terminal) ||
    !Number.isSafeInteger(p.at) ||
    (p.at as number) < 0
  )
    return fail('ERR_MALFORMED', 'a checkpoint payload is { venueId, terminal (64 hex), at (ms) }')
  return verifyDocument<CheckpointPayload>(CHECKPOINT_DOMAIN, doc, fromHex(p.terminal))
}

export function signAbandonment(operatorKey: KeyPair, payload: AbandonmentPayload): SignedAbandonment {
  return signDocument(ABANDONMENT_DOMAIN, operatorKey, payload)
}

/** Never throws: operator signature, schema, venue. */
export function verifyAbandonment(
  doc: unknown,
  opts: { operatorPublicKey: Uint8Array; venueId: string },
): Result<SignedAbandonment> {
  const v = verifyDocument<AbandonmentPayload>(ABANDONMENT_DOMAIN, doc, opts.operatorPublicKey)
  if (!v.ok) return v
  const p = v.value.payload as Partial<AbandonmentPayload> | null
  if (
    p === null ||
    typeof p !== 'object' ||
    typeof p.venueId !== 'string' ||
    !Array.isArray(p.reservations) ||
    !p.reservations.every((r) => typeof r === 'string' && HEX32.test(r)) ||
    !Number.isSafeInteger(p.issuedAt)
  )
    return fail('ERR_MALFORMED', 'an abandonment payload is { venueId, reservations (hex ids), issuedAt }')
  if (p.venueId !== opts.venueId) return fail('ERR_WRONG_VENUE', `abandonment list of venue ${p.venueId}`)
  return ok(v.value)
}
