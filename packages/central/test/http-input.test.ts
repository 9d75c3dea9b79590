import { type CentralService, createCentralService, createSimulatedIssuer } from '@nullmesh/central'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { api, b64, hex, TempDirs, VenueFixture } from './fixtures/helpers.js'

// Issue 17, item 4: no route coerces a body's types (a string for an array, a number for a string,
// one element for a scalar) or silently drops unknown fields, and every 4xx is `{ code, message }`.
describe('[no coercion] central HTTP input', () => {
  const temp = new TempDirs()
  const ADMIN = 'admin-token-0123456789'
  let venue: VenueFixture
  let central: CentralService

  beforeAll(async () => {
    const dir = await temp.make()
    venue = await VenueFixture.create(dir, 'arena', 3)
    central = createCentralService({
      dataDir: `${dir}/central`,
      venues: [venue.bundle],
      issuer: createSimulatedIssuer({ seed: 1 }),
      settleIntervalMs: 0,
      adminToken: ADMIN,
    })
    await central.start()
  })

  afterAll(async () => {
    await central?.stop()
    await temp.cleanup()
  })

  const bad = async (method: string, path: string, body: unknown, token?: string) => {
    const r = await api(central.url, method, path, body, token)
    expect(r.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(400)
    expect(r.body).toMatchObject({ code: 'ERR_INVALID_REQUEST', message: expect.any(String) })
    expect(Object.keys(r.body).sort()).toEqual(['code', 'message'])
    return r
  }

  it('POST /v1/sync: a string for the array, numbers for strings, unknown fields → 400', async () => {
    const p = venue.pay(venue.t(0))
    await bad('POST', '/v1/sync', { events: 'AAAA' })
    await bad('POST', '/v1/sync', { events: [123456] })
    await bad('POST', '/v1/sync', { events: [true] })
    await bad('POST', '/v1/sync', { events: [null] })
    await bad('POST', '/v1/sync', { events: [b64(p.reservation)], more: 1 })
    await bad('POST', '/v1/sync', [b64(p.reservation)])
    await bad('POST', '/v1/sync', 'AAAA')
    await bad('POST', '/v1/sync', null)
    expect(await central.store.countEvents()).toBe(0)
  })

  it('POST /v1/authorize and /v1/authorize/void: one-element arrays and numbers are not strings', async () => {
    const r = venue.reserve(venue.t(0))
    for (const path of ['/v1/authorize', '/v1/authorize/void']) {
      await bad('POST', path, { reservation: [b64(r)] })
      await bad('POST', path, { reservation: 123456 })
      await bad('POST', path, { reservation: b64(r), extra: true })
    }
    expect(await central.store.countEvents()).toBe(0)
  })

  it('admin routes: deny list and webhooks are not coerced either', async () => {
    const before = await api(central.url, 'GET', `/v1/venues/${venue.id}/denylist`)
    await bad('POST', `/v1/venues/${venue.id}/denylist`, { blockedBins: '412345' }, ADMIN)
    await bad('POST', `/v1/venues/${venue.id}/denylist`, { blockedBins: [412345] }, ADMIN)
    await bad('POST', `/v1/venues/${venue.id}/denylist`, { blockedBins: [], bogus: 1 }, ADMIN)
    expect((await api(central.url, 'GET', `/v1/venues/${venue.id}/denylist`)).body).toEqual(before.body)
    await bad('POST', '/v1/webhooks', { url: 12345 }, ADMIN)
    await bad('POST', '/v1/webhooks', { url: ['http://127.0.0.1:1/x'] }, ADMIN)
    expect((await api(central.url, 'GET', '/v1/webhooks', undefined, ADMIN)).body.webhooks).toEqual([])
  })

  it('query strings still read numbers (they are text), but not garbage', async () => {
    expect((await api(central.url, 'GET', '/v1/payments?limit=5')).status).toBe(200)
    await bad('GET', '/v1/payments?limit=5x', undefined)
    await bad('GET', '/v1/payments?limit=1.5', undefined)
    await bad('GET', '/v1/payments?bogus=1', undefined)
  })

  it('POST /v1/payments/status: ids must be 1–500 hex ids of 64 characters', async () => {
    const ok = await api(central.url, 'POST', '/v1/payments/status', { ids: ['0'.repeat(64)] })
    expect(ok.status).toBe(200)
    expect(ok.body).toEqual({ payments: [] }) // unknown ids are left out, not an error
    await bad('POST', '/v1/payments/status', { ids: [] }, undefined)
    await bad('POST', '/v1/payments/status', { ids: ['A'.repeat(64)] }, undefined)
    await bad('POST', '/v1/payments/status', { ids: '0'.repeat(64) }, undefined)
    await bad(
      'POST',
      '/v1/payments/status',
      { ids: Array.from({ length: 501 }, () => '0'.repeat(64)) },
      undefined,
    )
  })

  it('GET /v1/terminals/:key/events: one terminal’s own events back, paged in seq order [own events]', async () => {
    const t = venue.t(1)
    const other = venue.t(2)
    const key = hex(t.key.publicKey)
    const a = venue.pay(t)
    const b = venue.pay(t)
    const theirs = venue.pay(other)
    const sent = [a.reservation, a.commit, b.reservation, b.commit, theirs.reservation]
    const r = await api(central.url, 'POST', '/v1/sync', { events: sent.map(b64) })
    expect(r.status).toBe(200)
    const all = await api(central.url, 'GET', `/v1/terminals/${key}/events`)
    expect(all.status).toBe(200)
    expect(all.body).toEqual({
      events: [a.reservation, a.commit, b.reservation, b.commit].map(b64),
      next: null,
    })
    const p1 = await api(central.url, 'GET', `/v1/terminals/${key}/events?after=0&limit=3`)
    expect(p1.body.events).toEqual([a.reservation, a.commit, b.reservation].map(b64))
    expect(p1.body.next).toBe(b.reservation.event.seq)
    const p2 = await api(central.url, 'GET', `/v1/terminals/${key}/events?after=${p1.body.next}&limit=3`)
    expect(p2.body).toEqual({ events: [b64(b.commit)], next: null })
    // a key central holds nothing of: an empty page, not an error
    const none = await api(central.url, 'GET', `/v1/terminals/${'0'.repeat(64)}/events`)
    expect(none.body).toEqual({ events: [], next: null })
    await bad('GET', `/v1/terminals/${key.toUpperCase()}/events`, undefined)
    await bad('GET', `/v1/terminals/${key}/events?limit=0`, undefined)
    await bad('GET', `/v1/terminals/${key}/events?limit=1001`, undefined)
    await bad('GET', `/v1/terminals/${key}/events?after=-1`, undefined)
    await bad('GET', `/v1/terminals/${key}/events?after=x`, undefined)
  })

  it('long path parameters → 400 { code, message }, not the framework’s 414', async () => {
    await bad('GET', `/v1/payments/${'a'.repeat(200)}`, undefined)
    await bad('GET', `/v1/payments/${'a'.repeat(5000)}`, undefined)
    await bad('GET', `/v1/venues/${'v'.repeat(300)}/policy`, undefined)
    const r = await api(central.url, 'DELETE', `/v1/webhooks/${'w'.repeat(300)}`, undefined, ADMIN)
    expect(r.status).toBe(400)
    expect(r.body).toMatchObject({ code: 'ERR_INVALID_REQUEST' })
  })
})
