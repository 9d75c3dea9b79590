import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createSqlStore } from '@nullmesh/central'
import { afterEach, describe, expect, it } from 'vitest'
import { type Child, killAll, startChild } from './fixtures/children.js'
import { api, Receiver, TempDirs, VenueFixture, waitFor } from './fixtures/helpers.js'
import { freshDatabase, TEST_PG } from './fixtures/pg.js'

const ADMIN = 'admin-token-for-tests'

// Two central processes on one PostgreSQL database (PGlite is one process's database).
describe.skipIf(TEST_PG === undefined)('two central processes on one PostgreSQL database', () => {
  const temp = new TempDirs()
  const children: Child[] = []
  const receivers: Receiver[] = []
  const drops: Array<() => Promise<void>> = []

  afterEach(async () => {
    await killAll(children)
    await Promise.all(receivers.splice(0).map((r) => r.close()))
    for (const d of drops.splice(0)) await d()
    await temp.cleanup()
  })

  it('ingest the same overlapping ledgers at once: every nullifier settled once, every duplicate failed, one webhook per status change', async () => {
    const dir = await temp.make()
    const venue = await VenueFixture.create(dir, 'arena', 3)
    const db = await freshDatabase()
    drops.push(db.drop)
    const receiver = new Receiver()
    receivers.push(receiver)
    await receiver.listen()

    // M payments with distinct nullifiers, and D second commits of one of those nullifiers by
    // another terminal (approved on both sides of a partition)
    const M = 300
    const D = 60
    const wire: string[] = []
    const b64 = (e: { bytes: Uint8Array }): string => Buffer.from(e.bytes).toString('base64url')
    const nullifierOf = new Map<string, string>()
    const firsts: Array<{ nullifier: Buffer }> = []
    for (let i = 0; i < M; i++) {
      const nullifier = randomBytes(32)
      const p = venue.pay(venue.t(i % 3), { nullifier })
      firsts.push({ nullifier })
      nullifierOf.set(p.reservation.idHex, nullifier.toString('hex'))
      wire.push(b64(p.reservation), b64(p.commit))
    }
    for (let i = 0; i < D; i++) {
      const nullifier = firsts[i * 5]!.nullifier
      const p = venue.pay(venue.t((i + 1) % 3), { nullifier })
      nullifierOf.set(p.reservation.idHex, nullifier.toString('hex'))
      wire.push(b64(p.reservation), b64(p.commit))
    }
    // each terminal's ledger holds every event (the mesh replicates); they sync in different orders
    const shuffled = (seed: number): string[] => {
      const out = [...wire]
      let s = seed
      for (let i = out.length - 1; i > 0; i--) {
        s = (s * 1103515245 + 12345) % 2 ** 31
        const j = s % (i + 1)
        ;[out[i], out[j]] = [out[j]!, out[i]!]
      }
      return out
    }
    const ledgers = [wire, shuffled(1), shuffled(2), [...wire].reverse()]

    const a = await startChild(`${dir}/a`, venue.bundle.dir, db.url)
    children.push(a)
    const b = await startChild(`${dir}/b`, venue.bundle.dir, db.url)
    children.push(b)
    const hook = await api(a.url, 'POST', '/v1/webhooks', { url: receiver.url }, ADMIN)
    expect(hook.status).toBe(201)

    const sync = async (url: string, ledger: string[]): Promise<void> => {
      for (let i = 0; i < ledger.length; i += 100) {
        const r = await api(url, 'POST', '/v1/sync', { events: ledger.slice(i, i + 100) })
        expect(r.status, JSON.stringify(r.body)).toBe(200)
        for (const x of r.body.results) expect(x.status).not.toBe('rejected')
      }
    }
    await Promise.all([
      sync(a.url, ledgers[0]!),
      sync(b.url, ledgers[1]!),
      sync(a.url, ledgers[2]!),
      sync(b.url, ledgers[3]!),
    ])

    await waitFor(
      'settlement',
      async () => {
        const s = (await api(b.url, 'GET', '/v1/venues/arena/summary')).body
        return s.settled.completed === M && s.settled.failed === D
      },
      60_000,
    )
    const expectedHooks = 3 * M + D
    await waitFor('webhooks', () => receiver.received.length >= expectedHooks || undefined, 60_000)
    // nothing more arrives
    await new Promise((r) => setTimeout(r, 1000))
    const ids = receiver.received.map((h) => h.body.id as string)
    expect(ids).toHaveLength(expectedHooks)
    expect(new Set(ids).size).toBe(expectedHooks)
    // per payment, in order
    const byPayment = new Map<string, string[]>()
    for (const h of receiver.received) {
      const id = h.body.data.payment.paymentId as string
      byPayment.set(id, [...(byPayment.get(id) ?? []), h.body.type as string])
    }
    for (const types of byPayment.values()) {
      expect([
        ['payment.queued', 'payment.processing', 'payment.completed'].join(),
        'payment.failed',
      ]).toContain(types.join())
    }

    const store = createSqlStore({ kind: 'postgres', url: db.url })
    await store.open()
    try {
      expect(await store.countEvents()).toBe(wire.length)
      const completed = await store.listPayments({ status: 'completed', limit: 1000 })
      const failed = await store.listPayments({ status: 'failed', limit: 1000 })
      expect(completed).toHaveLength(M)
      expect(failed).toHaveLength(D)
      // every nullifier settled exactly once
      const settled = completed.map((p) => nullifierOf.get(p.paymentId))
      expect(new Set(settled).size).toBe(M)
      for (const p of failed) {
        expect(p).toMatchObject({ syncDeclineCode: 'duplicate_nullifier', partitionLoss: true })
        expect(settled).toContain(nullifierOf.get(p.paymentId))
      }
    } finally {
      await store.close()
    }
    // the issuer was asked about each settled payment once, by one process or the other
    const journal = async (d: string): Promise<string[]> =>
      (await readFile(`${d}/issuer.jsonl`, 'utf8').catch(() => ''))
        .trim()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l).paymentId as string)
    const charged = [...(await journal(`${dir}/a`)), ...(await journal(`${dir}/b`))]
    expect(charged).toHaveLength(M)
    expect(new Set(charged).size).toBe(M)
    for (const c of children) c.proc.kill('SIGTERM')
    for (const c of children) expect(await c.exited).toBe(0)
  }, 180_000)
})
