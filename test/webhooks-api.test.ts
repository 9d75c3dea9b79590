import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { constructEvent, WebhookVerificationError } from '@nullmesh/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { api, Receiver, TempDirs, VenueFixture, waitFor } from '../packages/central/test/fixtures/helpers.js'

// Issue 19, items 3–7 and the bad inputs, against a real central process (`nullmesh central`) and
// the `nullmesh webhooks` commands, as a merchant meets them.

const BIN = resolve(import.meta.dirname, '../packages/cli/dist/bin.js')
const ADMIN = 'webhooks-api-admin-token-0123456789'

interface Proc {
  proc: ChildProcess
  stdout: string
  stderr: string
  exited: Promise<number | null>
}

function start(args: string[]): Proc {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const p: Proc = {
    proc,
    stdout: '',
    stderr: '',
    exited: new Promise((r) => proc.once('exit', (code) => r(code))),
  }
  proc.stdout!.on('data', (c: Buffer) => {
    p.stdout += c.toString()
  })
  proc.stderr!.on('data', (c: Buffer) => {
    p.stderr += c.toString()
  })
  return p
}

async function stop(p: Proc): Promise<void> {
  if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGTERM')
  const timer = setTimeout(() => p.proc.kill('SIGKILL'), 15_000)
  await p.exited
  clearTimeout(timer)
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr })
    })
  })
}

describe('webhooks a merchant can build on, against a real central process', () => {
  const temp = new TempDirs()
  const procs: Proc[] = []
  const receivers: Receiver[] = []
  let venue: VenueFixture
  let url: string

  const receiver = async (): Promise<Receiver> => {
    const r = new Receiver()
    receivers.push(r)
    await r.listen()
    return r
  }
  const admin = (method: string, path: string, body?: unknown) => api(url, method, path, body, ADMIN)
  /** sync n payments over HTTP; their payment ids */
  const pay = async (n: number): Promise<string[]> => {
    const events: string[] = []
    const ids: string[] = []
    for (let i = 0; i < n; i++) {
      const p = venue.pay(venue.t(i % 3))
      ids.push(p.reservation.idHex)
      events.push(
        Buffer.from(p.reservation.bytes).toString('base64url'),
        Buffer.from(p.commit.bytes).toString('base64url'),
      )
    }
    expect((await api(url, 'POST', '/v1/sync', { events })).status).toBe(200)
    return ids
  }
  const settled = (ids: string[]) =>
    waitFor(
      'settlement',
      async () => {
        for (const id of ids) {
          const r = await api(url, 'GET', `/v1/payments/${id}`)
          if (r.body?.status !== 'completed' && r.body?.status !== 'failed') return false
        }
        return true
      },
      30_000,
    )

  beforeAll(async () => {
    const dir = await temp.make('nullmesh-webhooks-api-')
    venue = await VenueFixture.create(dir, 'merchant', 3)
    const central = start([
      'central',
      '--data',
      `${dir}/central`,
      '--venues',
      venue.bundle.dir,
      '--admin-token',
      ADMIN,
      '--webhook-retry',
      '100ms,200ms,400ms,800ms,1s,1s,1s,1s,1s,1s',
      '--webhook-timeout',
      '2s',
    ])
    procs.push(central)
    await waitFor('central ready', () => /"ready":true/.test(central.stdout), 60_000)
    url = (JSON.parse(central.stdout.split('\n').find((l) => l.includes('"ready"'))!) as { url: string }).url
  }, 90_000)

  afterAll(async () => {
    for (const p of procs.splice(0).reverse()) await stop(p)
    await Promise.all(receivers.splice(0).map((r) => r.close()))
    await temp.cleanup()
  })

  it('subscriptions: only the types asked for; an unknown type, a non-http URL or a short secret is a 400 that creates nothing; PATCH changes url, events, disabled', async () => {
    const before = (await admin('GET', '/v1/webhooks')).body.webhooks.length
    const bad = [
      [
        { url: 'http://127.0.0.1:1/', events: ['payment.completed', 'payment.refunded'] },
        /payment\.refunded/,
      ],
      [{ url: 'ftp://127.0.0.1/hooks' }, /url: must be http or https/],
      [{ url: 'not a url' }, /url: not a valid URL/],
      [{ url: 'http://127.0.0.1:1/', secret: 'x'.repeat(31) }, /secret: at least 32 bytes/],
      [{ url: 'http://127.0.0.1:1/', events: [] }, /events: name at least one/],
    ] as const
    for (const [body, message] of bad) {
      const r = await admin('POST', '/v1/webhooks', body)
      expect(r.status, JSON.stringify(body)).toBe(400)
      expect(r.body.message).toMatch(message)
    }
    expect((await admin('GET', '/v1/webhooks')).body.webhooks).toHaveLength(before)

    const completed = await receiver()
    const reg = await admin('POST', '/v1/webhooks', {
      url: completed.url,
      events: ['payment.completed', 'payment.failed'],
      secret: 'a-merchant-secret-of-32-bytes-or-more',
    })
    expect(reg.status).toBe(201)
    expect(reg.body).toMatchObject({ events: ['payment.completed', 'payment.failed'], allEvents: false })
    const ids = await pay(3)
    await settled(ids)
    await waitFor('completed events', () => completed.received.length >= 3)
    await new Promise((r) => setTimeout(r, 300))
    expect(new Set(completed.received.map((h) => h.body.type))).toEqual(new Set(['payment.completed']))
    for (const h of completed.received)
      constructEvent(
        h.raw,
        h.headers['nullmesh-signature'] as string,
        'a-merchant-secret-of-32-bytes-or-more',
      )

    // PATCH: bad input changes nothing
    const id: string = reg.body.id
    for (const [body, status, message] of [
      [{ events: ['payment.nope'] }, 400, /payment\.nope/],
      [{ url: 'mailto:ops@example.com' }, 400, /http or https/],
      [{ enabled: true }, 400, /enabled: unknown field/],
    ] as const) {
      const r = await admin('PATCH', `/v1/webhooks/${id}`, body)
      expect(r.status).toBe(status)
      expect(r.body.message).toMatch(message)
    }
    expect((await admin('PATCH', '/v1/webhooks/wh_nope', { disabled: true })).status).toBe(404)
    const unchanged = (await admin('GET', `/v1/webhooks/${id}`)).body
    expect(unchanged).toMatchObject({ url: completed.url, events: ['payment.completed', 'payment.failed'] })

    const patched = await admin('PATCH', `/v1/webhooks/${id}`, { events: ['payment.queued'], disabled: true })
    expect(patched.body).toMatchObject({ events: ['payment.queued'], disabled: true })
    expect((await admin('PATCH', `/v1/webhooks/${id}`, { events: ['*'] })).body).toMatchObject({
      allEvents: true,
      events: ['payment.queued', 'payment.processing', 'payment.completed', 'payment.failed'],
    })
    expect((await admin('DELETE', `/v1/webhooks/${id}`)).status).toBe(204)
  })

  it('the event log: newest first with a cursor, oldest first, filters by type, payment and time; a cursor of another list or from nowhere is a 400', async () => {
    const ids = await pay(4)
    await settled(ids)
    const all = (await admin('GET', '/v1/events?limit=1000')).body.events as Array<{
      id: string
      type: string
      createdAt: number
      data: { payment: { paymentId: string } }
    }>
    // pages of 3, newest first, until nextCursor is null: every event once, in the same order
    const paged: typeof all = []
    let cursor: string | null = null
    do {
      const q: string = `/v1/events?limit=3${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`
      const page = (await admin('GET', q)).body
      expect(page.events.length).toBeLessThanOrEqual(3)
      paged.push(...page.events)
      cursor = page.nextCursor
    } while (cursor !== null)
    expect(paged.map((e) => e.id)).toEqual(all.map((e) => e.id))
    expect(all.length).toBeGreaterThanOrEqual(12)
    for (let i = 1; i < all.length; i++)
      expect(all[i - 1]!.createdAt).toBeGreaterThanOrEqual(all[i]!.createdAt)
    const asc = (await admin('GET', '/v1/events?order=asc&limit=1000')).body.events as typeof all
    expect(asc.map((e) => e.id)).toEqual([...all].reverse().map((e) => e.id))

    const one = ids[1]!
    const ofOne = (await admin('GET', `/v1/events?payment=${one}&order=asc`)).body.events as typeof all
    expect(ofOne.map((e) => e.type)).toEqual(['payment.queued', 'payment.processing', 'payment.completed'])
    const completed = (await admin('GET', '/v1/events?type=payment.completed&limit=1000')).body
      .events as typeof all
    expect(completed.every((e) => e.type === 'payment.completed')).toBe(true)
    expect(completed.length).toBeGreaterThanOrEqual(4)
    const both = (await admin('GET', '/v1/events?type=payment.completed,payment.queued&limit=1000')).body
      .events as typeof all
    expect(new Set(both.map((e) => e.type))).toEqual(new Set(['payment.completed', 'payment.queued']))
    const t = ofOne[1]!.createdAt
    const window = (await admin('GET', `/v1/events?payment=${one}&created_gte=${t}&created_lt=${t + 1}`)).body
      .events as typeof all
    expect(window.map((e) => e.id)).toContain(ofOne[1]!.id)
    expect(window.every((e) => e.createdAt === t)).toBe(true)

    const got = await admin('GET', `/v1/events/${ofOne[2]!.id}`)
    expect(got.status).toBe(200)
    expect(got.body).toEqual(ofOne[2])
    expect((await admin('GET', '/v1/events/evt_unknown')).status).toBe(404)
    expect((await api(url, 'GET', '/v1/events')).status).toBe(401)

    // cursors: only for the list (filters and order) that gave it out
    const first = (await admin('GET', '/v1/events?limit=2')).body
    expect(first.nextCursor).toEqual(expect.any(String))
    for (const [q, message] of [
      [`/v1/events?limit=2&order=asc&cursor=${first.nextCursor}`, /another list/],
      [`/v1/events?limit=2&type=payment.queued&cursor=${first.nextCursor}`, /another list/],
      ['/v1/events?cursor=bm90LWEtY3Vyc29y', /not a cursor/],
      [
        `/v1/events?cursor=${Buffer.from(JSON.stringify({ v: 1, list: 'payments', f: 'x', p: 1 })).toString('base64url')}`,
        /another list \(payments\)/,
      ],
      ['/v1/events?type=payment.refunded', /payment\.refunded/],
      ['/v1/events?limit=0', /limit/],
    ] as const) {
      const r = await admin('GET', q)
      expect(r.status, q).toBe(400)
      expect(r.body.message).toMatch(message)
    }
  })

  it('redeliver one event or everything since a time; a range in the future or an unknown event changes nothing', async () => {
    const r = await receiver()
    const reg = await admin('POST', '/v1/webhooks', { url: r.url })
    const id: string = reg.body.id
    const ids = await pay(2)
    await settled(ids)
    await waitFor('first deliveries', () => r.received.length >= 6)
    const firstAt = Math.min(...r.received.map((h) => h.body.createdAt))
    const target = r.received[0]!.body

    const one = await admin('POST', `/v1/webhooks/${id}/redeliver`, { eventId: target.id })
    expect(one).toMatchObject({ status: 202, body: { queued: 1 } })
    await waitFor('the redelivery', () => r.received.length >= 7)
    expect(r.received[6]!.body).toEqual(target)

    const future = Date.now() + 3_600_000
    for (const [body, status, message] of [
      [{ since: future }, 400, /in the future/],
      [{ since: firstAt, until: firstAt }, 400, /until: must be after since/],
      [{ eventId: 'evt_nope' }, 404, /not in the event log/],
      [{}, 400, /eventId .* or since/],
      [{ eventId: target.id, since: firstAt }, 400, /not both/],
    ] as const) {
      const res = await admin('POST', `/v1/webhooks/${id}/redeliver`, body)
      expect(res.status, JSON.stringify(body)).toBe(status)
      expect(res.body.message).toMatch(message)
    }
    expect((await admin('POST', '/v1/webhooks/wh_nope/redeliver', { since: firstAt })).status).toBe(404)
    await new Promise((res) => setTimeout(res, 300))
    expect(r.received).toHaveLength(7)

    // everything since the first of them: each event again, each payment's in order
    const since = await admin('POST', `/v1/webhooks/${id}/redeliver`, { since: firstAt })
    expect(since.status).toBe(202)
    expect(since.body.queued).toBeGreaterThanOrEqual(6)
    await waitFor('the range', () => r.received.length >= 7 + since.body.queued)
    const again = r.received.slice(7)
    for (const pid of ids)
      expect(again.filter((h) => h.body.data.payment.paymentId === pid).map((h) => h.body.type)).toEqual([
        'payment.queued',
        'payment.processing',
        'payment.completed',
      ])
    await admin('DELETE', `/v1/webhooks/${id}`)
  })

  it('secret rotation: during the overlap each delivery carries a v1= per valid secret and either secret verifies; without overlap only the new one', async () => {
    const r = await receiver()
    const reg = await admin('POST', '/v1/webhooks', { url: r.url, events: ['payment.completed'] })
    const id: string = reg.body.id
    const old: string = reg.body.secret
    expect(Buffer.byteLength(old)).toBeGreaterThanOrEqual(32)

    for (const body of [{ overlapSeconds: -1 }, { overlapSeconds: 8 * 24 * 3600 }, { secret: 'too-short' }]) {
      const bad = await admin('POST', `/v1/webhooks/${id}/rotate-secret`, body)
      expect(bad.status, JSON.stringify(body)).toBe(400)
    }
    const rotated = await admin('POST', `/v1/webhooks/${id}/rotate-secret`, { overlapSeconds: 3600 })
    expect(rotated.status).toBe(200)
    const fresh: string = rotated.body.secret
    expect(fresh).not.toBe(old)
    expect(rotated.body.previousSecretExpiresAt).toBeGreaterThan(Date.now() + 3_500_000)
    expect((await admin('GET', `/v1/webhooks/${id}`)).body.previousSecretsExpireAt).toHaveLength(1)

    await settled(await pay(1))
    await waitFor('a delivery', () => r.received.length >= 1)
    const h = r.received[0]!
    const header = h.headers['nullmesh-signature'] as string
    expect(header.match(/v1=/g)).toHaveLength(2)
    expect(constructEvent(h.raw, header, old).type).toBe('payment.completed')
    expect(constructEvent(h.raw, header, fresh).type).toBe('payment.completed')
    expect(() => constructEvent(h.raw, header, 'whsec_someone_else_entirely_0123456789')).toThrow(
      WebhookVerificationError,
    )

    const now = await admin('POST', `/v1/webhooks/${id}/rotate-secret`, { overlapSeconds: 0 })
    await settled(await pay(1))
    await waitFor('another delivery', () => r.received.length >= 2)
    const h2 = r.received[1]!
    const header2 = h2.headers['nullmesh-signature'] as string
    // the first rotation's old secret is still within its hour; the second rotation's is gone at once
    expect(header2.match(/v1=/g)).toHaveLength(2)
    expect(constructEvent(h2.raw, header2, now.body.secret).id).toBe(h2.body.id)
    expect(constructEvent(h2.raw, header2, old).id).toBe(h2.body.id)
    expect(() => constructEvent(h2.raw, header2, fresh)).toThrow(/no signature matches/)
    await admin('DELETE', `/v1/webhooks/${id}`)
  })

  it('GET /v1/webhooks/:id and /metrics show pending, oldest pending age, last success, last error and disabled', async () => {
    const down = await admin('POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/nobody-listens' })
    const up = await receiver()
    const ok = await admin('POST', '/v1/webhooks', { url: up.url })
    await settled(await pay(1))
    await waitFor('the healthy one', () => up.received.length >= 3)
    const failing = await waitFor('errors recorded', async () => {
      const w = (await admin('GET', `/v1/webhooks/${down.body.id}`)).body
      return w.delivery.lastError !== null && w.delivery.pending > 0 ? w : undefined
    })
    expect(failing).toMatchObject({ disabled: false, delivery: { lastSuccessAt: null } })
    expect(failing.delivery.oldestPendingAgeMs).toBeGreaterThanOrEqual(0)
    expect(failing.delivery.failingSince).toBeGreaterThan(0)
    const healthy = await waitFor('a success recorded', async () => {
      const w = (await admin('GET', `/v1/webhooks/${ok.body.id}`)).body
      return w.delivery.lastSuccessAt !== null ? w : undefined
    })
    expect(healthy.delivery).toMatchObject({ pending: 0, oldestPendingAt: null, lastError: null })

    const metrics = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })
    expect(metrics.status).toBe(200)
    const text = await metrics.text()
    expect(text).toMatch(new RegExp(`nullmesh_central_webhook_pending\\{endpoint="${down.body.id}"\\} [1-9]`))
    expect(text).toMatch(new RegExp(`nullmesh_central_webhook_pending\\{endpoint="${ok.body.id}"\\} 0`))
    expect(text).toContain(`nullmesh_central_webhook_disabled{endpoint="${down.body.id}"} 0`)
    expect(text).toMatch(
      new RegExp(`nullmesh_central_webhook_last_success_timestamp_seconds\\{endpoint="${ok.body.id}"\\} \\d`),
    )
    expect(text).toMatch(
      new RegExp(`nullmesh_central_webhook_last_error_timestamp_seconds\\{endpoint="${down.body.id}"\\} \\d`),
    )
    expect(text).toMatch(
      new RegExp(
        `nullmesh_central_webhook_oldest_pending_age_seconds\\{endpoint="${down.body.id}"\\} [\\d.]+`,
      ),
    )
    expect((await fetch(`${url}/metrics`)).status).toBe(401)
    await admin('DELETE', `/v1/webhooks/${down.body.id}`)
    await admin('DELETE', `/v1/webhooks/${ok.body.id}`)
  })

  it('nullmesh webhooks listen forwards every new event, signed, one line per event with its status', async () => {
    const local = await receiver()
    const listen = start([
      'webhooks',
      'listen',
      '--central',
      url,
      '--token',
      ADMIN,
      '--forward-to',
      local.url,
      '--poll',
      '100ms',
    ])
    procs.push(listen)
    await waitFor('Ready', () => /Ready!/.test(listen.stderr), 30_000)
    const secret = /signing secret is (\S+)/.exec(listen.stderr)![1]!
    const ids = await pay(2)
    await settled(ids)
    await waitFor('forwarded', () => local.received.length >= 6, 30_000)
    // only new events: nothing from before it started
    expect(new Set(local.received.map((h) => h.body.data.payment.paymentId))).toEqual(new Set(ids))
    for (const h of local.received) constructEvent(h.raw, h.headers['nullmesh-signature'] as string, secret)
    for (const pid of ids)
      expect(
        local.received.filter((h) => h.body.data.payment.paymentId === pid).map((h) => h.body.type),
      ).toEqual(['payment.queued', 'payment.processing', 'payment.completed'])
    await waitFor('lines', () => listen.stdout.trim().split('\n').length >= 6)
    const lines = listen.stdout.trim().split('\n')
    expect(lines).toHaveLength(6)
    for (const line of lines) expect(line).toMatch(/ payment\.\w+ +evt_[0-9a-f]{32} .*→ 200$/)
    await stop(listen)
    expect(await listen.exited).toBe(0)
  })

  it('nullmesh webhooks trigger sends a signed test event and reports the status; bad input is one clear line', async () => {
    const r = await receiver()
    const reg = await admin('POST', '/v1/webhooks', { url: r.url, events: ['payment.failed'] })
    const ok = await run([
      'webhooks',
      'trigger',
      'payment.completed',
      '--endpoint',
      reg.body.id,
      '--central',
      url,
      '--token',
      ADMIN,
    ])
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.stdout).toMatch(/^payment\.completed evt_test_[0-9a-f]+ → wh_[0-9a-f]+: 200 in \d+ ms/)
    expect(r.received).toHaveLength(1)
    const event = constructEvent(
      r.received[0]!.raw,
      r.received[0]!.headers['nullmesh-signature'] as string,
      reg.body.secret,
    )
    expect(event).toMatchObject({
      type: 'payment.completed',
      test: true,
      data: { payment: { status: 'completed' } },
    })
    // a test event is not in the event log
    expect((await admin('GET', `/v1/events/${event.id}`)).status).toBe(404)

    r.status = 503
    const refused = await run([
      'webhooks',
      'trigger',
      'payment.failed',
      '--endpoint',
      reg.body.id,
      '--central',
      url,
      '--token',
      ADMIN,
    ])
    expect(refused.code).toBe(1)
    expect(refused.stdout).toMatch(/: 503 in/)
    const unknown = await run([
      'webhooks',
      'trigger',
      'payment.refunded',
      '--endpoint',
      reg.body.id,
      '--central',
      url,
      '--token',
      ADMIN,
    ])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(
      /^nullmesh: central answered 400 ERR_INVALID_REQUEST: type: unknown event type "payment\.refunded"/,
    )
    expect(unknown.stderr).not.toMatch(/\n\s+at /)
    const noEndpoint = await run([
      'webhooks',
      'trigger',
      'payment.failed',
      '--endpoint',
      'wh_nope',
      '--central',
      url,
      '--token',
      ADMIN,
    ])
    expect(noEndpoint.stderr).toMatch(/404 ERR_NOT_FOUND: webhook wh_nope is not registered/)
    const badToken = await run([
      'webhooks',
      'trigger',
      'payment.failed',
      '--endpoint',
      reg.body.id,
      '--central',
      url,
      '--token',
      'wrong',
    ])
    expect(badToken.stderr).toMatch(/401 .*check --token/)
    for (const cmd of [
      ['webhooks', '--help'],
      ['webhooks', 'listen', '--help'],
      ['webhooks', 'trigger', '--help'],
    ]) {
      const help = await run(cmd)
      expect(help.code).toBe(0)
      expect(help.stdout).toMatch(/Usage: nullmesh webhooks/)
    }
    await admin('DELETE', `/v1/webhooks/${reg.body.id}`)
  })
})
