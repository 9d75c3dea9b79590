// CentralStore.readSet on SQL: what a sync batch will read, one statement per kind of key.
import type { ReadSet, ReadSetRequest } from '../store.js'
import type { PaymentRecord, StoredEvent } from '../types.js'
import type { Sql } from './db.js'

type Row = Record<string, unknown>

/** the store's row converters (passed in: sql-store.ts imports this module) */
export interface RowConverters {
  toEvent: (r: Row) => StoredEvent
  toPayment: (r: Row) => PaymentRecord
}

export async function readSet(sql: Sql, req: ReadSetRequest, c: RowConverters): Promise<ReadSet> {
  const out: ReadSet = { events: [], payments: [], nullifiers: new Map(), releases: [] }
  if (req.ids.length > 0) {
    const r = await sql.query('SELECT * FROM events WHERE id = ANY($1::text[])', [req.ids])
    out.events.push(...r.rows.map(c.toEvent))
  }
  if (req.events.length > 0) {
    const r = await sql.query(
      'SELECT e.* FROM events e JOIN unnest($1::text[], $2::bigint[]) AS k(origin, seq) ON e.origin = k.origin AND e.seq = k.seq',
      [req.events.map((k) => k.origin), req.events.map((k) => k.seq)],
    )
    out.events.push(...r.rows.map(c.toEvent))
  }
  if (req.payments.length > 0) {
    const r = await sql.query('SELECT * FROM payments WHERE payment_id = ANY($1::text[])', [req.payments])
    out.payments = r.rows.map(c.toPayment)
  }
  if (req.nullifiers.length > 0) {
    const r = await sql.query<{ nullifier: string; payment_id: string }>(
      'SELECT nullifier, payment_id FROM nullifiers WHERE nullifier = ANY($1::text[])',
      [req.nullifiers],
    )
    for (const row of r.rows) out.nullifiers.set(row.nullifier, row.payment_id)
  }
  if (req.releases.length > 0) {
    const r = await sql.query(
      'SELECT * FROM releases WHERE reservation_id = ANY($1::text[]) AND consumed = false',
      [req.releases],
    )
    out.releases = r.rows.map((row) => ({
      reservationId: String(row.reservation_id),
      origin: String(row.origin),
      eventId: String(row.event_id),
    }))
  }
  return out
}
