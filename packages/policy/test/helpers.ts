import { createHash } from 'node:crypto'
import type { ReservationFacts } from '@nullmesh/policy'
import type { PaymentMethod } from '@nullmesh/protocol'

export const T0 = 1_700_000_000_000

/** deterministic 64-hex id / key from a label */
export function hex(label: string, bytes = 32): string {
  return createHash('sha256')
    .update(label)
    .digest('hex')
    .slice(0, bytes * 2)
}

export const ORIGIN_A = hex('origin-a')
export const ORIGIN_B = hex('origin-b')
export const CARD_1 = hex('card-1', 16)
export const CARD_2 = hex('card-2', 16)

let counter = 0

/** a reservation's facts; unique id and nullifier unless given */
export function facts(over: Partial<ReservationFacts> = {}): ReservationFacts {
  counter++
  return {
    id: hex(`res-${counter}`),
    origin: ORIGIN_A,
    nullifier: hex(`null-${counter}`),
    cardKey: CARD_1,
    amountMinor: 1000,
    currency: 'EUR',
    method: 'contactless' as PaymentMethod,
    ts: T0,
    ...over,
  }
}
