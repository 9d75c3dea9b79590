import {
  type Commit,
  type SignedAbandonment,
  type SignedEvent,
  signAbandonment,
  verifyCheckpoint,
} from '@nullmesh/protocol'
import { OFFLINE_SYNC_FAILURE } from './constants.js'
import { CentralError } from './errors.js'
import type { CentralStore, StoreOp } from './store.js'
import type { AbortOptions, PaymentRecord } from './types.js'
import type { VenueRegistry } from './venues.js'

/*
 * Reservations of a dead terminal (issue 17, item 5; the argument is in docs/protocol.md,
 * "Reservations of a dead terminal"). A reservation without Commit or Release holds its card's and
 * the venue's headroom at every peer that acked it, and central shows it `created`. Nobody may free
 * it alone while a Commit of it might exist in some ledger. Central may, once it knows none does:
 *
 * - every terminal sends a signed sync checkpoint after a sync round that left nothing behind:
 *   "every event my ledger held at `at` has reached central";
 * - once every terminal of the roster that is not revoked has checkpointed past a reservation's time +
 *   tap budget + clock skew + a margin, any Commit of it that a live ledger held has reached
 *   central; a reservation still `created` then is `abandoned` (a revoked terminal's ledger is
 *   written off by the operator's revocation: what only it holds is lost);
 * - central serves the venue's abandoned reservations as a list signed with the operator key; the
 *   terminals take it at sync and release their headroom and nullifier;
 * - a Commit of an abandoned reservation arriving later (its terminal came back) is failed
 *   `abandoned`, never settled; a late online authorisation of it is declined.
 */

/** How far back the served abandonment list reaches: longer than any window it frees. */
export const ABANDONED_LIST_WINDOW_MS = 7 * 24 * 60 * 60 * 1000
/** At most this many ids per scan and per served list. */
export const ABANDON_BATCH = 1_000
/** Default margin on top of tap budget and clock skew for a Commit still in flight on the LAN. */
export const DEFAULT_ABANDON_MARGIN_MS = 60_000

export const ABANDONED_FLAG = 'abandoned'

export interface AbandonDeps {
  store: CentralStore
  venues: VenueRegistry
  now: () => number
  write: (ops: StoreOp[]) => Promise<void>
  /** engine.abandon: marks those still `created` (in turn with ingest) */
  abandon: (ids: string[], opts: AbortOptions) => Promise<string[]>
  /** bring the revocations up to date from the store (another central process may have one) */
  refreshRevocations: (opts: AbortOptions) => Promise<void>
  marginMs: number
}

/** The payment of a Commit of an abandoned reservation: failed, never settled. */
export function lateCommitOfAbandoned(
  p: PaymentRecord,
  signed: SignedEvent<Commit>,
  now: number,
): PaymentRecord {
  return {
    ...p,
    commitId: signed.idHex,
    mode: signed.event.mode,
    flags: [...p.flags, ABANDONED_FLAG],
    status: 'failed',
    declineCode: OFFLINE_SYNC_FAILURE,
    syncDeclineCode: 'abandoned',
    completedAt: now,
  }
}

/** Record a terminal's signed checkpoint, then abandon what it lets central abandon. */
export async function receiveCheckpoint(
  deps: AbandonDeps,
  doc: unknown,
  opts: AbortOptions = {},
): Promise<{ venueId: string; terminal: string; at: number; abandoned: number }> {
  const v = verifyCheckpoint(doc)
  if (!v.ok) {
    const status = v.error.code === 'ERR_BAD_SIGNATURE' ? 422 : 400
    throw new CentralError(
      status === 422 ? 'ERR_BAD_SIGNATURE' : 'ERR_INVALID_REQUEST',
      `checkpoint: ${v.error.message}`,
      status,
    )
  }
  const { venueId, terminal, at } = v.value.payload
  const venue = deps.venues.get(venueId)
  if (venue === undefined)
    throw new CentralError('ERR_UNKNOWN_VENUE', `venue ${venueId} is not served here`, 404)
  const now = deps.now()
  if (!deps.venues.isEnrolled(venue, terminal, now))
    throw new CentralError(
      'ERR_NOT_ENROLLED',
      'checkpoint: its terminal is not enrolled in the venue now',
      422,
    )
  if (at > now + venue.policy.maxClockSkewMs)
    throw new CentralError('ERR_FUTURE_TS', 'checkpoint: dated ahead of central’s clock', 422)
  await deps.write([{ op: 'putCheckpoint', checkpoint: { venueId, terminal, at, receivedAt: now } }])
  const abandoned = await abandonScan(deps, venueId, opts)
  return { venueId, terminal, at, abandoned: abandoned.length }
}

/**
 * The time before which no live ledger of the venue can hold an unsynced Commit: the oldest
 * checkpoint of the enrolled, non-revoked terminals, less tap budget, clock skew and margin.
 * Undefined while one of them has never checkpointed.
 */
export async function abandonHorizon(
  deps: AbandonDeps,
  venueId: string,
  opts: AbortOptions = {},
): Promise<number | undefined> {
  const venue = deps.venues.get(venueId)
  if (venue === undefined) return undefined
  const now = deps.now()
  const checkpoints = new Map(
    (await deps.store.listCheckpoints(venueId, opts)).map((c) => [c.terminal, c.at] as const),
  )
  let oldest = Number.POSITIVE_INFINITY
  // every terminal of the roster that is not revoked, enrolled now or not: one whose certificate
  // expired may still hold what it signed while enrolled (the operator revokes it to write it off)
  for (const r of venue.bundle.roster) {
    if (deps.venues.isRevoked(venue, r.publicKeyHex, now)) continue
    const at = checkpoints.get(r.publicKeyHex)
    if (at === undefined) return undefined
    oldest = Math.min(oldest, at)
  }
  if (oldest === Number.POSITIVE_INFINITY) return undefined
  return oldest - venue.policy.tapBudgetMs - venue.policy.maxClockSkewMs - deps.marginMs
}

/** Abandon the venue's `created` reservations older than the horizon; their ids. */
export async function abandonScan(
  deps: AbandonDeps,
  venueId: string,
  opts: AbortOptions = {},
): Promise<string[]> {
  await deps.refreshRevocations(opts)
  const horizon = await abandonHorizon(deps, venueId, opts)
  if (horizon === undefined) return []
  const ids = await deps.store.listCreatedBefore(venueId, horizon, ABANDON_BATCH, opts)
  return deps.abandon(ids, opts)
}

/** The venue's recently abandoned reservations, signed with its operator key. */
export async function abandonmentList(
  deps: AbandonDeps & { operatorKey: (venueId: string) => Promise<import('@nullmesh/protocol').KeyPair> },
  venueId: string,
  opts: AbortOptions = {},
): Promise<SignedAbandonment> {
  if (deps.venues.get(venueId) === undefined)
    throw new CentralError('ERR_UNKNOWN_VENUE', `venue ${venueId} is not served here`, 404)
  const now = deps.now()
  const ids = await deps.store.listAbandoned(venueId, now - ABANDONED_LIST_WINDOW_MS, ABANDON_BATCH, opts)
  return signAbandonment(await deps.operatorKey(venueId), {
    venueId,
    reservations: [...ids].sort(),
    issuedAt: now,
  })
}
