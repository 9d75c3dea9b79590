import { afterAll, beforeAll, expect, test } from 'vitest'
import { payment, startVenue, type TestVenue, TOKEN } from './helpers.js'

let venue: TestVenue
let url: string
beforeAll(async () => {
  venue = await startVenue(1)
  url = venue.terminals[0]!.apiUrl
})
afterAll(async () => {
  await venue?.cleanup()
})

const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${url}${path}`, { headers, redirect: 'manual' })

test('the dashboard signs a browser in with the API token: query once, then an HttpOnly cookie', async () => {
  const anonymous = await get('/dashboard')
  expect(anonymous.status).toBe(401)
  expect(await anonymous.text()).toContain('paste the API token')
  expect((await get('/dashboard?token=wrong')).status).toBe(401)

  const login = await get(`/dashboard?token=${TOKEN}`)
  expect(login.status).toBe(303)
  expect(login.headers.get('location')).toBe('/dashboard')
  const cookie = login.headers.get('set-cookie')!
  expect(cookie).toMatch(/HttpOnly; SameSite=Strict/)
  const jar = cookie.split(';')[0]!

  const page = await get('/dashboard', { cookie: jar })
  expect(page.status).toBe(200)
  const html = await page.text()
  expect(html).toContain('data-terminal="T1"')
  // every asset from this process: no other origin in the page
  expect(html).not.toMatch(/(src|href)="https?:/)
  expect((await get('/v1/status', { cookie: jar })).status).toBe(200)
  const snapshot = (await (await get('/v1/dashboard', { cookie: jar })).json()) as Record<string, unknown>
  expect(snapshot.kind).toBe('terminal')

  // the cookie never authorises a write: POST needs the bearer header
  const post = await fetch(`${url}/v1/payments`, {
    method: 'POST',
    headers: { cookie: jar, 'content-type': 'application/json' },
    body: JSON.stringify(payment()),
  })
  expect(post.status).toBe(401)
})

test('assets are public and local, dashboard routes stay out of the OpenAPI document', async () => {
  for (const name of ['uPlot.min.js', 'uPlot.min.css', 'client.js', 'views.js', 'dashboard.css']) {
    const res = await get(`/dashboard/assets/${name}`)
    expect(res.status, name).toBe(200)
  }
  expect((await get('/dashboard/assets/nope.js')).status).toBe(404)
  const doc = (await (await get('/openapi.json')).json()) as { paths: Record<string, unknown> }
  expect(Object.keys(doc.paths).some((p) => p.includes('dashboard'))).toBe(false)
})

test('a payment reaches the snapshot stream as it is decided', async () => {
  const ac = new AbortController()
  const res = await fetch(`${url}/v1/dashboard/stream`, {
    headers: { authorization: `Bearer ${TOKEN}` },
    signal: ac.signal,
  })
  expect(res.headers.get('content-type')).toContain('text/event-stream')
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  const paid = await venue.terminals[0]!.pay(payment({ amountMinor: 777 }))
  try {
    const deadline = Date.now() + 10_000
    while (!buffer.includes(paid.paymentId) && Date.now() < deadline) {
      const { value, done } = await reader.read()
      if (done) break
      buffer += decoder.decode(value)
    }
    expect(buffer).toContain('event: snapshot')
    expect(buffer).toContain(paid.paymentId)
  } finally {
    ac.abort()
  }
})

test('after a restart the dashboard lists the payments recorded before it', async () => {
  const paid = await venue.terminals[0]!.pay(payment({ amountMinor: 1234 }))
  const t = await venue.restart(0)
  url = t.apiUrl
  const deadline = Date.now() + 10_000
  let recent: Array<{ paymentId: string }> = []
  while (Date.now() < deadline) {
    const res = await fetch(`${url}/v1/dashboard`, { headers: { authorization: `Bearer ${TOKEN}` } })
    recent = ((await res.json()) as { recent: Array<{ paymentId: string }> }).recent
    if (recent.some((p) => p.paymentId === paid.paymentId)) break
    await new Promise((r) => setTimeout(r, 100))
  }
  expect(recent.map((p) => p.paymentId)).toContain(paid.paymentId)
})
