import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fcOptions, fuzzTimeout } from '../../../test/fuzz.js'
import { bodies, headers, methods, paths, send } from '../../../test/fuzz-http.js'
import { payment, startVenue, type TestVenue, TOKEN } from './helpers.js'

// Issue 17, item 7: the terminal API under arbitrary methods, paths, headers and bodies, over a real
// socket. Never a 5xx, never a crash, and a refused request changes nothing the terminal recorded.
describe('[fuzz] terminal HTTP API', () => {
  let venue: TestVenue

  beforeAll(async () => {
    venue = await startVenue(1)
  })
  afterAll(async () => {
    await venue?.cleanup()
  })

  const recorded = async () => JSON.stringify(await venue.terminals[0]!.ledger.stats())

  it(
    'any request: < 500, the answer to an error is { code, message }, a refusal records nothing',
    async () => {
      const t = venue.terminals[0]!
      const routes = [
        '/v1/payments',
        '/v1/payments/:id',
        '/v1/status',
        '/metrics',
        '/openapi.json',
        '/v1/nope',
      ]
      await fc.assert(
        fc.asyncProperty(
          methods,
          paths(routes),
          headers(TOKEN),
          bodies([payment(), payment({ offlineBehavior: 'force_offline' })]),
          async (method, path, hdrs, body) => {
            // the event stream never ends by itself: it is not a request/response route to fuzz
            const m = path.split('?')[0]!.replace(/\/+$/, '') === '/v1/events' ? 'POST' : method
            const before = await recorded()
            const r = await send(t.apiUrl, { method: m, path, headers: hdrs, body })
            expect(r.status, `${m} ${path.slice(0, 100)} → ${r.body.slice(0, 200)}`).toBeLessThan(500)
            if (r.status >= 400) {
              if (m !== 'HEAD') expect(JSON.parse(r.body)).toMatchObject({ code: expect.any(String) })
              expect(await recorded()).toBe(before)
            }
          },
        ),
        fcOptions(150),
      )
      expect(t.status().mesh.mode).toBe('quorum')
    },
    fuzzTimeout(60_000),
  )
})
