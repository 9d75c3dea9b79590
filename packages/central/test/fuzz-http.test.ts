import { type CentralService, createCentralService, createSimulatedIssuer } from '@nullmesh/central'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fcOptions, fuzzTimeout } from '../../../test/fuzz.js'
import { bodies, headers, methods, paths, send } from '../../../test/fuzz-http.js'
import { b64, TempDirs, VenueFixture } from './fixtures/helpers.js'

// Issue 17, item 7: central's API under arbitrary methods, paths, headers and bodies (hostile event
// bytes among them), over a real socket. Never a 5xx, errors are { code, message }, and nothing a
// terminal or an operator recorded changes unless the request was a valid one (2xx).
describe('[fuzz] central HTTP API', () => {
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
    const p = venue.pay(venue.t(0))
    await central.ingest([p.reservation.bytes, p.commit.bytes])
  })

  afterAll(async () => {
    await central?.stop()
    await temp.cleanup()
  })

  const recorded = async () =>
    JSON.stringify([
      await central.store.countEvents(),
      await central.store.listPayments({ limit: 1000 }),
      await central.store.listWebhooks(),
      await central.store.getDenylist(venue.id),
    ])

  it(
    'any request: < 500, errors are { code, message }, a refusal records nothing',
    async () => {
      const p = venue.pay(venue.t(1))
      const mutated = (bytes: Uint8Array) =>
        fc.nat({ max: bytes.length - 1 }).map((i) => {
          const b = Uint8Array.from(bytes)
          b[i] = b[i]! ^ 0x5a
          return b64({ bytes: b })
        })
      const hostileEvent = fc.oneof(mutated(p.reservation.bytes), mutated(p.commit.bytes), fc.base64String())
      const eventBodies = fc.oneof(
        fc.array(hostileEvent, { maxLength: 4 }).map((events) => JSON.stringify({ events })),
        hostileEvent.map((reservation) => JSON.stringify({ reservation })),
      )
      const routes = [
        '/v1/sync',
        '/v1/authorize',
        '/v1/authorize/void',
        '/v1/payments',
        '/v1/payments/:id',
        `/v1/venues/${venue.id}/policy`,
        '/v1/venues/:id/roster',
        '/v1/venues/:id/denylist',
        `/v1/venues/${venue.id}/denylist`,
        '/v1/venues/:id/summary',
        '/v1/webhooks',
        '/v1/webhooks/:id',
        '/healthz',
        '/openapi.json',
      ]
      await fc.assert(
        fc.asyncProperty(
          methods,
          paths(routes),
          headers(ADMIN),
          fc.oneof(
            bodies([{ events: [] }, { reservation: 'AA' }, { blockedBins: [] }, { url: 'x' }]),
            eventBodies,
          ),
          async (method, path, hdrs, body) => {
            const before = await recorded()
            const r = await send(central.url, { method, path, headers: hdrs, body })
            expect(r.status, `${method} ${path.slice(0, 100)} → ${r.body.slice(0, 200)}`).toBeLessThan(500)
            if (r.status >= 400) {
              if (method !== 'HEAD') expect(JSON.parse(r.body)).toMatchObject({ code: expect.any(String) })
              expect(await recorded()).toBe(before)
            }
            // a sync of hostile bytes is answered 200 with per-event rejections: still nothing stored
            if (path.startsWith('/v1/sync')) {
              expect(await central.store.countEvents()).toBe(JSON.parse(before)[0])
            }
          },
        ),
        fcOptions(150),
      )
    },
    fuzzTimeout(60_000),
  )
})
