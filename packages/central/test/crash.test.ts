import { readFile } from 'node:fs/promises'
import { type CentralStore, createSqlStore } from '@nullmesh/central'
import { afterEach, describe, expect, it } from 'vitest'
import { type Child, killAll, startChild } from './fixtures/children.js'
import { api, TempDirs, VenueFixture, waitFor } from './fixtures/helpers.js'
import { freshDatabase, TEST_PG } from './fixtures/pg.js'

const backends: Array<'pglite' | 'postgres'> = TEST_PG === undefined ? ['pglite'] : ['pglite', 'postgres']

for (const backend of backends) {
  describe(`crash safety on ${backend}`, () => {
    const temp = new TempDirs()
    const children: Child[] = []
    const drops: Array<() => Promise<void>> = []

    afterEach(async () => {
      await killAll(children)
      for (const d of drops.splice(0)) await d()
      await temp.cleanup()
    })

    it('kill -9 mid-ingest and mid-settlement, restart: everything acknowledged is there, nothing duplicated, settlement completes once', async () => {
      const dir = await temp.make()
      const venue = await VenueFixture.create(dir, 'stadium', 3)
      const dataDir = `${dir}/central`
      let storeUrl: string | undefined
      if (backend === 'postgres') {
        const db = await freshDatabase()
        drops.push(db.drop)
        storeUrl = db.url
      }
      const N = 800
      const events: string[] = []
      const reservations: string[] = []
      for (let i = 0; i < N; i++) {
        const p = venue.pay(venue.t(i % 3))
        reservations.push(p.reservation.idHex)
        events.push(
          Buffer.from(p.reservation.bytes).toString('base64url'),
          Buffer.from(p.commit.bytes).toString('base64url'),
        )
      }
      // 200 payments (reservation + commit) per batch
      const batches: string[][] = []
      for (let i = 0; i < events.length; i += 400) batches.push(events.slice(i, i + 400))

      const first = await startChild(dataDir, venue.bundle.dir, storeUrl)
      children.push(first)
      const inflight = batches.map((b) =>
        api(first.url, 'POST', '/v1/sync', { events: b }).catch(() => undefined),
      )
      await Promise.race(inflight)
      first.proc.kill('SIGKILL')
      await first.exited
      const answers = await Promise.all(inflight)
      const acknowledged = answers.flatMap((r, i) => (r?.status === 200 ? [i] : []))
      // it really was killed mid-way: some batches never got an answer
      expect(acknowledged.length).toBeGreaterThan(0)
      expect(acknowledged.length).toBeLessThan(batches.length)

      const second = await startChild(dataDir, venue.bundle.dir, storeUrl)
      children.push(second)
      // every payment of every acknowledged batch survived the kill, committed
      for (const i of acknowledged) {
        for (const id of reservations.slice(i * 200, (i + 1) * 200)) {
          const r = await api(second.url, 'GET', `/v1/payments/${id}`)
          expect(r.status, `payment ${id} of acknowledged batch ${i}`).toBe(200)
          expect(r.body.status).not.toBe('created')
        }
      }
      let stored = 0
      for (const b of batches) {
        const r = await api(second.url, 'POST', '/v1/sync', { events: b })
        expect(r.status).toBe(200)
        for (const x of r.body.results) {
          expect(x.status === 'stored' || x.status === 'duplicate').toBe(true)
          if (x.status === 'stored') stored++
        }
      }
      expect(stored).toBeGreaterThan(0)
      expect(stored).toBeLessThan(events.length)
      await waitFor(
        'settlement',
        async () => (await api(second.url, 'GET', '/v1/venues/stadium/summary')).body.settled.completed === N,
        60_000,
      )
      second.proc.kill('SIGTERM')
      expect(await second.exited).toBe(0)

      const store: CentralStore =
        storeUrl === undefined
          ? createSqlStore({ kind: 'pglite', path: `${dataDir}/central-pg` })
          : createSqlStore({ kind: 'postgres', url: storeUrl })
      await store.open()
      try {
        expect(await store.countEvents()).toBe(events.length)
        expect(await store.listActivePayments()).toEqual([])
        const payments = await store.listPayments({ limit: 1000, status: 'completed' })
        expect(payments).toHaveLength(N)
      } finally {
        await store.close()
      }
      const journal = (await readFile(`${dataDir}/issuer.jsonl`, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).paymentId)
      expect(journal).toHaveLength(N)
      expect(new Set(journal).size).toBe(N)
    }, 180_000)
  })
}
