import type { Effect } from './core/types.js'

/**
 * What one mesh node has sent and made durable for the protocol since it was created: the cost of
 * a payment in messages and fsyncs, read by benchmarks (bench figure `scale`). Counted where the
 * adapter carries the core's effects out, so every protocol path is counted alike.
 */
export interface MeshCounters {
  /** barrier requests sent: one reservation to one peer */
  barrierRequests: number
  /** barrier answers sent: an ack (or refusal) to an origin */
  barrierAnswers: number
  /** Commits and Releases pushed to one peer on the barrier stream */
  barrierPushes: number
  /** events published on the gossip topic (one publish, however many peers it reaches) */
  gossipPublished: number
  /** ledger records written with fsync (each one LevelDB write with `sync: true`) */
  syncWrites: number
  /** catch-up signatures verified on a worker thread instead of the main thread */
  catchupSignaturesOnWorkers: number
  /** catch-up events not sent to the workers: already known, or on their way there in another frame */
  catchupDuplicatesSkipped: number
  /** on-demand dials of custodian-group members the node was not connected to */
  onDemandDials: number
  /** events sent in answers to catch-up requests (what the asker stated it holds is not sent) */
  catchupEventsServed: number
}

export function newCounters(): MeshCounters {
  return {
    barrierRequests: 0,
    barrierAnswers: 0,
    barrierPushes: 0,
    gossipPublished: 0,
    syncWrites: 0,
    catchupSignaturesOnWorkers: 0,
    catchupDuplicatesSkipped: 0,
    onDemandDials: 0,
    catchupEventsServed: 0,
  }
}

export function countEffect(c: MeshCounters, e: Effect): void {
  if (e.type === 'send') {
    if (e.msg.t === 'req') c.barrierRequests++
    else if (e.msg.t === 'ans') c.barrierAnswers++
    else c.barrierPushes++
  } else if (e.type === 'gossip') c.gossipPublished++
  else if (e.type === 'write' && e.sync) c.syncWrites += e.records.length
  else if (e.type === 'dial') c.onDemandDials++
}
