import { randomBytes } from 'node:crypto'
import { DEFAULT_PAYMENTS_LIMIT, MAX_PAYMENTS_LIMIT } from './constants.js'
import { CentralError, throwIfAborted } from './errors.js'
import { isConflictError, openPglite, openPostgres, type Sql, type SqlDb } from './sql/db.js'
import { readSet } from './sql/read-set.js'
import { migrate } from './sql/schema.js'
import type {
  CentralStore,
  EventLogFilter,
  PaymentAggregate,
  PaymentFilter,
  ReadSet,
  ReadSetRequest,
  RedeliverRequest,
  StoreOp,
} from './store.js'
import { StoreConflict } from './store.js'
import type {
  AbortOptions,
  CheckpointRecord,
  DenylistState,
  EventLogEntry,
  OutboxEntry,
  PaymentRecord,
  PaymentStatus,
  PendingRelease,
  RevocationRecord,
  StoredEvent,
  SyncDeclineCode,
  WebhookBacklog,
  WebhookEndpoint,
  WebhookEventType,
} from './types.js'

export type SqlStoreInit =
  /** embedded PostgreSQL (PGlite) in this directory */
  | { kind: 'pglite'; path: string }
  /** a PostgreSQL server (or one that speaks its protocol) */
  | { kind: 'postgres'; url: string; poolSize?: number }
  /** an already opened database (tests, embedding) */
  | { kind: 'db'; db: SqlDb }

type Row = Record<string, unknown>

const num = (v: unknown): number => Number(v)
const optNum = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v))
const optStr = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : String(v))

/** payments columns in the order paymentValues() gives them (rev, lease_* are the store's) */
const PAYMENT_COLUMNS = [
  ['payment_id', 'text'],
  ['venue', 'text'],
  ['origin', 'text'],
  ['seq', 'bigint'],
  ['nullifier', 'text'],
  ['card_key', 'text'],
  ['amount_minor', 'bigint'],
  ['currency', 'text'],
  ['method', 'text'],
  ['policy_version', 'integer'],
  ['queued_at', 'bigint'],
  ['status', 'text'],
  ['mode', 'text'],
  ['commit_id', 'text'],
  ['flags', 'text'],
  ['decline_code', 'text'],
  ['sync_decline_code', 'text'],
  ['authorization_code', 'text'],
  ['partition_loss', 'boolean'],
  ['created_at', 'bigint'],
  ['updated_at', 'bigint'],
  ['completed_at', 'bigint'],
  ['violation', 'text'],
] as const

function paymentValues(p: PaymentRecord): unknown[] {
  return [
    p.paymentId,
    p.venue,
    p.origin,
    p.seq,
    p.nullifier,
    p.cardKey,
    p.amountMinor,
    p.currency,
    p.method,
    p.policyVersion,
    p.queuedAt,
    p.status,
    p.mode ?? null,
    p.commitId ?? null,
    p.flags.join(','),
    p.declineCode ?? null,
    p.syncDeclineCode ?? null,
    p.authorizationCode ?? null,
    p.partitionLoss === true,
    p.createdAt,
    p.updatedAt,
    p.completedAt ?? null,
    p.violation ?? null,
  ]
}

function toPayment(r: Row): PaymentRecord {
  const p: PaymentRecord = {
    paymentId: String(r.payment_id),
    venue: String(r.venue),
    origin: String(r.origin),
    seq: num(r.seq),
    nullifier: String(r.nullifier),
    cardKey: String(r.card_key),
    amountMinor: num(r.amount_minor),
    currency: String(r.currency),
    method: r.method as PaymentRecord['method'],
    policyVersion: num(r.policy_version),
    queuedAt: num(r.queued_at),
    status: r.status as PaymentStatus,
    flags: r.flags === '' || r.flags === null ? [] : String(r.flags).split(','),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    rev: num(r.rev),
  }
  if (r.mode !== null) p.mode = r.mode as NonNullable<PaymentRecord['mode']>
  if (r.commit_id !== null) p.commitId = String(r.commit_id)
  if (r.decline_code !== null) p.declineCode = String(r.decline_code)
  if (r.sync_decline_code !== null) p.syncDeclineCode = r.sync_decline_code as SyncDeclineCode
  if (r.authorization_code !== null) p.authorizationCode = String(r.authorization_code)
  if (r.partition_loss === true) p.partitionLoss = true
  if (r.violation !== null && r.violation !== undefined) p.violation = String(r.violation)
  const completedAt = optNum(r.completed_at)
  if (completedAt !== undefined) p.completedAt = completedAt
  return p
}

function toEvent(r: Row): StoredEvent {
  return {
    id: String(r.id),
    origin: String(r.origin),
    seq: num(r.seq),
    venue: String(r.venue),
    type: r.type as StoredEvent['type'],
    bytes: String(r.bytes),
    receivedAt: num(r.received_at),
  }
}

function toOutbox(r: Row): OutboxEntry {
  const e: OutboxEntry = {
    id: String(r.id),
    endpointId: String(r.endpoint_id),
    body: String(r.body),
    attempts: num(r.attempts),
    nextAttemptAt: num(r.next_attempt_at),
    createdAt: num(r.created_at),
  }
  const key = optStr(r.key)
  if (key !== undefined) e.key = key
  const lastError = optStr(r.last_error)
  if (lastError !== undefined) e.lastError = lastError
  const eventId = optStr(r.event_id)
  if (eventId !== undefined) e.eventId = eventId
  return e
}

function toLogEntry(r: Row): EventLogEntry {
  return {
    id: String(r.id),
    type: r.type as WebhookEventType,
    paymentId: String(r.payment_id),
    createdAt: num(r.created_at),
    body: String(r.body),
    pos: num(r.pos),
  }
}

const WEBHOOK_EVENT_COLUMNS = [
  ['id', 'text'],
  ['type', 'text'],
  ['payment_id', 'text'],
  ['created_at', 'bigint'],
  ['body', 'text'],
] as const

/** `unnest($1::text[], $2::bigint[], …) AS alias(c1, c2, …)` over column-wise arrays */
function unnest(columns: ReadonlyArray<readonly [string, string]>, alias: string, first = 1): string {
  const args = columns.map(([, type], i) => `$${first + i}::${type}[]`).join(', ')
  return `unnest(${args}) AS ${alias}(${columns.map(([c]) => c).join(', ')})`
}

function columnArrays(rows: unknown[][], width: number): unknown[][] {
  const cols: unknown[][] = Array.from({ length: width }, () => [])
  for (const row of rows) for (let i = 0; i < width; i++) cols[i]!.push(row[i])
  return cols
}

/** Consecutive ops of one kind, so a run of inserts is one statement. */
function* runs(ops: StoreOp[]): Generator<StoreOp[]> {
  let run: StoreOp[] = []
  for (const o of ops) {
    if (run.length > 0 && run[0]!.op !== o.op) {
      yield run
      run = []
    }
    run.push(o)
  }
  if (run.length > 0) yield run
}

/** What every report is made of (GROUP BY and a venue filter are appended). */
export const REPORT_SQL = `SELECT venue, status, currency, offline, partition_loss,
       CASE WHEN status = 'failed' THEN coalesce(sync_decline_code, decline_code, 'other') END AS code,
       CASE WHEN sync_decline_code = 'policy_violation' THEN terminal_key END AS violator,
       count(*) AS n, coalesce(sum(amount_minor), 0) AS amount
FROM report_payments`

const EVENT_COLUMNS = [
  ['origin', 'text'],
  ['seq', 'bigint'],
  ['id', 'text'],
  ['venue', 'text'],
  ['type', 'text'],
  ['bytes', 'text'],
  ['received_at', 'bigint'],
] as const

/**
 * The SQL backend (PostgreSQL, or PGlite embedded): one transaction per apply(), the database's
 * constraints and row revisions deciding every race between processes.
 */
class SqlCentralStore implements CentralStore {
  private db: SqlDb | undefined

  constructor(private readonly init: SqlStoreInit) {}

  private get sql(): SqlDb {
    if (this.db === undefined) throw new CentralError('ERR_STORE', 'the store is not open', 500)
    return this.db
  }

  async open(opts: AbortOptions = {}): Promise<void> {
    throwIfAborted(opts.signal)
    if (this.db !== undefined) return
    let db: SqlDb
    try {
      db =
        this.init.kind === 'db'
          ? this.init.db
          : this.init.kind === 'pglite'
            ? await openPglite({ path: this.init.path })
            : await openPostgres({
                url: this.init.url,
                ...(this.init.poolSize === undefined ? {} : { max: this.init.poolSize }),
              })
    } catch (err: unknown) {
      const why = err instanceof Error ? `: ${err.message}` : ''
      throw new CentralError('ERR_STORE', `cannot open the store${why}`, 500)
    }
    try {
      await migrate(db)
    } catch (err: unknown) {
      if (this.init.kind !== 'db') await db.close().catch(() => {})
      const why = err instanceof Error ? `: ${err.message}` : ''
      throw new CentralError('ERR_STORE', `cannot migrate the store${why}`, 500)
    }
    this.db = db
  }

  async close(): Promise<void> {
    const db = this.db
    this.db = undefined
    if (db !== undefined && this.init.kind !== 'db') await db.close()
  }

  async apply(ops: StoreOp[], opts: AbortOptions = {}): Promise<void> {
    throwIfAborted(opts.signal)
    if (ops.length === 0) return
    try {
      await this.sql.transaction(async (tx) => {
        const payments = new Map<string, { rev: number | undefined; record: PaymentRecord }>()
        for (const o of ops) {
          if (o.op !== 'putPayment') continue
          const seen = payments.get(o.payment.paymentId)
          payments.set(o.payment.paymentId, {
            rev: seen === undefined ? o.payment.rev : seen.rev,
            record: o.payment,
          })
        }
        // a sync batch interleaves its events with other writes: the events depend on nothing
        // else in the batch, so all of them go in one statement, first; payments are written last,
        // so the other writes between them form longer runs of one statement each
        const events = ops.filter((o) => o.op === 'putEvent')
        if (events.length > 0) await this.applyRun(tx, events)
        for (const run of runs(ops.filter((o) => o.op !== 'putEvent' && o.op !== 'putPayment')))
          await this.applyRun(tx, run)
        // payments last: a new payment marks its reservation id known in `releases`, after this
        // batch's own release writes
        if (payments.size > 0) await this.writePayments(tx, [...payments.values()])
      })
    } catch (err: unknown) {
      if (err instanceof StoreConflict) throw err
      if (isConflictError(err))
        throw new StoreConflict(`another writer changed the store: ${(err as Error).message}`, { cause: err })
      throw err
    }
  }

  private async applyRun(tx: Sql, run: StoreOp[]): Promise<void> {
    const kind = run[0]!.op
    switch (kind) {
      case 'putEvent': {
        const rows = (run as Array<Extract<StoreOp, { op: 'putEvent' }>>).map(({ event: e }) => [
          e.origin,
          e.seq,
          e.id,
          e.venue,
          e.type,
          e.bytes,
          e.receivedAt,
        ])
        await tx.query(
          `INSERT INTO events (${EVENT_COLUMNS.map(([c]) => c).join(', ')}) SELECT * FROM ${unnest(EVENT_COLUMNS, 'e')}`,
          columnArrays(rows, EVENT_COLUMNS.length),
        )
        return
      }
      case 'claimNullifier': {
        const list = run as Array<Extract<StoreOp, { op: 'claimNullifier' }>>
        await tx.query(
          `INSERT INTO nullifiers (nullifier, payment_id, claimed_at)
           SELECT n, p, $3 FROM unnest($1::text[], $2::text[]) AS c(n, p)`,
          [list.map((o) => o.nullifier), list.map((o) => o.paymentId), Date.now()],
        )
        return
      }
      case 'putWebhookEvent': {
        const rows = (run as Array<Extract<StoreOp, { op: 'putWebhookEvent' }>>).map(({ event: e }) => [
          e.id,
          e.type,
          e.paymentId,
          e.createdAt,
          e.body,
        ])
        await tx.query(
          `INSERT INTO webhook_events (${WEBHOOK_EVENT_COLUMNS.map(([c]) => c).join(', ')})
           SELECT * FROM ${unnest(WEBHOOK_EVENT_COLUMNS, 'e')} ON CONFLICT (id) DO NOTHING`,
          columnArrays(rows, WEBHOOK_EVENT_COLUMNS.length),
        )
        return
      }
      case 'delOutbox': {
        const ids = (run as Array<Extract<StoreOp, { op: 'delOutbox' }>>).map((o) => o.id)
        await tx.query('DELETE FROM outbox WHERE id = ANY($1::text[])', [ids])
        return
      }
      case 'putOutbox': {
        for (const { entry: e } of run as Array<Extract<StoreOp, { op: 'putOutbox' }>>) {
          await tx.query(
            `INSERT INTO outbox (id, endpoint_id, key, body, attempts, next_attempt_at, created_at, last_error, event_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET attempts = excluded.attempts,
               next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error,
               lease_owner = NULL, lease_until = NULL`,
            [
              e.id,
              e.endpointId,
              e.key ?? null,
              e.body,
              e.attempts,
              e.nextAttemptAt,
              e.createdAt,
              e.lastError ?? null,
              e.eventId ?? null,
            ],
          )
        }
        return
      }
      default:
        for (const o of run) await this.applyOne(tx, o)
    }
  }

  private async applyOne(tx: Sql, o: StoreOp): Promise<void> {
    switch (o.op) {
      case 'delNullifier':
        await tx.query('DELETE FROM nullifiers WHERE nullifier = $1 AND payment_id = $2', [
          o.nullifier,
          o.paymentId,
        ])
        return
      case 'putRelease': {
        // a pending release may be replaced by a later one; a known reservation is a conflict
        const r = await tx.query(
          `INSERT INTO releases (reservation_id, origin, event_id, consumed) VALUES ($1, $2, $3, false)
           ON CONFLICT (reservation_id) DO UPDATE SET origin = excluded.origin, event_id = excluded.event_id
           WHERE releases.consumed = false
           RETURNING reservation_id`,
          [o.release.reservationId, o.release.origin, o.release.eventId],
        )
        if (r.rows.length === 0)
          throw new StoreConflict(`reservation ${o.release.reservationId} is known now`)
        return
      }
      case 'delRelease': {
        const r = await tx.query(
          `UPDATE releases SET consumed = true, origin = NULL, event_id = NULL
           WHERE reservation_id = $1 AND consumed = false RETURNING reservation_id`,
          [o.reservationId],
        )
        if (r.rows.length === 0) throw new StoreConflict(`release of ${o.reservationId} already taken`)
        return
      }
      case 'putWebhook': {
        const e = o.endpoint
        await tx.query(
          `INSERT INTO webhooks (id, url, secret, created_at, events, disabled, disabled_at, disabled_reason, previous_secrets)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
          [
            e.id,
            e.url,
            e.secret,
            e.createdAt,
            e.events === undefined ? null : e.events.join(','),
            e.disabled === true,
            e.disabledAt ?? null,
            e.disabledReason ?? null,
            JSON.stringify(e.previousSecrets ?? []),
          ],
        )
        return
      }
      case 'delWebhook':
        await tx.query('DELETE FROM outbox WHERE endpoint_id = $1', [o.id])
        await tx.query('DELETE FROM webhooks WHERE id = $1', [o.id])
        return
      case 'patchWebhook': {
        const set: string[] = []
        const params: unknown[] = [o.id]
        const add = (column: string, value: unknown): void => {
          params.push(value)
          set.push(`${column} = $${params.length}`)
        }
        if (o.url !== undefined) add('url', o.url)
        if (o.events !== undefined) add('events', o.events === null ? null : o.events.join(','))
        if (o.secret !== undefined) add('secret', o.secret)
        if (o.previousSecrets !== undefined) add('previous_secrets', JSON.stringify(o.previousSecrets))
        if (o.disabled === false) {
          add('disabled', false)
          add('disabled_at', null)
          add('disabled_reason', null)
          add('failing_since', null)
        } else if (o.disabled !== undefined) {
          add('disabled', true)
          add('disabled_at', o.disabled.at)
          add('disabled_reason', o.disabled.reason)
        }
        if (set.length === 0) return
        await tx.query(`UPDATE webhooks SET ${set.join(', ')} WHERE id = $1`, params)
        return
      }
      case 'webhookAttempt':
        if (o.error === undefined) {
          // at most one write a second per endpoint while it is healthy
          await tx.query(
            `UPDATE webhooks SET last_success_at = $2::bigint, failing_since = NULL
             WHERE id = $1 AND (last_success_at IS NULL OR last_success_at < $2::bigint - 1000 OR failing_since IS NOT NULL)`,
            [o.id, o.at],
          )
        } else {
          // disabled when it has not succeeded since the delivery that ran out of its schedule was created
          const off = `$4::bigint IS NOT NULL AND (last_success_at IS NULL OR last_success_at < $4::bigint)`
          await tx.query(
            `UPDATE webhooks SET last_error = $3::text, last_error_at = $2::bigint,
               failing_since = coalesce(failing_since, $2::bigint),
               disabled = disabled OR (${off}),
               disabled_at = CASE WHEN NOT disabled AND ${off} THEN $2::bigint ELSE disabled_at END,
               disabled_reason = CASE WHEN NOT disabled AND ${off} THEN $5::text ELSE disabled_reason END
             WHERE id = $1`,
            [
              o.id,
              o.at,
              o.error.slice(0, 500),
              o.disableIfNoSuccessSince ?? null,
              `failed for the whole retry schedule (last error: ${o.error.slice(0, 200)})`,
            ],
          )
        }
        return
      case 'rescheduleOutbox':
        await tx.query(
          `UPDATE outbox SET attempts = 0, next_attempt_at = $2, last_error = NULL
           WHERE endpoint_id = $1 AND (lease_until IS NULL OR lease_until <= $2)`,
          [o.endpointId, o.at],
        )
        return
      case 'retryOutbox':
        await tx.query(
          `UPDATE outbox SET attempts = $2, next_attempt_at = $3, last_error = $4, lease_owner = NULL, lease_until = NULL
           WHERE id = $1`,
          [o.id, o.attempts, o.nextAttemptAt, o.lastError.slice(0, 500)],
        )
        return
      case 'delOutbox':
        await tx.query('DELETE FROM outbox WHERE id = $1', [o.id])
        return
      case 'putDeadLetter': {
        const e = o.entry
        await tx.query(
          `INSERT INTO dead_letters (id, endpoint_id, key, body, attempts, next_attempt_at, created_at, last_error)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
          [
            e.id,
            e.endpointId,
            e.key ?? null,
            e.body,
            e.attempts,
            e.nextAttemptAt,
            e.createdAt,
            e.lastError ?? null,
          ],
        )
        return
      }
      case 'putDenylist': {
        const d = o.denylist
        const values = [
          d.venueId,
          d.version,
          JSON.stringify(d.blockedBins),
          JSON.stringify(d.denylistCardKeys),
          d.updatedAt,
        ]
        const r = await tx.query(
          `INSERT INTO denylists (venue_id, version, blocked_bins, denylist_card_keys, updated_at)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (venue_id) DO UPDATE SET version = excluded.version, blocked_bins = excluded.blocked_bins,
             denylist_card_keys = excluded.denylist_card_keys, updated_at = excluded.updated_at
           WHERE denylists.version = excluded.version - 1
           RETURNING venue_id`,
          values,
        )
        if (r.rows.length === 0) throw new StoreConflict(`deny list of ${d.venueId} changed`)
        return
      }
      case 'putRevocation': {
        const v = o.revocation
        await tx.query(
          `INSERT INTO revocations (venue_id, terminal, effective_at, reason, issued_at, document, received_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (venue_id, terminal) DO UPDATE SET effective_at = excluded.effective_at,
             reason = excluded.reason, issued_at = excluded.issued_at, document = excluded.document,
             received_at = excluded.received_at
           WHERE revocations.effective_at > excluded.effective_at`,
          [v.venueId, v.terminal, v.effectiveAt, v.reason, v.issuedAt, v.document, v.receivedAt],
        )
        return
      }
      case 'putCheckpoint': {
        const c = o.checkpoint
        await tx.query(
          `INSERT INTO sync_checkpoints (venue_id, terminal, at, received_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (venue_id, terminal) DO UPDATE SET at = excluded.at, received_at = excluded.received_at
           WHERE sync_checkpoints.at < excluded.at`,
          [c.venueId, c.terminal, c.at, c.receivedAt],
        )
        return
      }
      default:
        await this.applyRun(tx, [o])
    }
  }

  private async writePayments(
    tx: Sql,
    writes: Array<{ rev: number | undefined; record: PaymentRecord }>,
  ): Promise<void> {
    const names = PAYMENT_COLUMNS.map(([c]) => c)
    const inserts = writes.filter((w) => w.rev === undefined).map((w) => w.record)
    const updates = writes.filter((w) => w.rev !== undefined)
    if (inserts.length > 0) {
      const ids = inserts.map((p) => p.paymentId)
      // the reservation is known: a pending release of it (this batch consumed it) or none
      const marked = await tx.query(
        `INSERT INTO releases (reservation_id, consumed) SELECT r, true FROM unnest($1::text[]) AS m(r)
         ON CONFLICT (reservation_id) DO UPDATE SET consumed = true WHERE releases.consumed = true
         RETURNING reservation_id`,
        [ids],
      )
      if (marked.rows.length !== ids.length)
        throw new StoreConflict('a Release of a new reservation was stored meanwhile')
      await tx.query(
        `INSERT INTO payments (${names.join(', ')}) SELECT * FROM ${unnest(PAYMENT_COLUMNS, 'p')}`,
        columnArrays(inserts.map(paymentValues), PAYMENT_COLUMNS.length),
      )
    }
    if (updates.length > 0) {
      const cols = [...PAYMENT_COLUMNS, ['rev', 'integer']] as const
      const set = names
        .filter((c) => c !== 'payment_id')
        .map((c) => `${c} = u.${c}`)
        .join(', ')
      const r = await tx.query(
        `UPDATE payments SET ${set}, rev = payments.rev + 1
         FROM ${unnest(cols, 'u')}
         WHERE payments.payment_id = u.payment_id AND payments.rev = u.rev
         RETURNING payments.payment_id`,
        columnArrays(
          updates.map((w) => [...paymentValues(w.record), w.rev]),
          cols.length,
        ),
      )
      if (r.rows.length !== updates.length) throw new StoreConflict('a payment was changed by another writer')
    }
  }

  async getEvent(origin: string, seq: number, opts: AbortOptions = {}): Promise<StoredEvent | undefined> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query('SELECT * FROM events WHERE origin = $1 AND seq = $2', [origin, seq])
    return r.rows[0] === undefined ? undefined : toEvent(r.rows[0])
  }

  async getEventById(id: string, opts: AbortOptions = {}): Promise<StoredEvent | undefined> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query('SELECT * FROM events WHERE id = $1', [id])
    return r.rows[0] === undefined ? undefined : toEvent(r.rows[0])
  }

  async knownEventIds(ids: string[], opts: AbortOptions = {}): Promise<Set<string>> {
    throwIfAborted(opts.signal)
    if (ids.length === 0) return new Set()
    const r = await this.sql.query<{ id: string }>('SELECT id FROM events WHERE id = ANY($1::text[])', [ids])
    return new Set(r.rows.map((row) => row.id))
  }

  async readSet(req: ReadSetRequest, opts: AbortOptions = {}): Promise<ReadSet> {
    throwIfAborted(opts.signal)
    return readSet(this.sql, req, { toEvent, toPayment })
  }

  async listOriginEvents(
    origin: string,
    afterSeq: number,
    limit: number,
    opts: AbortOptions = {},
  ): Promise<StoredEvent[]> {
    throwIfAborted(opts.signal)
    // the primary key (origin, seq) serves it as one index range
    const r = await this.sql.query(
      'SELECT * FROM events WHERE origin = $1 AND seq > $2 ORDER BY seq LIMIT $3',
      [origin, afterSeq, limit],
    )
    return r.rows.map(toEvent)
  }

  async countEvents(opts: AbortOptions = {}): Promise<number> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query<{ n: unknown }>('SELECT count(*) AS n FROM events')
    return num(r.rows[0]?.n ?? 0)
  }

  async getPayment(paymentId: string, opts: AbortOptions = {}): Promise<PaymentRecord | undefined> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query('SELECT * FROM payments WHERE payment_id = $1', [paymentId])
    return r.rows[0] === undefined ? undefined : toPayment(r.rows[0])
  }

  async listPayments(filter: PaymentFilter, opts: AbortOptions = {}): Promise<PaymentRecord[]> {
    throwIfAborted(opts.signal)
    const limit = Math.min(filter.limit ?? DEFAULT_PAYMENTS_LIMIT, MAX_PAYMENTS_LIMIT)
    const where: string[] = []
    const params: unknown[] = []
    if (filter.venue !== undefined) {
      params.push(filter.venue)
      where.push(`venue = $${params.length}`)
    }
    if (filter.status !== undefined) {
      params.push(filter.status)
      where.push(`status = $${params.length}`)
    }
    params.push(limit)
    const r = await this.sql.query(
      `SELECT * FROM payments ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY queued_at DESC, payment_id DESC LIMIT $${params.length}`,
      params,
    )
    return r.rows.map(toPayment)
  }

  async *scanPayments(filter: { venue?: string }, opts: AbortOptions = {}): AsyncIterable<PaymentRecord> {
    // keyset pages: no cursor held open across yields
    let after: [number, string] | undefined
    for (;;) {
      throwIfAborted(opts.signal)
      const params: unknown[] = []
      const where: string[] = []
      if (filter.venue !== undefined) {
        params.push(filter.venue)
        where.push(`venue = $${params.length}`)
      }
      if (after !== undefined) {
        params.push(after[0], after[1])
        where.push(`(queued_at, payment_id) > ($${params.length - 1}, $${params.length})`)
      }
      const r = await this.sql.query(
        `SELECT * FROM payments ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY queued_at, payment_id LIMIT 500`,
        params,
      )
      for (const row of r.rows) yield toPayment(row)
      if (r.rows.length < 500) return
      const last = r.rows[r.rows.length - 1]!
      after = [num(last.queued_at), String(last.payment_id)]
    }
  }

  async listActivePayments(opts: AbortOptions = {}): Promise<string[]> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query<{ payment_id: string }>(
      `SELECT payment_id FROM payments WHERE status IN ('queued', 'processing') ORDER BY queued_at, payment_id`,
    )
    return r.rows.map((x) => x.payment_id)
  }

  async claimPayments(ids: string[], owner: string, now: number, leaseMs: number): Promise<string[]> {
    if (ids.length === 0) return []
    const r = await this.sql.transaction((tx) =>
      tx.query<{ payment_id: string }>(
        `UPDATE payments SET lease_owner = $2, lease_until = $3
         WHERE payment_id IN (
           SELECT payment_id FROM payments
           WHERE payment_id = ANY($1::text[]) AND status IN ('queued', 'processing')
             AND (lease_until IS NULL OR lease_until <= $4 OR lease_owner = $2)
           FOR UPDATE SKIP LOCKED)
         RETURNING payment_id`,
        [ids, owner, now + leaseMs, now],
      ),
    )
    const claimed = new Set(r.rows.map((x) => x.payment_id))
    return ids.filter((id) => claimed.has(id))
  }

  async releasePayments(owner: string, ids?: string[]): Promise<void> {
    if (ids !== undefined && ids.length === 0) return
    await this.sql.query(
      ids === undefined
        ? 'UPDATE payments SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1'
        : 'UPDATE payments SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1 AND payment_id = ANY($2::text[])',
      ids === undefined ? [owner] : [owner, ids],
    )
  }

  async aggregatePayments(venue?: string, opts: AbortOptions = {}): Promise<PaymentAggregate[]> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query(
      `${REPORT_SQL} ${venue === undefined ? '' : 'WHERE venue = $1'} GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3`,
      venue === undefined ? [] : [venue],
    )
    return r.rows.map((x) => ({
      venue: String(x.venue),
      status: x.status as PaymentStatus,
      currency: String(x.currency),
      offline: x.offline === true,
      partitionLoss: x.partition_loss === true,
      code: x.code === null ? null : String(x.code),
      violator: x.violator === null || x.violator === undefined ? null : String(x.violator),
      count: num(x.n),
      amountMinor: num(x.amount),
    }))
  }

  async getNullifier(nullifier: string, opts: AbortOptions = {}): Promise<string | undefined> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query<{ payment_id: string }>(
      'SELECT payment_id FROM nullifiers WHERE nullifier = $1',
      [nullifier],
    )
    return r.rows[0]?.payment_id
  }

  async getPendingRelease(
    reservationId: string,
    opts: AbortOptions = {},
  ): Promise<PendingRelease | undefined> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query('SELECT * FROM releases WHERE reservation_id = $1 AND consumed = false', [
      reservationId,
    ])
    const row = r.rows[0]
    if (row === undefined) return undefined
    return {
      reservationId: String(row.reservation_id),
      origin: String(row.origin),
      eventId: String(row.event_id),
    }
  }

  async getWebhook(id: string, opts: AbortOptions = {}): Promise<WebhookEndpoint | undefined> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query('SELECT * FROM webhooks WHERE id = $1', [id])
    const row = r.rows[0]
    return row === undefined ? undefined : toWebhook(row)
  }

  async listWebhooks(opts: AbortOptions = {}): Promise<WebhookEndpoint[]> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query('SELECT * FROM webhooks ORDER BY created_at, id')
    return r.rows.map(toWebhook)
  }

  async listOutbox(opts: AbortOptions = {}): Promise<OutboxEntry[]> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query('SELECT * FROM outbox ORDER BY pos')
    return r.rows.map(toOutbox)
  }

  async claimOutbox(
    owner: string,
    now: number,
    leaseMs: number,
    limit: number,
    endpointId?: string,
  ): Promise<OutboxEntry[]> {
    const r = await this.sql.transaction((tx) =>
      tx.query(
        `UPDATE outbox SET lease_owner = $1, lease_until = $3
         WHERE id IN (
           SELECT o.id FROM outbox o
           WHERE o.next_attempt_at <= $2 ${endpointId === undefined ? '' : 'AND o.endpoint_id = $5'}
             AND (o.lease_until IS NULL OR o.lease_until <= $2)
             AND NOT EXISTS (SELECT 1 FROM outbox b
                             WHERE b.endpoint_id = o.endpoint_id AND b.key = o.key AND b.pos < o.pos)
           ORDER BY o.pos LIMIT $4
           FOR UPDATE SKIP LOCKED)
         RETURNING *`,
        endpointId === undefined
          ? [owner, now, now + leaseMs, limit]
          : [owner, now, now + leaseMs, limit, endpointId],
      ),
    )
    return r.rows.sort((a, b) => num(a.pos) - num(b.pos)).map(toOutbox)
  }

  async releaseOutbox(owner: string, ids?: string[]): Promise<void> {
    if (ids !== undefined && ids.length === 0) return
    await this.sql.query(
      ids === undefined
        ? 'UPDATE outbox SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1'
        : 'UPDATE outbox SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1 AND id = ANY($2::text[])',
      ids === undefined ? [owner] : [owner, ids],
    )
  }

  async nextOutboxDue(opts: AbortOptions & { endpointId?: string } = {}): Promise<number | undefined> {
    throwIfAborted(opts.signal)
    const one = opts.endpointId !== undefined
    const r = await this.sql.query<{ due: unknown }>(
      `SELECT min(greatest(o.next_attempt_at, coalesce(o.lease_until, 0))) AS due FROM outbox o
       WHERE ${one ? 'o.endpoint_id = $1 AND' : ''} NOT EXISTS (SELECT 1 FROM outbox b
                         WHERE b.endpoint_id = o.endpoint_id AND b.key = o.key AND b.pos < o.pos)`,
      one ? [opts.endpointId] : [],
    )
    return optNum(r.rows[0]?.due)
  }

  async dueEndpoints(now: number, opts: AbortOptions = {}): Promise<string[]> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query<{ endpoint_id: string }>(
      `SELECT DISTINCT o.endpoint_id FROM outbox o JOIN webhooks w ON w.id = o.endpoint_id AND NOT w.disabled
       WHERE o.next_attempt_at <= $1 AND (o.lease_until IS NULL OR o.lease_until <= $1)`,
      [now],
    )
    return r.rows.map((x) => x.endpoint_id)
  }

  async webhookBacklog(opts: AbortOptions = {}): Promise<WebhookBacklog[]> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query(
      'SELECT endpoint_id, count(*) AS n, min(created_at) AS oldest FROM outbox GROUP BY endpoint_id',
    )
    return r.rows.map((x) => {
      const b: WebhookBacklog = { endpointId: String(x.endpoint_id), pending: num(x.n) }
      const oldest = optNum(x.oldest)
      if (oldest !== undefined) b.oldestPendingAt = oldest
      return b
    })
  }

  async listWebhookEvents(filter: EventLogFilter, opts: AbortOptions = {}): Promise<EventLogEntry[]> {
    throwIfAborted(opts.signal)
    const where: string[] = []
    const params: unknown[] = []
    const add = (clause: (p: string) => string, value: unknown): void => {
      params.push(value)
      where.push(clause(`$${params.length}`))
    }
    const asc = filter.order === 'asc'
    if (filter.types !== undefined) add((p) => `type = ANY(${p}::text[])`, filter.types)
    if (filter.paymentId !== undefined) add((p) => `payment_id = ${p}`, filter.paymentId)
    if (filter.createdGte !== undefined) add((p) => `created_at >= ${p}`, filter.createdGte)
    if (filter.createdLt !== undefined) add((p) => `created_at < ${p}`, filter.createdLt)
    if (filter.afterPos !== undefined) add((p) => `pos ${asc ? '>' : '<'} ${p}`, filter.afterPos)
    params.push(filter.limit)
    const r = await this.sql.query(
      `SELECT * FROM webhook_events ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY pos ${asc ? 'ASC' : 'DESC'} LIMIT $${params.length}`,
      params,
    )
    return r.rows.map(toLogEntry)
  }

  async getWebhookEvent(id: string, opts: AbortOptions = {}): Promise<EventLogEntry | undefined> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query('SELECT * FROM webhook_events WHERE id = $1', [id])
    return r.rows[0] === undefined ? undefined : toLogEntry(r.rows[0])
  }

  async redeliverEvents(req: RedeliverRequest, opts: AbortOptions = {}): Promise<number> {
    throwIfAborted(opts.signal)
    const params: unknown[] = [
      `${String(req.now).padStart(16, '0')}-r${randomBytes(6).toString('hex')}-`,
      req.endpointId,
      req.now,
    ]
    const where: string[] = []
    const add = (clause: (p: string) => string, value: unknown): void => {
      params.push(value)
      where.push(clause(`$${params.length}`))
    }
    if (req.eventIds !== undefined) add((p) => `id = ANY(${p}::text[])`, req.eventIds)
    if (req.since !== undefined) add((p) => `created_at >= ${p}`, req.since)
    if (req.until !== undefined) add((p) => `created_at < ${p}`, req.until)
    if (req.types !== undefined) add((p) => `type = ANY(${p}::text[])`, req.types)
    if (where.length === 0) return 0
    // after what the endpoint has pending (new positions), in the log's order
    const r = await this.sql.transaction((tx) =>
      tx.query(
        `INSERT INTO outbox (id, endpoint_id, key, body, event_id, attempts, next_attempt_at, created_at)
         SELECT $1::text || lpad((row_number() OVER (ORDER BY pos))::text, 8, '0'), $2, payment_id, body, id, 0, $3::bigint, $3::bigint
         FROM webhook_events WHERE ${where.join(' AND ')} ORDER BY pos`,
        params,
      ),
    )
    return r.rowCount
  }

  async pruneWebhookEvents(
    before: number,
    opts: AbortOptions = {},
  ): Promise<{ events: number; deliveries: number }> {
    throwIfAborted(opts.signal)
    return this.sql.transaction(async (tx) => {
      // a disabled endpoint's deliveries go with the log entries they deliver
      const d = await tx.query(
        `DELETE FROM outbox o USING webhooks w
         WHERE w.id = o.endpoint_id AND w.disabled AND o.created_at < $1`,
        [before],
      )
      // what an enabled endpoint still waits for stays
      const e = await tx.query(
        `DELETE FROM webhook_events e WHERE e.created_at < $1
         AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = e.id)`,
        [before],
      )
      return { events: e.rowCount, deliveries: d.rowCount }
    })
  }

  async listDeadLetters(opts: AbortOptions = {}): Promise<OutboxEntry[]> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query('SELECT * FROM dead_letters ORDER BY created_at, id')
    return r.rows.map(toOutbox)
  }

  async listRevocations(venueId?: string, opts: AbortOptions = {}): Promise<RevocationRecord[]> {
    throwIfAborted(opts.signal)
    const r =
      venueId === undefined
        ? await this.sql.query('SELECT * FROM revocations ORDER BY venue_id, terminal')
        : await this.sql.query('SELECT * FROM revocations WHERE venue_id = $1 ORDER BY terminal', [venueId])
    return r.rows.map((row) => ({
      venueId: String(row.venue_id),
      terminal: String(row.terminal),
      effectiveAt: num(row.effective_at),
      reason: String(row.reason),
      issuedAt: num(row.issued_at),
      document: String(row.document),
      receivedAt: num(row.received_at),
    }))
  }

  async listCheckpoints(venueId: string, opts: AbortOptions = {}): Promise<CheckpointRecord[]> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query('SELECT * FROM sync_checkpoints WHERE venue_id = $1 ORDER BY terminal', [
      venueId,
    ])
    return r.rows.map((row) => ({
      venueId: String(row.venue_id),
      terminal: String(row.terminal),
      at: num(row.at),
      receivedAt: num(row.received_at),
    }))
  }

  async listCreatedBefore(
    venueId: string,
    before: number,
    limit: number,
    opts: AbortOptions = {},
  ): Promise<string[]> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query(
      `SELECT payment_id FROM payments WHERE venue = $1 AND status = 'created' AND queued_at <= $2
       ORDER BY queued_at, payment_id LIMIT $3`,
      [venueId, before, limit],
    )
    return r.rows.map((row) => String(row.payment_id))
  }

  async listAbandoned(
    venueId: string,
    since: number,
    limit: number,
    opts: AbortOptions = {},
  ): Promise<string[]> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query(
      `SELECT payment_id FROM payments WHERE venue = $1 AND status = 'abandoned' AND completed_at >= $2
       ORDER BY completed_at DESC, payment_id DESC LIMIT $3`,
      [venueId, since, limit],
    )
    return r.rows.map((row) => String(row.payment_id))
  }

  async getDenylist(venueId: string, opts: AbortOptions = {}): Promise<DenylistState | undefined> {
    throwIfAborted(opts.signal)
    const r = await this.sql.query('SELECT * FROM denylists WHERE venue_id = $1', [venueId])
    const row = r.rows[0]
    if (row === undefined) return undefined
    return {
      venueId: String(row.venue_id),
      version: num(row.version),
      blockedBins: JSON.parse(String(row.blocked_bins)) as string[],
      denylistCardKeys: JSON.parse(String(row.denylist_card_keys)) as string[],
      updatedAt: num(row.updated_at),
    }
  }
}

function toWebhook(r: Row): WebhookEndpoint {
  const w: WebhookEndpoint = {
    id: String(r.id),
    url: String(r.url),
    secret: String(r.secret),
    createdAt: num(r.created_at),
  }
  if (r.events !== null && r.events !== undefined)
    w.events = r.events === '' ? [] : (String(r.events).split(',') as WebhookEventType[])
  if (r.disabled === true) {
    w.disabled = true
    const at = optNum(r.disabled_at)
    if (at !== undefined) w.disabledAt = at
    const reason = optStr(r.disabled_reason)
    if (reason !== undefined) w.disabledReason = reason
  }
  const previous = JSON.parse(String(r.previous_secrets ?? '[]')) as WebhookEndpoint['previousSecrets']
  if (previous !== undefined && previous.length > 0) w.previousSecrets = previous
  const lastSuccessAt = optNum(r.last_success_at)
  if (lastSuccessAt !== undefined) w.lastSuccessAt = lastSuccessAt
  const lastErrorAt = optNum(r.last_error_at)
  if (lastErrorAt !== undefined) w.lastErrorAt = lastErrorAt
  const lastError = optStr(r.last_error)
  if (lastError !== undefined) w.lastError = lastError
  const failingSince = optNum(r.failing_since)
  if (failingSince !== undefined) w.failingSince = failingSince
  return w
}

/** The central store on SQL: PGlite in a directory, or a PostgreSQL server. Migrated on open(). */
export function createSqlStore(init: SqlStoreInit): CentralStore {
  return new SqlCentralStore(init)
}
