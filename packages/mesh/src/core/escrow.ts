import { fromHex, type SignedEvent, toHex } from '@nullmesh/protocol'
import { CoreError, type MeshCore, type Op } from './core.js'

/**
 * Escrow of the venue-wide offline cap (docs/protocol.md, "Escrow of the venue cap"). A terminal
 * approves offline only within its own share: its offline total in the queue window, plus the
 * payment, within share(me). No coordination on the hot path: the share is local state. Unused
 * share moves by signed transfer events, debited as the giver signs (before its fsync, so no
 * concurrent decision can spend it), sent only once durable, credited when the recipient holds it.
 */

/** our unused share of the venue cap in `currency` at wall time `now` */
export function unusedShare(core: MeshCore, currency: string, now: number, excludeAmount = 0): number {
  const used = core.view.exposure.deviceExposure(
    core.me,
    currency,
    now - core.policy.queueDurationMs,
  ).amountMinor
  return core.view.escrow!.share(core.me, currency) - (used - excludeAmount)
}

/**
 * Does a payment of `amountMinor` fit in our share? `existing`: the amount of a reservation of
 * ours already counted (an online attempt decided offline under the same identity).
 */
export function fits(
  core: MeshCore,
  currency: string,
  amountMinor: number,
  now: number,
  existing = 0,
): { ok: true } | { ok: false; message: string } {
  if (core.mut('escrow-overdraw')) return { ok: true }
  const unused = unusedShare(core, currency, now, existing)
  if (amountMinor <= unused) return { ok: true }
  return {
    ok: false,
    message: `this terminal's share of the venue cap has ${Math.max(0, unused)} ${currency} left, the payment needs ${amountMinor}`,
  }
}

export function* transfer(
  core: MeshCore,
  to: string,
  currency: string,
  amountMinor: number,
): Op<SignedEvent> {
  if (to === core.me || !core.init.roster.isEnrolled(to, core.wall()))
    throw new CoreError('ERR_REFUSED', 'escrow transfer: the recipient must be another enrolled terminal')
  if (!Number.isSafeInteger(amountMinor) || amountMinor < 1)
    throw new CoreError('ERR_REFUSED', 'escrow transfer: the amount must be a positive integer')
  if (!core.view.seqKnown)
    throw new CoreError('ERR_REFUSED', 'escrow transfer: own history not learned yet (lost disk)')
  // only unused share moves: what we hold (reservations in flight included) stays covered
  const unused = unusedShare(core, currency, core.wall())
  if (amountMinor > unused)
    throw new CoreError('ERR_REFUSED', `escrow transfer: ${amountMinor} exceeds the unused share ${unused}`)
  // the debit applies here, synchronously (view.apply); the event leaves only once durable
  const { signed, write } = core.appendOwn({ type: 'transfer', to: fromHex(to), currency, amountMinor })
  if (core.mut('transfer-before-durable')) core.publish(signed)
  yield { w: 'durable', id: write }
  if (!core.mut('transfer-before-durable')) core.publish(signed)
  core.log(`escrow: gave ${amountMinor} ${currency} to ${toHex(fromHex(to)).slice(0, 8)}`)
  return signed
}

/** a terminal is short when its unused share (as we estimate it) is below this many floor limits */
const SHORT_FLOORS = 2
/** we give only while we keep this many floor limits of unused share ourselves */
const KEEP_FLOORS = 4
/** at most this many floor limits per transfer */
const GIVE_FLOORS = 4

/**
 * Off the hot path (the periodic anti-entropy turn): if a terminal that has been approving is
 * short of share, and we have plenty unused, give it some. Commits reach every terminal, so each
 * one can estimate the others' unused shares; two donors giving at once only move capacity, never
 * create it. At most one transfer per turn; none to a terminal we gave to within `cooldownMs`.
 */
export function rebalance(core: MeshCore, nextOp: () => number, cooldownMs: number): void {
  if (!core.started || !core.view.seqKnown || core.reach.partitioned) return
  const now = core.wall()
  const since = now - core.policy.queueDurationMs
  const book = core.view.escrow!
  for (const currency of Object.keys(core.policy.currencies).sort()) {
    const floor = core.policy.currencies[currency]!.floorLimitMinor
    if (floor < 1) continue
    const mine = unusedShare(core, currency, now)
    if (mine < (KEEP_FLOORS + 1) * floor) continue
    let needy: string | undefined
    let needyUnused = Number.POSITIVE_INFINITY
    for (const m of core.groups.members) {
      if (m === core.me) continue
      const used = core.view.exposure.deviceExposure(m, currency, since).amountMinor
      if (used === 0) continue // idle: no demand shown
      const unused = book.share(m, currency) - used
      if (unused >= SHORT_FLOORS * floor || unused >= needyUnused) continue
      const last = core.gaveAt.get(`${m}|${currency}`)
      if (last !== undefined && core.mono() - last < cooldownMs) continue
      needy = m
      needyUnused = unused
    }
    if (needy === undefined) continue
    const amount = Math.min(GIVE_FLOORS * floor, mine - KEEP_FLOORS * floor)
    core.gaveAt.set(`${needy}|${currency}`, core.mono())
    core.transferShare(nextOp(), needy, currency, amount)
    return
  }
}
