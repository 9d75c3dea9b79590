import type { CentralPaymentStatus } from './central.js'
import type { SettlementStatus } from './online.js'

const SETTLEMENT_RANK: Record<SettlementStatus, number> = {
  none: 0,
  queued: 1,
  forwarded: 2,
  completed: 3,
  failed: 3,
}

/** central's status of a payment → the terminal's settlement status (undefined: nothing to apply) */
export function settlementOf(s: CentralPaymentStatus): SettlementStatus | undefined {
  if (s.status === 'queued' || s.status === 'processing') return 'forwarded'
  if (s.status === 'completed' || s.status === 'failed') return s.status
  return undefined
}

/** queued → forwarded → completed | failed, never back */
export function advances(from: SettlementStatus, to: SettlementStatus): boolean {
  return from !== 'none' && SETTLEMENT_RANK[to] > SETTLEMENT_RANK[from]
}

/** The terminal's settlement counters: the queue per currency and the settled payments by status. */
export class SettlementCounters {
  readonly #queue = new Map<string, { count: number; amount: number }>()
  readonly settled = { forwarded: 0, completed: 0, failed: 0 }

  clear(): void {
    this.#queue.clear()
    this.settled.forwarded = 0
    this.settled.completed = 0
    this.settled.failed = 0
  }

  /** a payment entered a status (and left `from`, if given) */
  move(p: { currency: string; amountMinor: number }, to: SettlementStatus, from?: SettlementStatus): void {
    if (from === 'queued') this.#queueAdd(p, -1)
    else if (from !== undefined && from !== 'none') this.settled[from]--
    if (to === 'queued') this.#queueAdd(p, 1)
    else if (to !== 'none') this.settled[to]++
  }

  #queueAdd(p: { currency: string; amountMinor: number }, sign: 1 | -1): void {
    const q = this.#queue.get(p.currency) ?? { count: 0, amount: 0 }
    q.count += sign
    q.amount += sign * p.amountMinor
    if (q.count <= 0) this.#queue.delete(p.currency)
    else this.#queue.set(p.currency, q)
  }

  queueSummary(): { count: number; amountsByCurrency: Record<string, number> } {
    let count = 0
    const amountsByCurrency: Record<string, number> = {}
    for (const [currency, q] of this.#queue) {
      count += q.count
      amountsByCurrency[currency] = q.amount
    }
    return { count, amountsByCurrency }
  }
}
