/** Debug namespace of the ledger's logger (`DEBUG=nullmesh:ledger*`). */
export const LOG_NAMESPACE = 'nullmesh:ledger'

/** Separator between the parts of a composite key ('!' sorts before every hex digit and digit). */
export const KEY_SEPARATOR = '!'
/** The character right after KEY_SEPARATOR: `prefix + KEY_END` is the exclusive upper bound of a prefix range. */
export const KEY_END = '"'

/** Digits of the zero-padded seq in event keys (originHex!seq). */
export const SEQ_DIGITS = 12
/** Largest seq the key layout can order correctly. */
export const MAX_SEQ = 10 ** SEQ_DIGITS - 1
/** Digits of the zero-padded timestamp in card exposure keys (ts < 2^48 has 15 digits). */
export const TS_DIGITS = 15

/** recordEvent, recordEvents and putPayment write with fsync unless told otherwise: they precede approvals. */
export const DEFAULT_EVENT_SYNC = true
export const DEFAULT_PAYMENT_SYNC = true
/** Cursors, confirmations and pruning can be redone after a crash, so they do not wait for fsync by default. */
export const DEFAULT_CURSOR_SYNC = false
export const DEFAULT_CONFIRM_SYNC = false
export const DEFAULT_PRUNE_SYNC = false
/** The relearning mark guards against signing a used seq: written with fsync unless told otherwise. */
export const DEFAULT_RELEARNING_SYNC = true
/** Cursor that holds the mesh's relearning mark while a lost disk is refilled from peers. */
export const RELEARNING_CURSOR = 'mesh/relearning'
/**
 * Cursor that holds the largest own seq learned back after a lost disk (set when the relearning
 * mark is cleared): own reservations up to it were not written by this store, so one without a
 * Commit here may still have been approved (its Commit held elsewhere) and is never released at start.
 */
export const LEARNED_THROUGH_CURSOR = 'mesh/learned-through'

/** Events deleted per batch while pruning (each batch holds that origin's write lock). */
export const PRUNE_BATCH_SIZE = 500

/** Sublevel names, one per keyspace. */
export const SUBLEVELS = {
  events: 'events',
  ids: 'ids',
  nullifiers: 'nullifiers',
  reservations: 'reservations',
  pending: 'pending',
  cards: 'cards',
  acks: 'acks',
  payments: 'payments',
  idem: 'idem',
  payStatus: 'payStatus',
  hwm: 'hwm',
  confirmed: 'confirmed',
  pruned: 'pruned',
  cursors: 'cursors',
  transfers: 'transfers',
} as const

/** Reservation records read per getMany while listing the acks of held reservations (start-up). */
export const HELD_ACKS_CHUNK = 1000
