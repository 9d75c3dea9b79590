import { randomBytes } from 'node:crypto'
import {
  type CentralStore,
  createSqlStore,
  type OutboxEntry,
  type PaymentRecord,
  SCHEMA_VERSION,
  StoreConflict,
  type StoredEvent,
} from '@nullmesh/central'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TempDirs } from './fixtures/helpers.js'
import { freshDatabase, TEST_PG } from './fixtures/pg.js'

// The CentralStore contract, run against PGlite always and against a PostgreSQL server when
// NULLMESH_TEST_PG names one (postgres://user@host:port/db; the tests create and drop their own database).

interface Backend {
  name: string
  open: () => Promise<{ store: CentralStore; second: () => CentralStore; cleanup: () => Promise<void> }>
}

const temp = new TempDirs()
const backends: Backend[] = [
  {
    name: 'pglite',
    async open() {
      const dir = await temp.make('nullmesh-store-')
      const store = createSqlStore({ kind: 'pglite', path: `${dir}/db` })
      await store.open()
      return {
        store,
        // PGlite is one process's database: a "second writer" is the same store
        second: () => store,
        cleanup: async () => {
          await store.close()
        },
      }
    },
  },
]
if (TEST_PG !== undefined) {
  backends.push({
    name: 'postgres',
    async open() {
      const db = await freshDatabase()
      const store = createSqlStore({ kind: 'postgres', url: db.url })
      await store.open()
      const others: CentralStore[] = []
      return {
        store,
        second: () => {
          const s = createSqlStore({ kind: 'postgres', url: db.url })
          others.push(s)
          return s
        },
        cleanup: async () => {
          await Promise.all([store, ...others].map((s) => s.close().catch(() => {})))
          await db.drop()
        },
      }
    },
  })
}

afterAll(async () => {
  await temp.cleanup()
})

const hex = (n: number): string => randomBytes(n).toString('hex')

function event(o: Partial<StoredEvent> = {}): StoredEvent {
  return {
    id: hex(32),
    origin: hex(32),
    seq: 1,
    venue: 'v',
    type: 'reservation',
    bytes: 'AAAA',
    receivedAt: 1000,
    ...o,
  }
}

function payment(o: Partial<PaymentRecord> = {}): PaymentRecord {
  return {
    paymentId: hex(32),
    venue: 'v',
    origin: hex(32),
    seq: 1,
    nullifier: hex(32),
    cardKey: hex(16),
    amountMinor: 1250,
    currency: 'EUR',
    method: 'contactless',
    policyVersion: 1,
    queuedAt: 1_700_000_000_000,
    status: 'created',
    flags: [],
    createdAt: 1,
    updatedAt: 1,
    ...o,
  }
}

function outbox(o: Partial<OutboxEntry> = {}): OutboxEntry {
  return {
    id: hex(8),
    endpointId: 'wh_1',
    key: hex(8),
    body: '{}',
    attempts: 0,
    nextAttemptAt: 0,
    createdAt: 0,
    ...o,
  }
}

const strip = ({ rev: _rev, ...p }: PaymentRecord): PaymentRecord => p

for (const backend of backends) {
  describe(`CentralStore contract on ${backend.name}`, () => {
    let store: CentralStore
    let second: () => CentralStore
    let cleanup: () => Promise<void>

    beforeAll(async () => {
      ;({ store, second, cleanup } = await backend.open())
    }, 120_000)
    afterAll(async () => {
      await cleanup()
    })
    /** a second writer on the same database (another process's store) */
    const opened = async (): Promise<CentralStore> => {
      const s = second()
      await s.open()
      return s
    }

    it('is migrated to the current schema on open, and opening again changes nothing', async () => {
      const other = second()
      await other.open()
      await other.open()
      expect(await other.countEvents()).toBeGreaterThanOrEqual(0)
      expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(1)
    })

    it('stores an event once: by (origin, seq) and by id; a second put of either key writes nothing', async () => {
      const e = event()
      const before = await store.countEvents()
      await store.apply([{ op: 'putEvent', event: e }])
      expect(await store.getEvent(e.origin, e.seq)).toEqual(e)
      expect(await store.getEventById(e.id)).toEqual(e)
      expect(await store.countEvents()).toBe(before + 1)
      const other = event({ origin: e.origin, seq: e.seq })
      const p = payment()
      // a conflict anywhere in a batch: nothing of the batch is written
      await expect(
        store.apply([
          { op: 'putPayment', payment: p },
          { op: 'putEvent', event: other },
        ]),
      ).rejects.toBeInstanceOf(StoreConflict)
      await expect(store.apply([{ op: 'putEvent', event: e }])).rejects.toBeInstanceOf(StoreConflict)
      expect(await store.getPayment(p.paymentId)).toBeUndefined()
      expect(await store.getEventById(other.id)).toBeUndefined()
      expect(await store.countEvents()).toBe(before + 1)
    })

    it('listOriginEvents pages one origin’s events in seq order past a seq, others left out', async () => {
      const origin = hex(32)
      const other = hex(32)
      // stored out of order, with a gap at 3 and another origin's events interleaved
      const mine = [5, 1, 4, 2, 12].map((seq) => event({ origin, seq }))
      await store.apply([
        ...mine.map((e) => ({ op: 'putEvent' as const, event: e })),
        { op: 'putEvent', event: event({ origin: other, seq: 2 }) },
      ])
      const seqs = async (after: number, limit: number) =>
        (await store.listOriginEvents(origin, after, limit)).map((e) => e.seq)
      expect(await seqs(0, 100)).toEqual([1, 2, 4, 5, 12])
      expect(await seqs(0, 2)).toEqual([1, 2])
      expect(await seqs(2, 2)).toEqual([4, 5])
      expect(await seqs(5, 2)).toEqual([12])
      expect(await seqs(12, 2)).toEqual([])
      expect(await store.listOriginEvents(hex(32), 0, 10)).toEqual([])
      const first = (await store.listOriginEvents(origin, 0, 1))[0]
      expect(first).toEqual(mine[1])
    })

    it('knownEventIds answers which ids of a batch are stored, in one call', async () => {
      const a = event()
      const b = event()
      await store.apply([{ op: 'putEvent', event: a }])
      expect(await store.knownEventIds([])).toEqual(new Set())
      expect(await store.knownEventIds([a.id, b.id, a.id])).toEqual(new Set([a.id]))
    })

    it('readSet answers for a whole batch what the single getters answer for each key', async () => {
      const e = event()
      const p = payment()
      const release = { reservationId: hex(32), origin: hex(32), eventId: hex(32) }
      await store.apply([
        { op: 'putEvent', event: e },
        { op: 'putPayment', payment: p },
        { op: 'claimNullifier', nullifier: p.nullifier, paymentId: p.paymentId },
        { op: 'putRelease', release },
      ])
      const missing = hex(32)
      const got = await store.readSet({
        ids: [e.id, missing],
        events: [
          { origin: e.origin, seq: e.seq },
          { origin: e.origin, seq: e.seq + 1 },
        ],
        payments: [p.paymentId, missing],
        nullifiers: [p.nullifier, missing],
        releases: [release.reservationId, missing],
      })
      // found once by id and once by (origin, seq)
      expect(got.events).toEqual([e, e])
      expect(got.payments.map(strip)).toEqual([strip((await store.getPayment(p.paymentId))!)])
      expect(got.nullifiers).toEqual(new Map([[p.nullifier, p.paymentId]]))
      expect(got.releases).toEqual([release])
      const none = await store.readSet({ ids: [], events: [], payments: [], nullifiers: [], releases: [] })
      expect(none).toEqual({ events: [], payments: [], nullifiers: new Map(), releases: [] })
    })

    it('a nullifier is held by one payment: a second claim conflicts; only its holder frees it', async () => {
      const n = hex(32)
      await store.apply([{ op: 'claimNullifier', nullifier: n, paymentId: 'a' }])
      await expect(
        (await opened()).apply([{ op: 'claimNullifier', nullifier: n, paymentId: 'b' }]),
      ).rejects.toBeInstanceOf(StoreConflict)
      expect(await store.getNullifier(n)).toBe('a')
      await store.apply([{ op: 'delNullifier', nullifier: n, paymentId: 'b' }])
      expect(await store.getNullifier(n)).toBe('a')
      await store.apply([{ op: 'delNullifier', nullifier: n, paymentId: 'a' }])
      expect(await store.getNullifier(n)).toBeUndefined()
      await store.apply([{ op: 'claimNullifier', nullifier: n, paymentId: 'b' }])
      expect(await store.getNullifier(n)).toBe('b')
    })

    it('payments: a new one conflicts with a stored one; an update names the revision it read', async () => {
      const p = payment({ flags: ['isolated', 'online_unverified'], partitionLoss: true, completedAt: 5 })
      await store.apply([{ op: 'putPayment', payment: p }])
      const read = await store.getPayment(p.paymentId)
      expect(strip(read!)).toEqual(p)
      expect(typeof read!.rev).toBe('number')
      await expect(store.apply([{ op: 'putPayment', payment: p }])).rejects.toBeInstanceOf(StoreConflict)
      // two puts of one payment in a batch: the last one stands, checked against the revision read
      await store.apply([
        { op: 'putPayment', payment: { ...read!, status: 'queued' } },
        { op: 'putPayment', payment: { ...read!, status: 'processing', mode: 'quorum', commitId: 'c' } },
      ])
      const now = await store.getPayment(p.paymentId)
      expect(now).toMatchObject({ status: 'processing', mode: 'quorum', commitId: 'c' })
      // a writer that read before that update loses
      await expect(
        (await opened()).apply([{ op: 'putPayment', payment: { ...read!, status: 'failed' } }]),
      ).rejects.toBeInstanceOf(StoreConflict)
      expect((await store.getPayment(p.paymentId))?.status).toBe('processing')
    })

    it('a Release stored before its reservation and a new payment of that reservation meet on one key', async () => {
      const p = payment()
      const release = { reservationId: p.paymentId, origin: p.origin, eventId: hex(32) }
      await store.apply([{ op: 'putRelease', release }])
      expect(await store.getPendingRelease(p.paymentId)).toEqual(release)
      // a writer that did not see the release cannot create the payment
      await expect(store.apply([{ op: 'putPayment', payment: p }])).rejects.toBeInstanceOf(StoreConflict)
      // one that saw it consumes it in the same batch
      await store.apply([
        { op: 'delRelease', reservationId: p.paymentId },
        { op: 'putPayment', payment: { ...p, status: 'released' } },
      ])
      expect(await store.getPendingRelease(p.paymentId)).toBeUndefined()
      expect((await store.getPayment(p.paymentId))?.status).toBe('released')
      // and a Release of a reservation already known conflicts (the writer must release the payment)
      await expect(store.apply([{ op: 'putRelease', release }])).rejects.toBeInstanceOf(StoreConflict)
      // a pending release may be replaced by a later one of the same reservation
      const q = hex(32)
      await store.apply([{ op: 'putRelease', release: { ...release, reservationId: q } }])
      await store.apply([{ op: 'putRelease', release: { ...release, reservationId: q, eventId: 'e2' } }])
      expect((await store.getPendingRelease(q))?.eventId).toBe('e2')
    })

    it('lists payments newest first by venue and status, scans, lists the active ones, aggregates by SQL', async () => {
      const venue = `venue-${hex(4)}`
      const ps = [
        payment({ venue, queuedAt: 10, status: 'queued', commitId: 'c1', mode: 'quorum' }),
        payment({ venue, queuedAt: 30, status: 'completed', commitId: 'c2', mode: 'quorum' }),
        payment({
          venue,
          queuedAt: 20,
          status: 'failed',
          commitId: 'c3',
          mode: 'quorum',
          declineCode: 'offline_sync_failure',
          syncDeclineCode: 'duplicate_nullifier',
          partitionLoss: true,
          amountMinor: 700,
        }),
        payment({ venue, queuedAt: 25, status: 'failed', mode: 'online', declineCode: 'insufficient_funds' }),
        payment({ venue: `${venue}-other`, queuedAt: 40, status: 'queued' }),
      ]
      await store.apply(ps.map((payment) => ({ op: 'putPayment' as const, payment })))
      const listed = await store.listPayments({ venue })
      expect(listed.map((p) => p.queuedAt)).toEqual([30, 25, 20, 10])
      expect(
        (await store.listPayments({ venue, status: 'failed', limit: 1 })).map((p) => p.queuedAt),
      ).toEqual([25])
      const scanned: number[] = []
      for await (const p of store.scanPayments({ venue })) scanned.push(p.queuedAt)
      expect(scanned.sort((a, b) => a - b)).toEqual([10, 20, 25, 30])
      const active = await store.listActivePayments()
      expect(active).toContain(ps[0]!.paymentId)
      expect(active).not.toContain(ps[1]!.paymentId)
      const agg = await store.aggregatePayments(venue)
      const total = agg.reduce((n, g) => n + g.count, 0)
      expect(total).toBe(4)
      expect(agg.find((g) => g.partitionLoss)).toMatchObject({
        status: 'failed',
        code: 'duplicate_nullifier',
        offline: true,
        amountMinor: 700,
        count: 1,
      })
      expect(agg.find((g) => g.code === 'insufficient_funds')).toMatchObject({ offline: false })
      expect(agg.find((g) => g.status === 'queued')).toMatchObject({ offline: true, amountMinor: 1250 })
    })

    it('settlement claims: FOR UPDATE SKIP LOCKED with a lease; another owner gets none until it lapses or is released', async () => {
      const ps = [
        payment({ status: 'queued' }),
        payment({ status: 'processing' }),
        payment({ status: 'completed' }),
      ]
      await store.apply(ps.map((payment) => ({ op: 'putPayment' as const, payment })))
      const ids = ps.map((p) => p.paymentId)
      const other = second()
      await other.open()
      expect(await store.claimPayments(ids, 'A', 1000, 500)).toEqual(ids.slice(0, 2))
      expect(await other.claimPayments(ids, 'B', 1200, 500)).toEqual([])
      // its own claims stay its own
      expect(await store.claimPayments(ids, 'A', 1200, 500)).toEqual(ids.slice(0, 2))
      // lapsed
      expect(await other.claimPayments(ids, 'B', 1800, 500)).toEqual(ids.slice(0, 2))
      await other.releasePayments('B', [ids[0]!])
      expect(await store.claimPayments(ids, 'A', 1900, 500)).toEqual([ids[0]])
      await store.releasePayments('A')
      await other.releasePayments('B')
      expect(await other.claimPayments(ids, 'B', 1900, 500)).toEqual(ids.slice(0, 2))
      await other.releasePayments('B')
      // a claim does not change the payment's revision (it is not a transition)
      const p = await store.getPayment(ids[0]!)
      await store.apply([{ op: 'putPayment', payment: { ...p!, status: 'processing' } }])
    })

    it('outbox: claims only the oldest undelivered entry of each payment, due and unclaimed; updates free it', async () => {
      const key = hex(8)
      const endpointId = `wh_${hex(4)}`
      const [a, b] = [outbox({ key, endpointId }), outbox({ key, endpointId })]
      const c = outbox({ endpointId, nextAttemptAt: 5000 })
      await store.apply([
        { op: 'putOutbox', entry: a },
        { op: 'putOutbox', entry: b },
        { op: 'putOutbox', entry: c },
      ])
      const mine = (es: OutboxEntry[]): string[] =>
        es.filter((e) => e.endpointId === endpointId).map((e) => e.id)
      expect(mine(await store.listOutbox())).toEqual([a.id, b.id, c.id])
      expect(mine(await store.claimOutbox('A', 1000, 100, 100))).toEqual([a.id])
      expect(mine(await store.claimOutbox('B', 1000, 100, 100))).toEqual([])
      // a failed attempt: rescheduled and unclaimed; b still waits behind it
      await store.apply([
        { op: 'putOutbox', entry: { ...a, attempts: 1, nextAttemptAt: 3000, lastError: 'HTTP 500' } },
      ])
      expect(mine(await store.claimOutbox('B', 2000, 100, 100))).toEqual([])
      expect(mine(await store.claimOutbox('B', 3000, 100, 100))).toEqual([a.id])
      await store.apply([{ op: 'delOutbox', id: a.id }])
      expect(mine(await store.claimOutbox('B', 3000, 100, 100))).toEqual([b.id])
      await store.releaseOutbox('B')
      expect(mine(await store.claimOutbox('A', 3000, 100, 100))).toEqual([b.id])
      await store.apply([
        { op: 'delOutbox', id: b.id },
        { op: 'putDeadLetter', entry: { ...b, attempts: 3, lastError: 'HTTP 500' } },
      ])
      expect((await store.listDeadLetters()).find((e) => e.id === b.id)).toMatchObject({
        attempts: 3,
        lastError: 'HTTP 500',
      })
      expect(await store.nextOutboxDue()).toBeGreaterThanOrEqual(0)
      await store.apply([{ op: 'delOutbox', id: c.id }])
    })

    it('webhook endpoints and deny lists (versions replace exactly the previous one)', async () => {
      const wh = { id: `wh_${hex(4)}`, url: 'http://127.0.0.1:1/', secret: 's', createdAt: 1 }
      await store.apply([{ op: 'putWebhook', endpoint: wh }])
      expect(await store.getWebhook(wh.id)).toEqual(wh)
      expect((await store.listWebhooks()).map((w) => w.id)).toContain(wh.id)
      await store.apply([{ op: 'delWebhook', id: wh.id }])
      expect(await store.getWebhook(wh.id)).toBeUndefined()

      const venueId = `venue-${hex(4)}`
      const d = { venueId, version: 2, blockedBins: ['4000'], denylistCardKeys: [], updatedAt: 1 }
      await store.apply([{ op: 'putDenylist', denylist: d }])
      expect(await store.getDenylist(venueId)).toEqual(d)
      await expect(
        (await opened()).apply([{ op: 'putDenylist', denylist: { ...d, blockedBins: ['5'] } }]),
      ).rejects.toBeInstanceOf(StoreConflict)
      await store.apply([{ op: 'putDenylist', denylist: { ...d, version: 3, blockedBins: [] } }])
      expect((await store.getDenylist(venueId))?.version).toBe(3)
    })
  })
}
