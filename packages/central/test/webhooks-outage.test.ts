import {
  createCentralService,
  DEFAULT_WEBHOOK_SCHEDULE_MS,
  retrySchedule,
  verifyWebhookSignature,
} from '@nullmesh/central'
import { afterEach, describe, expect, it } from 'vitest'
import { api, freePort, Receiver, TempDirs, VenueFixture, waitFor } from './fixtures/helpers.js'

const ADMIN = 'webhook-outage-admin-token'
const HOUR = 3_600_000

describe('long outages lose nothing', () => {
  const temp = new TempDirs()
  const cleanups: Array<() => Promise<void>> = []

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
    await temp.cleanup()
  })

  it('the default schedule: 15 attempts over about three days, seconds first, hours last', () => {
    const schedule = retrySchedule()
    expect(schedule).toEqual([...DEFAULT_WEBHOOK_SCHEDULE_MS])
    expect(schedule.length + 1).toBe(15)
    const total = schedule.reduce((a, b) => a + b, 0)
    expect(total).toBeGreaterThan(71 * HOUR)
    expect(total).toBeLessThan(72 * HOUR)
    expect(schedule[0]).toBe(5_000)
    expect(schedule[schedule.length - 1]).toBe(12 * HOUR)
    // the older exponential options still make a schedule
    expect(retrySchedule({ initialDelayMs: 10, maxDelayMs: 40, maxAttempts: 5 })).toEqual([10, 20, 40, 40])
    expect(() => retrySchedule({ scheduleMs: [] })).toThrow(/scheduleMs/)
  })

  it('a receiver down for more attempts than the old dead-letter limit (15) gets every event, in order, once it is back', async () => {
    const dir = await temp.make()
    const venue = await VenueFixture.create(dir, 'outage', 3)
    const port = await freePort()
    const central = createCentralService({
      dataDir: `${dir}/c`,
      venues: [venue.bundle],
      adminToken: ADMIN,
      settleIntervalMs: 20,
      // the 3-day schedule scaled down: 40 attempts, 25 ms to 100 ms apart
      webhookRetry: { scheduleMs: Array.from({ length: 39 }, (_, i) => Math.min(100, 25 * (i + 1))) },
    })
    cleanups.push(() => central.stop())
    await central.start()
    const secret = 'an-outage-secret-of-at-least-32-bytes'
    const { id } = (
      await api(central.url, 'POST', '/v1/webhooks', { url: `http://127.0.0.1:${port}/hooks`, secret }, ADMIN)
    ).body
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      const p = venue.pay(venue.t(i % 3))
      ids.push(p.reservation.idHex)
      await central.ingest([p.reservation.bytes, p.commit.bytes])
    }
    await central.settleNow()
    // past the old limit: the first delivery of each payment has failed more than 15 times
    await waitFor(
      'more than 15 failed attempts',
      async () => {
        const heads = (await central.store.listOutbox()).filter((e) => e.attempts > 0)
        return heads.length === 5 && heads.every((e) => e.attempts > 15)
      },
      30_000,
    )
    const during = (await api(central.url, 'GET', `/v1/webhooks/${id}`, undefined, ADMIN)).body
    expect(during).toMatchObject({ disabled: false, delivery: { pending: 15, lastSuccessAt: null } })
    expect(during.delivery.lastError).toMatch(/ECONNREFUSED/)
    expect(during.delivery.oldestPendingAgeMs).toBeGreaterThan(0)
    expect(await central.store.listDeadLetters()).toHaveLength(0)

    const receiver = new Receiver()
    cleanups.push(() => receiver.close())
    await receiver.listen(port)
    await waitFor('every event', () => receiver.received.length >= 15, 30_000)
    await new Promise((r) => setTimeout(r, 200))
    expect(receiver.received).toHaveLength(15)
    for (const pid of ids)
      expect(
        receiver.received.filter((h) => h.body.data.payment.paymentId === pid).map((h) => h.body.type),
      ).toEqual(['payment.queued', 'payment.processing', 'payment.completed'])
    for (const h of receiver.received)
      expect(verifyWebhookSignature(h.raw, h.headers['nullmesh-signature'] as string, secret)).toBe(true)
    const after = (await api(central.url, 'GET', `/v1/webhooks/${id}`, undefined, ADMIN)).body
    expect(after.delivery).toMatchObject({ pending: 0, failingSince: null })
    expect(after.delivery.lastSuccessAt).toBeGreaterThan(0)
    expect(await central.store.listDeadLetters()).toHaveLength(0)
  }, 90_000)

  it('retention prunes the event log, never an event still pending for an enabled endpoint; a disabled endpoint’s old deliveries go with it', async () => {
    const dir = await temp.make()
    const venue = await VenueFixture.create(dir, 'retention', 3)
    const healthy = new Receiver()
    cleanups.push(() => healthy.close())
    await healthy.listen()
    const central = createCentralService({
      dataDir: `${dir}/c`,
      venues: [venue.bundle],
      adminToken: ADMIN,
      settleIntervalMs: 0,
      eventRetentionMs: 1_500,
      webhookRetry: { scheduleMs: [60_000] },
    })
    cleanups.push(() => central.stop())
    await central.start()
    const post = async (body: unknown) => (await api(central.url, 'POST', '/v1/webhooks', body, ADMIN)).body
    const ok = await post({ url: healthy.url })
    const down = await post({ url: `http://127.0.0.1:${await freePort()}/`, events: ['payment.completed'] })
    const off = await post({ url: 'http://127.0.0.1:9/' })
    await api(central.url, 'PATCH', `/v1/webhooks/${off.id}`, { disabled: true }, ADMIN)
    const ids: string[] = []
    for (let i = 0; i < 2; i++) {
      const p = venue.pay(venue.t(i))
      ids.push(p.reservation.idHex)
      await central.ingest([p.reservation.bytes, p.commit.bytes])
    }
    await central.settleNow()
    await waitFor('the healthy endpoint', () => healthy.received.length >= 6)
    const log = async () =>
      (await api(central.url, 'GET', '/v1/events?limit=100', undefined, ADMIN)).body.events as Array<{
        id: string
        type: string
      }>
    expect(await log()).toHaveLength(6)
    await new Promise((r) => setTimeout(r, 1_700))
    await central.pruneEvents()
    // what the down (enabled) endpoint still waits for stays: the two payment.completed events
    const kept = await log()
    expect(kept.map((e) => e.type)).toEqual(['payment.completed', 'payment.completed'])
    const outbox = await central.store.listOutbox()
    expect(outbox.filter((e) => e.endpointId === off.id)).toHaveLength(0)
    expect(outbox.filter((e) => e.endpointId === down.id)).toHaveLength(2)
    // once it no longer waits (removed), the next prune takes them
    expect((await api(central.url, 'DELETE', `/v1/webhooks/${down.id}`, undefined, ADMIN)).status).toBe(204)
    await central.pruneEvents()
    expect(await log()).toHaveLength(0)
    expect(
      (await api(central.url, 'GET', `/v1/webhooks/${ok.id}`, undefined, ADMIN)).body.delivery.pending,
    ).toBe(0)
  })
})
