import type {
  AbstractBatchOperation,
  AbstractBatchOptions,
  AbstractDelOptions,
  AbstractLevel,
  AbstractPutOptions,
  AbstractSublevel,
} from 'abstract-level'
import { SUBLEVELS } from './constants.js'
import type { PaymentRecord, ReservationState } from './index.js'

/** Both backends (classic-level on disk, memory-level) satisfy this root type. */
export type RootDatabase = AbstractLevel<string | Buffer | Uint8Array, string, string>
export type Sublevel<V> = AbstractSublevel<RootDatabase, string | Buffer | Uint8Array, string, V>
export type BatchOperation = AbstractBatchOperation<RootDatabase, string, unknown>
/** classic-level's `sync` (fsync the write-ahead log before resolving); memory-level ignores it. */
export type BatchOptions = AbstractBatchOptions<string, unknown> & { sync?: boolean }
export type PutOptions<V> = AbstractPutOptions<string, V> & { sync?: boolean }
export type DelOptions = AbstractDelOptions<string> & { sync?: boolean }

/**
 * Value of the `reservations` keyspace. The body fields are known once the Reservation itself
 * (or a Commit embedding it) was recorded; a Release can arrive first and create the record.
 */
export interface ReservationRecord {
  state: ReservationState
  /** this terminal holds the reservation's cap headroom (it acked it, or it is its own) */
  held?: boolean
  nullifier?: string
  /** `events` key of the stored body (absent if another event holds its (origin, seq)) */
  eventKey?: string
  /** `cards` key of its exposure entry */
  cardKey?: string
  amountMinor?: number
  /** origin public key (hex), method and commit modes: what the view needs once the body is pruned */
  origin?: string
  method?: string
  modes?: string[]
}

/** One sublevel per keyspace; see README for the key layouts. */
export interface Store {
  root: RootDatabase
  /** originHex!seq → event wire bytes */
  events: Sublevel<Uint8Array>
  /** idHex → originHex!seq */
  ids: Sublevel<string>
  /** nullifierHex!reservationIdHex → state */
  nullifiers: Sublevel<ReservationState>
  /** reservationIdHex → record */
  reservations: Sublevel<ReservationRecord>
  /** originHex!seq → reservationIdHex, for reservations neither committed nor released */
  pending: Sublevel<string>
  /** cardKeyHex!currency!ts!reservationIdHex → amountMinor, for reservations that count as exposure */
  cards: Sublevel<number>
  /** reservationIdHex → bytes of the ack this terminal gave */
  acks: Sublevel<Uint8Array>
  /** payment id → record */
  payments: Sublevel<PaymentRecord>
  /** idempotency key → payment id */
  idem: Sublevel<string>
  /** status!paymentId → '' */
  payStatus: Sublevel<string>
  /** originHex → contiguous high-water mark */
  hwm: Sublevel<number>
  /** originHex → seq central confirmed up to */
  confirmed: Sublevel<number>
  /** originHex → seq whose bodies were pruned up to */
  pruned: Sublevel<number>
  /** name → value */
  cursors: Sublevel<string>
  /** eventKey → '' for every escrow transfer: start-up applies them without reading every event */
  transfers: Sublevel<string>
}

export function openStore(root: RootDatabase): Store {
  const bytes = { valueEncoding: 'view' } as const
  const json = { valueEncoding: 'json' } as const
  const utf8 = { valueEncoding: 'utf8' } as const
  return {
    root,
    events: root.sublevel<string, Uint8Array>(SUBLEVELS.events, bytes),
    ids: root.sublevel<string, string>(SUBLEVELS.ids, utf8),
    nullifiers: root.sublevel<string, ReservationState>(SUBLEVELS.nullifiers, utf8),
    reservations: root.sublevel<string, ReservationRecord>(SUBLEVELS.reservations, json),
    pending: root.sublevel<string, string>(SUBLEVELS.pending, utf8),
    cards: root.sublevel<string, number>(SUBLEVELS.cards, json),
    acks: root.sublevel<string, Uint8Array>(SUBLEVELS.acks, bytes),
    payments: root.sublevel<string, PaymentRecord>(SUBLEVELS.payments, json),
    idem: root.sublevel<string, string>(SUBLEVELS.idem, utf8),
    payStatus: root.sublevel<string, string>(SUBLEVELS.payStatus, utf8),
    hwm: root.sublevel<string, number>(SUBLEVELS.hwm, json),
    confirmed: root.sublevel<string, number>(SUBLEVELS.confirmed, json),
    pruned: root.sublevel<string, number>(SUBLEVELS.pruned, json),
    cursors: root.sublevel<string, string>(SUBLEVELS.cursors, utf8),
    transfers: root.sublevel<string, string>(SUBLEVELS.transfers, utf8),
  }
}

/** Puts and dels across sublevels, committed by one `root.batch`. */
export function put<V>(sublevel: Sublevel<V>, key: string, value: V): BatchOperation {
  return { type: 'put', sublevel, key, value }
}

export function del<V>(sublevel: Sublevel<V>, key: string): BatchOperation {
  return { type: 'del', sublevel, key }
}
