import { createCentralService, signWebhookPayload, verifyWebhookSignature } from '@nullmesh/central'
import { afterEach, describe, expect, it } from 'vitest'
import { api, freePort, Receiver, TempDirs, VenueFixture, waitFor } from './fixtures/helpers.js'

const ADMIN = 'webhook-admin-token'

describe('verifyWebhookSignature', () => {
  const body = '{"id":"evt_1","type":"payment.completed"}'
  const secret = 'whsec_test_secret_value'
  const t = 1_700_000_000_000

  it('accepts the exact body signed with the secret within the tolerance', () => {
    const header = signWebhookPayload(body, secret, t)
    expect(header).toMatch(/^t=1700000000000,v1=[0-9a-f]{64}$/)
    expect(verifyWebhookSignature(body, header, secret, { now: t + 1000 })).toBe(true)
    expect(verifyWebhookSignature(Buffer.from(body), header, secret, { now: t, toleranceMs: 0 })).toBe(true)
  })

  it('rejects another body, another secret, a stale timestamp or a malformed header', () => {
    const header = signWebhookPayload(body, secret, t)
    expect(verifyWebhookSignature(`${body} `, header, secret, { now: t })).toBe(false)
    expect(verifyWebhookSignature(body, header, 'whsec_other', { now: t })).toBe(false)
    expect(verifyWebhookSignature(body, header, secret, { now: t + 5 * 60_000 + 1 })).toBe(false)
    expect(verifyWebhookSignature(body, header, secret, { now: t + 60_000, toleranceMs: 1000 })).toBe(false)
    // the timestamp is signed: moving it invalidates the signature
    expect(
      verifyWebhookSignature(body, header.replace('t=1700000000000', 't=1700000000001'), secret, { now: t }),
    ).toBe(false)
    expect(verifyWebhookSignature(body, undefined, secret)).toBe(false)
    expect(verifyWebhookSignature(body, 'v1=abc', secret, { now: t })).toBe(false)
    expect(verifyWebhookSignature(body, `t=${t},v1=zz`, secret, { now: t })).toBe(false)
  })
})

describe('webhook delivery', () => {
  const temp = new TempDirs()
  const cleanups: Array<() => Promise<void>> = []

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
    await temp.cleanup()
  })

  it('retries with backoff while the receiver is down, and delivers once it is up; the outbox survives a restart', async () => {
    const dir = await temp.make()
    const venue = await VenueFixture.create(dir, 'hall', 3)
    const port = await freePort()
    const init = {
      dataDir: `${dir}/c`,
      venues: [venue.bundle],
      adminToken: ADMIN,
      settleIntervalMs: 0,
      webhookRetry: { initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 1000, timeoutMs: 2000 },
    }
    let central = createCentralService(init)
    cleanups.push(() => central.stop())
    await central.start()

    // admin endpoints need the token
    expect(
      (await api(central.url, 'POST', '/v1/webhooks', { url: `http://127.0.0.1:${port}/` })).status,
    ).toBe(401)
    expect(
      (await api(central.url, 'POST', '/v1/webhooks', { url: `http://127.0.0.1:${port}/` }, 'wrong')).status,
    ).toBe(401)
    expect((await api(central.url, 'POST', '/v1/webhooks', { url: 'ftp://x' }, ADMIN)).body.message).toMatch(
      /url/,
    )
    const reg = await api(
      central.url,
      'POST',
      '/v1/webhooks',
      { url: `http://127.0.0.1:${port}/hooks`, secret: 'merchant-secret-0123456789-abcdefghij' },
      ADMIN,
    )
    expect(reg.status).toBe(201)
    expect(reg.body).toMatchObject({ secret: 'merchant-secret-0123456789-abcdefghij' })
    expect((await api(central.url, 'GET', '/v1/webhooks', undefined, ADMIN)).body.webhooks).toHaveLength(1)

    const p = venue.pay(venue.t(0))
    await central.ingest([p.reservation.bytes, p.commit.bytes])
    await central.settleNow()
    // nothing listens on the port: deliveries fail and are retried
    await waitFor('failed attempts', async () => {
      const outbox = await central.store.listOutbox()
      return outbox.length === 3 && outbox[0]!.attempts >= 2
    })
    // the payment's later notifications wait behind its first: never delivered out of order
    expect((await central.store.listOutbox()).map((e) => e.attempts > 0)).toEqual([true, false, false])

    // restart central: the outbox is durable
    await central.stop()
    central = createCentralService(init)
    await central.start()
    expect(await central.store.listOutbox()).toHaveLength(3)

    const receiver = new Receiver()
    cleanups.push(() => receiver.close())
    await receiver.listen(port)
    await waitFor(
      'delivery',
      async () => receiver.received.length >= 3 && (await central.store.listOutbox()).length === 0,
    )
    const types = receiver.received.map((h) => h.body.type)
    expect(types).toEqual(['payment.queued', 'payment.processing', 'payment.completed'])
    for (const h of receiver.received) {
      expect(
        verifyWebhookSignature(
          h.raw,
          h.headers['nullmesh-signature'] as string,
          'merchant-secret-0123456789-abcdefghij',
        ),
      ).toBe(true)
      expect(h.body.data.payment.paymentId).toBe(p.reservation.idHex)
    }
    expect(receiver.received[2]!.body.data.payment).toMatchObject({
      status: 'completed',
      queuedAt: p.reservation.event.ts,
    })
  })

  it('never dead-letters: an endpoint failing for the whole schedule is disabled, its deliveries kept, and re-enabled it gets them in order', async () => {
    const dir = await temp.make()
    const venue = await VenueFixture.create(dir, 'yard', 2)
    const receiver = new Receiver()
    receiver.status = 500
    cleanups.push(() => receiver.close())
    await receiver.listen()
    const central = createCentralService({
      dataDir: `${dir}/c`,
      venues: [venue.bundle],
      adminToken: ADMIN,
      settleIntervalMs: 0,
      webhookRetry: { initialDelayMs: 10, maxDelayMs: 20, maxAttempts: 3 },
    })
    cleanups.push(() => central.stop())
    await central.start()
    const { id } = (await api(central.url, 'POST', '/v1/webhooks', { url: receiver.url }, ADMIN)).body
    const p = venue.pay(venue.t(0), {}, 2)
    await central.ingest([p.reservation.bytes, p.commit.bytes])
    const disabled = await waitFor('disabled', async () => {
      const w = (await api(central.url, 'GET', `/v1/webhooks/${id}`, undefined, ADMIN)).body
      return w.disabled === true ? w : undefined
    })
    expect(disabled.disabledReason).toMatch(/whole retry schedule.*HTTP 500/)
    expect(disabled.delivery).toMatchObject({ pending: 1, lastError: 'HTTP 500', lastSuccessAt: null })
    expect(await central.store.listDeadLetters()).toHaveLength(0)
    await central.settleNow()
    expect((await central.store.listOutbox()).filter((e) => e.endpointId === id)).toHaveLength(3)
    receiver.status = 200
    expect(
      (await api(central.url, 'PATCH', `/v1/webhooks/${id}`, { disabled: false }, ADMIN)).body,
    ).toMatchObject({
      disabled: false,
      disabledReason: null,
    })
    await waitFor('all three', () => receiver.received.length === 3)
    expect(receiver.received.map((h) => h.body.type)).toEqual([
      'payment.queued',
      'payment.processing',
      'payment.completed',
    ])
    const healthy = (await api(central.url, 'GET', `/v1/webhooks/${id}`, undefined, ADMIN)).body
    expect(healthy.delivery).toMatchObject({ pending: 0, oldestPendingAt: null, failingSince: null })
    expect(healthy.delivery.lastSuccessAt).toBeGreaterThan(0)
  })
})
