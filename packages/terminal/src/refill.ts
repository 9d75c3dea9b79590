import debug from 'debug'
import type { CentralLink } from './central.js'
import { CENTRAL_REFILL_FIRST_TIMEOUT_MS, LOG_NAMESPACE } from './constants.js'

const log = debug(`${LOG_NAMESPACE}:refill`)

export interface CentralRefillInit {
  /**
   * how long the first page may take (default CENTRAL_REFILL_FIRST_TIMEOUT_MS): the terminal signs
   * nothing meanwhile, and a venue that starts without its uplink must not wait long for it
   */
  firstTimeoutMs?: number
}

/**
 * The mesh's `refillOwn` source: this terminal's own events that central keeps, page by page, for
 * a terminal that lost its disk (docs/protocol.md, "Lost disks"). Peers alone miss an isolated
 * approval synced to central before the disk was lost; the mesh signs nothing until this source
 * ends. Central is asked once: unreachable, refusing (an older central answers 404) or silent for
 * `firstTimeoutMs`, the source ends with that error and learning goes on from peers alone (the
 * residual the docs state). Once central answered, later pages get the link's own timeout.
 */
export function centralRefill(
  ownEvents: NonNullable<CentralLink['ownEvents']>,
  originHex: string,
  init: CentralRefillInit = {},
): (opts: { signal: AbortSignal }) => AsyncIterable<Uint8Array[]> {
  const firstTimeoutMs = init.firstTimeoutMs ?? CENTRAL_REFILL_FIRST_TIMEOUT_MS
  return async function* refill({ signal }) {
    let after = 0
    let events = 0
    for (let page = 0; ; page++) {
      const s = page === 0 ? AbortSignal.any([signal, AbortSignal.timeout(firstTimeoutMs)]) : signal
      const answer = await ownEvents(originHex, after, { signal: s })
      events += answer.events.length
      if (answer.events.length > 0) yield answer.events
      if (answer.next === null) break
      after = answer.next
      log('%d own events taken back so far (after seq %d)', events, after)
    }
  }
}
