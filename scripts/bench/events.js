// Synthetic, fully valid signed events for the catch-up, ingest and memory figures: per origin,
// Reservation + quorum Commit pairs with real acks from enrolled terminals of the venue.
import { createHash } from 'node:crypto'
import { loadTerminalKey, quorumSize } from '@nullmesh/policy'
import { signAck, signEvent } from '@nullmesh/protocol'

/**
 * `pairs` Reservation+Commit pairs for each origin id (2 × pairs events per origin), seq from 1.
 * Returns { byOrigin: Map<id, SignedEvent[]> } in seq order.
 */
export async function generateEvents(bundle, venueDir, originIds, pairs, { tag = 'g' } = {}) {
  const keys = new Map()
  for (const r of bundle.roster) keys.set(r.id, await loadTerminalKey(venueDir, r.id))
  const q = quorumSize(bundle.policy, bundle.roster.length)
  const currency = Object.keys(bundle.policy.currencies)[0]
  const byOrigin = new Map()
  const now = Date.now()
  for (const id of originIds) {
    const key = keys.get(id)
    const ackers = [id, ...bundle.roster.map((r) => r.id).filter((x) => x !== id)].slice(0, q)
    const events = []
    let seq = 1
    for (let i = 0; i < pairs; i++) {
      const h = createHash('sha256').update(`${tag}:${id}:${i}`).digest()
      const reservation = signEvent(key, {
        type: 'reservation',
        venue: bundle.venueId,
        origin: key.publicKey,
        seq: seq++,
        ts: now,
        nullifier: new Uint8Array(h.subarray(0, 32)),
        cardKey: new Uint8Array(
          createHash('sha256')
            .update(`card:${tag}:${i % 5000}`)
            .digest()
            .subarray(0, 16),
        ),
        amountMinor: 100 + (i % 4000),
        currency,
        method: 'contactless',
        policyVersion: bundle.policy.version,
      })
      const acks = ackers.map((a) => {
        const k = keys.get(a)
        return signAck(k, {
          venue: bundle.venueId,
          acker: k.publicKey,
          reservationId: reservation.id,
          ok: true,
          reason: '',
          ts: now,
        })
      })
      const commit = signEvent(key, {
        type: 'commit',
        venue: bundle.venueId,
        origin: key.publicKey,
        seq: seq++,
        ts: now,
        reservation,
        mode: 'quorum',
        acks,
      })
      events.push(reservation, commit)
    }
    byOrigin.set(id, events)
  }
  return { byOrigin, quorum: q }
}
