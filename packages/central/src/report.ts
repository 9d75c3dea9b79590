import type { VenueSummary } from './service.js'
import type { PaymentAggregate } from './store.js'

function empty(venueId: string): VenueSummary {
  return {
    venueId,
    payments: 0,
    byStatus: {
      created: 0,
      released: 0,
      queued: 0,
      processing: 0,
      completed: 0,
      failed: 0,
      voided: 0,
      abandoned: 0,
    },
    settled: { completed: 0, failed: 0 },
    failedByCode: {},
    offlineExposureMinor: {},
    offlineLossMinor: {},
    partitionLosses: 0,
    partitionLossMinor: {},
    policyViolations: {},
  }
}

/**
 * Venue summaries from the store's aggregates (CentralStore.aggregatePayments: one GROUP BY over
 * the report_payments view). `venues`: these venues first (empty ones included), then any other.
 */
export function summarize(venues: string[], aggregates: PaymentAggregate[]): VenueSummary[] {
  const out = new Map<string, VenueSummary>(venues.map((v) => [v, empty(v)]))
  const add = (m: Record<string, number>, k: string, v: number): void => {
    m[k] = (m[k] ?? 0) + v
  }
  for (const g of aggregates) {
    let s = out.get(g.venue)
    if (s === undefined) {
      s = empty(g.venue)
      out.set(g.venue, s)
    }
    s.payments += g.count
    s.byStatus[g.status] += g.count
    if (g.status === 'completed') s.settled.completed += g.count
    if (g.status === 'failed') {
      s.settled.failed += g.count
      add(s.failedByCode, g.code ?? 'other', g.count)
      if (g.offline) add(s.offlineLossMinor, g.currency, g.amountMinor)
    }
    // approved offline and not settled yet: money at risk
    if (g.offline && (g.status === 'queued' || g.status === 'processing'))
      add(s.offlineExposureMinor, g.currency, g.amountMinor)
    if (g.violator !== null) add(s.policyViolations, g.violator, g.count)
    if (g.partitionLoss) {
      s.partitionLosses += g.count
      add(s.partitionLossMinor, g.currency, g.amountMinor)
    }
  }
  return [...out.values()]
}
