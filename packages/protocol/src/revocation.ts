import { type SignedDocument, signDocument, verifyDocument } from './documents.js'
import { fail, ok, type Result } from './errors.js'
import type { KeyPair } from './keys.js'

/*
 * Terminal revocation (issue 17, item 2): the operator declares that a terminal key stops counting
 * from `effectiveAt` on. Signed with the operator key (the key that enrolled it), so a terminal,
 * a peer or central can check it without trusting whoever relayed it. Everything the key signed
 * before `effectiveAt` keeps its meaning; what it signed at or after does not: its events are
 * rejected by peers and flagged by central, its acks certify nothing.
 */

export const REVOCATION_DOMAIN = 'nullmesh/revocation/v1'
/** a reason is free text for people, bounded so a document stays small */
export const MAX_REVOCATION_REASON = 200

export interface RevocationPayload {
  venueId: string
  /** the revoked terminal's public key, 64 lowercase hex digits */
  terminal: string
  /** ms since the epoch: events and acks signed at or after this time do not count */
  effectiveAt: number
  reason: string
  /** when the operator signed it (ms) */
  issuedAt: number
}

export type SignedRevocation = SignedDocument<RevocationPayload>

const HEX32 = /^[0-9a-f]{64}$/

/** Schema of a revocation payload: undefined when valid, else what is wrong. */
export function revocationIssue(p: unknown): string | undefined {
  const r = p as Partial<RevocationPayload> | null
  if (r === null || typeof r !== 'object') return 'payload is not an object'
  const keys = Object.keys(r).sort().join(',')
  if (keys !== 'effectiveAt,issuedAt,reason,terminal,venueId')
    return 'payload has exactly venueId, terminal, effectiveAt, reason, issuedAt'
  if (typeof r.venueId !== 'string' || r.venueId.length === 0) return 'venueId: a venue id'
  if (typeof r.terminal !== 'string' || !HEX32.test(r.terminal))
    return 'terminal: a public key, 64 lowercase hex digits'
  if (!Number.isSafeInteger(r.effectiveAt) || (r.effectiveAt as number) < 0)
    return 'effectiveAt: ms since the epoch'
  if (!Number.isSafeInteger(r.issuedAt) || (r.issuedAt as number) < 0) return 'issuedAt: ms since the epoch'
  if (typeof r.reason !== 'string' || r.reason.length > MAX_REVOCATION_REASON)
    return `reason: text of at most ${MAX_REVOCATION_REASON} characters`
  return undefined
}

export function signRevocation(operatorKey: KeyPair, payload: RevocationPayload): SignedRevocation {
  const issue = revocationIssue(payload)
  if (issue !== undefined) throw new TypeError(`invalid revocation: ${issue}`)
  return signDocument(REVOCATION_DOMAIN, operatorKey, payload)
}

/** Never throws: signature by the operator key, payload schema, venue. */
export function verifyRevocation(
  doc: unknown,
  opts: { operatorPublicKey: Uint8Array; venueId: string },
): Result<SignedRevocation> {
  const v = verifyDocument<RevocationPayload>(REVOCATION_DOMAIN, doc, opts.operatorPublicKey)
  if (!v.ok) return v
  const issue = revocationIssue(v.value.payload)
  if (issue !== undefined) return fail('ERR_MALFORMED', issue)
  if (v.value.payload.venueId !== opts.venueId)
    return fail('ERR_WRONG_VENUE', `revocation of venue ${v.value.payload.venueId}`)
  return ok(v.value)
}

/**
 * The revocations in force, by terminal key: the earliest effective time wins (revocations only
 * ever widen; a later document cannot un-revoke a key).
 */
export class RevocationSet {
  readonly #effective = new Map<string, number>()
  readonly #docs = new Map<string, SignedRevocation>()

  /** Add one verified revocation; true when it changed something. */
  add(doc: SignedRevocation): boolean {
    const { terminal, effectiveAt } = doc.payload
    const current = this.#effective.get(terminal)
    if (current !== undefined && current <= effectiveAt) return false
    this.#effective.set(terminal, effectiveAt)
    this.#docs.set(terminal, doc)
    return true
  }

  /** revoked for what it signed at `at` */
  isRevoked(publicKeyHex: string, at: number): boolean {
    const e = this.#effective.get(publicKeyHex)
    return e !== undefined && at >= e
  }

  effectiveAt(publicKeyHex: string): number | undefined {
    return this.#effective.get(publicKeyHex)
  }

  get size(): number {
    return this.#effective.size
  }

  /** the documents in force, by terminal key order */
  documents(): SignedRevocation[] {
    return [...this.#docs.keys()].sort().map((k) => this.#docs.get(k)!)
  }
}
