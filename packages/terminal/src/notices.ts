import type { Ledger } from '@nullmesh/ledger'
import { type SignedRevocation, verifyAbandonment, verifyRevocation } from '@nullmesh/protocol'
import debug from 'debug'
import type { CentralLink } from './central.js'
import { CURSORS, LOG_NAMESPACE } from './constants.js'
import { TerminalError } from './errors.js'

/*
 * The venue notices a terminal takes from central at sync besides the deny list (issue 17):
 * operator revocations (item 2) and central's abandonment list (item 5). Both are signed with the
 * venue's operator key and checked here, so central (or anything between) cannot forge them. A
 * checkpoint, signed by this terminal, tells central its ledger has flushed everything it held.
 */

const log = debug(`${LOG_NAMESPACE}:notices`)

export interface NoticeTarget {
  link: CentralLink
  venueId: string
  operatorPublicKey: Uint8Array
}

async function fetchOptional(
  get: ((venueId: string, opts: { signal?: AbortSignal }) => Promise<unknown>) | undefined,
  venueId: string,
  what: string,
  signal: AbortSignal | undefined,
): Promise<unknown> {
  if (get === undefined) return undefined
  try {
    return await get(venueId, signal === undefined ? {} : { signal })
  } catch (err: unknown) {
    if (err instanceof TerminalError && err.code === 'central_rejected') {
      log('%s not available: %s', what, err.message)
      return undefined
    }
    throw err
  }
}

/** The venue's revocations as central serves them, each verified against the operator key. */
export async function fetchRevocations(
  t: NoticeTarget,
  signal: AbortSignal | undefined,
): Promise<SignedRevocation[]> {
  const body = await fetchOptional(t.link.revocations?.bind(t.link), t.venueId, 'revocations', signal)
  const docs = (body as { revocations?: unknown } | undefined)?.revocations
  if (!Array.isArray(docs)) return []
  const verified: SignedRevocation[] = []
  for (const d of docs) {
    const v = verifyRevocation(d, { operatorPublicKey: t.operatorPublicKey, venueId: t.venueId })
    if (v.ok) verified.push(v.value)
    else log('revocation refused: %s', v.error.message)
  }
  return verified
}

/** The reservation ids of central's abandonment list, when its operator signature verifies. */
export async function fetchAbandoned(t: NoticeTarget, signal: AbortSignal | undefined): Promise<string[]> {
  const body = await fetchOptional(t.link.abandoned?.bind(t.link), t.venueId, 'abandonment list', signal)
  if (body === undefined) return []
  const v = verifyAbandonment(body, { operatorPublicKey: t.operatorPublicKey, venueId: t.venueId })
  if (!v.ok) {
    log('abandonment list refused: %s', v.error.message)
    return []
  }
  return v.value.payload.reservations
}

/** Persisted JSON list in a ledger cursor (unreadable → empty: central sends it again). */
export async function readCursorList<T>(ledger: Ledger, name: string): Promise<T[]> {
  const raw = await ledger.getCursor(name)
  if (raw === undefined) return []
  try {
    const v = JSON.parse(raw) as unknown
    return Array.isArray(v) ? (v as T[]) : []
  } catch {
    return []
  }
}

interface NoticeMesh {
  revoke(docs: unknown[]): Promise<string[]>
  abandoned(ids: readonly string[]): number
}

/** What the terminal keeps of the notices: persisted in ledger cursors, applied to its mesh node. */
export class VenueNotices {
  readonly #ledger: Ledger
  readonly #self: string
  readonly #revocations = new Map<string, SignedRevocation>()
  #abandoned = new Set<string>()
  #mesh: NoticeMesh | undefined

  constructor(init: { ledger: Ledger; self: string }) {
    this.#ledger = init.ledger
    this.#self = init.self
  }

  /** Read what earlier runs accepted (the mesh node verifies the revocations again). */
  async load(): Promise<void> {
    for (const d of await readCursorList<SignedRevocation>(this.#ledger, CURSORS.revocations)) {
      if (typeof d?.payload?.terminal === 'string') this.#keep(d)
    }
    this.#abandoned = new Set(await readCursorList<string>(this.#ledger, CURSORS.abandoned))
  }

  attach(mesh: NoticeMesh): void {
    this.#mesh = mesh
  }

  revocationDocs(): SignedRevocation[] {
    return [...this.#revocations.values()]
  }

  abandonedIds(): string[] {
    return [...this.#abandoned]
  }

  /** the earliest revocation wins, as in RevocationSet */
  #keep(d: SignedRevocation): boolean {
    const current = this.#revocations.get(d.payload.terminal)
    if (current !== undefined && current.payload.effectiveAt <= d.payload.effectiveAt) return false
    this.#revocations.set(d.payload.terminal, d)
    return true
  }

  async setRevocations(docs: SignedRevocation[]): Promise<void> {
    const changed = docs.filter((d) => this.#keep(d))
    if (changed.length === 0) return
    await this.#ledger.setCursor(CURSORS.revocations, JSON.stringify(this.revocationDocs()), { sync: true })
    await this.#mesh?.revoke(changed)
    log('%d revocation(s) accepted', changed.length)
  }

  async setAbandoned(ids: string[]): Promise<void> {
    const fresh = ids.filter((id) => !this.#abandoned.has(id))
    if (fresh.length === 0) return
    // central's list is the current one: keep what it lists (older entries drop out with it)
    this.#abandoned = new Set(ids)
    await this.#ledger.setCursor(CURSORS.abandoned, JSON.stringify(ids), { sync: true })
    const released = this.#mesh?.abandoned(fresh) ?? 0
    log('%d reservation(s) abandoned by central, %d released here', fresh.length, released)
  }

  /** this terminal's own revocation, once in force at `now` */
  revokedSelf(now: number): { effectiveAt: number; reason: string } | undefined {
    const d = this.#revocations.get(this.#self)
    if (d === undefined || now < d.payload.effectiveAt) return undefined
    return { effectiveAt: d.payload.effectiveAt, reason: d.payload.reason }
  }
}
