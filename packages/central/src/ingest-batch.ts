// Helpers of the engine's ingest (engine.ts): a sync batch's signature checks on the verification
// pool, and the keys its new events will read.
import {
  type Result,
  type SignatureChecks,
  type SignedEvent,
  toHex,
  type VerifyPool,
} from '@nullmesh/protocol'
import type { Logger } from './logger.js'
import type { CentralStore, ReadSetRequest } from './store.js'

export interface BatchVerifierInit {
  pool: VerifyPool
  store: CentralStore
  log: Logger
}

/** Sends a batch's events not stored yet to the pool, each event once across concurrent syncs. */
export class BatchVerifier {
  private readonly pool: VerifyPool
  private readonly store: CentralStore
  private readonly log: Logger
  /** events of ingest calls waiting for their signature checks, by id: concurrent syncs overlap */
  private readonly inflight = new Map<string, Promise<boolean[] | undefined>>()

  constructor(init: BatchVerifierInit) {
    this.pool = init.pool
    this.store = init.store
    this.log = init.log
  }

  /**
   * The signature checks of the batch's events not stored yet, from the pool; undefined entries
   * (and everything, without a running pool or when it fails) are verified inline as before.
   */
  async check(batch: Uint8Array[], ids: string[]): Promise<SignatureChecks | undefined> {
    const pool = this.pool
    if (!pool.running) return undefined
    let known: Set<string>
    try {
      known = await this.store.knownEventIds(ids)
    } catch {
      return undefined
    }
    // each event not stored is verified once: by this call, or by a concurrent one already at it
    const mine: Array<{ id: string; bytes: Uint8Array }> = []
    const plan: Array<number | Promise<boolean[] | undefined> | undefined> = []
    const mineAt = new Map<string, number>()
    for (let i = 0; i < batch.length; i++) {
      const id = ids[i] as string
      const other = known.has(id) ? undefined : this.inflight.get(id)
      if (known.has(id)) plan.push(undefined)
      else if (other !== undefined) plan.push(other)
      else {
        let at = mineAt.get(id)
        if (at === undefined) {
          at = mine.length
          mineAt.set(id, at)
          mine.push({ id, bytes: batch[i] as Uint8Array })
        }
        plan.push(at)
      }
    }
    const ours: Promise<SignatureChecks | undefined> =
      mine.length === 0
        ? Promise.resolve(undefined)
        : pool.check(mine.map((m) => m.bytes)).catch((err: unknown) => {
            this.log('verification pool failed (%s): verifying inline', (err as Error).message)
            return undefined
          })
    for (const [i, m] of mine.entries())
      this.inflight.set(
        m.id,
        ours.then((c) => c?.[i]),
      )
    try {
      const all = await ours
      return await Promise.all(plan.map((x) => (typeof x === 'number' ? all?.[x] : x)))
    } finally {
      for (const m of mine) this.inflight.delete(m.id)
    }
  }
}

/** The keys a sync batch's new events will read (each key once). */
export function readSetOf(decoded: Array<Result<SignedEvent> | undefined>): ReadSetRequest {
  const events = new Map<string, { origin: string; seq: number }>()
  const payments = new Set<string>()
  const nullifiers = new Set<string>()
  const releases = new Set<string>()
  for (const d of decoded) {
    if (d === undefined || !d.ok) continue
    const e = d.value.event
    const origin = toHex(e.origin)
    events.set(`${origin}!${e.seq}`, { origin, seq: e.seq })
    if (e.type === 'reservation') {
      payments.add(d.value.idHex)
      releases.add(d.value.idHex)
    } else if (e.type === 'commit') {
      const r = e.reservation
      events.set(`${origin}!${r.event.seq}`, { origin, seq: r.event.seq })
      payments.add(r.idHex)
      releases.add(r.idHex)
      nullifiers.add(toHex(r.event.nullifier))
    } else if (e.type === 'release') payments.add(toHex(e.reservationId))
  }
  return {
    ids: [],
    events: [...events.values()],
    payments: [...payments],
    nullifiers: [...nullifiers],
    releases: [...releases],
  }
}
