import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { BARRIER_BUCKETS_S, PAY_BUCKETS_S } from './constants.js'

/** Live values the gauges read at scrape time. */
export interface MetricsSource {
  online(): boolean
  meshQuorum(): boolean
  peers(): number
  queue(): { count: number; amountsByCurrency: Record<string, number> }
}

/**
 * One Prometheus registry per terminal (several terminals may share a process in tests and
 * benchmarks, so nothing goes to prom-client's global registry).
 */
export class TerminalMetrics {
  readonly registry = new Registry()
  readonly payments: Counter<'status' | 'mode'>
  readonly declines: Counter<'code'>
  readonly barrier: Histogram<'mode'>
  readonly decision: Histogram<'path'>
  readonly replays: Counter
  readonly syncEvents: Counter<'result'>
  readonly syncBatches: Counter
  readonly syncErrors: Counter
  readonly settlements: Counter<'status'>

  constructor(source: MetricsSource, labels: Record<string, string> = {}) {
    const registers = [this.registry]
    this.registry.setDefaultLabels(labels)
    this.payments = new Counter({
      name: 'nullmesh_payments_total',
      help: 'Payment decisions by status and decision mode',
      labelNames: ['status', 'mode'],
      registers,
    })
    this.declines = new Counter({
      name: 'nullmesh_declines_total',
      help: 'Declines by code',
      labelNames: ['code'],
      registers,
    })
    this.barrier = new Histogram({
      name: 'nullmesh_barrier_latency_seconds',
      help: 'Commit-before-accept barrier latency of offline decisions',
      labelNames: ['mode'],
      buckets: BARRIER_BUCKETS_S,
      registers,
    })
    this.decision = new Histogram({
      name: 'nullmesh_decision_latency_seconds',
      help: 'Whole decision latency (validation to durable record) by path',
      labelNames: ['path'],
      buckets: PAY_BUCKETS_S,
      registers,
    })
    this.replays = new Counter({
      name: 'nullmesh_idempotent_replays_total',
      help: 'Requests answered with a stored decision (same idempotency key)',
      registers,
    })
    this.syncEvents = new Counter({
      name: 'nullmesh_sync_events_total',
      help: 'Events sent to central, by result',
      labelNames: ['result'],
      registers,
    })
    this.syncBatches = new Counter({
      name: 'nullmesh_sync_batches_total',
      help: 'Sync batches sent to central',
      registers,
    })
    this.syncErrors = new Counter({
      name: 'nullmesh_sync_errors_total',
      help: 'Sync rounds that failed',
      registers,
    })
    this.settlements = new Counter({
      name: 'nullmesh_settlement_updates_total',
      help: 'Settlement status changes of own payments',
      labelNames: ['status'],
      registers,
    })
    new Gauge({
      name: 'nullmesh_central_online',
      help: '1 when the central service is reachable',
      registers,
      collect() {
        this.set(source.online() ? 1 : 0)
      },
    })
    new Gauge({
      name: 'nullmesh_mesh_quorum',
      help: '1 when a quorum of terminals is reachable (quorum mode), 0 when isolated',
      registers,
      collect() {
        this.set(source.meshQuorum() ? 1 : 0)
      },
    })
    new Gauge({
      name: 'nullmesh_mesh_peers',
      help: 'Enrolled peers connected, verified and caught up',
      registers,
      collect() {
        this.set(source.peers())
      },
    })
    new Gauge({
      name: 'nullmesh_queue_depth',
      help: 'Payments approved offline and not yet forwarded to central',
      registers,
      collect() {
        this.set(source.queue().count)
      },
    })
    new Gauge({
      name: 'nullmesh_queue_amount_minor',
      help: 'Amount approved offline and not yet forwarded, per currency (minor units)',
      labelNames: ['currency'],
      registers,
      collect() {
        this.reset()
        for (const [currency, amount] of Object.entries(source.queue().amountsByCurrency))
          this.set({ currency }, amount)
      },
    })
  }
}
