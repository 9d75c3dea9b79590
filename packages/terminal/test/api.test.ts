import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import {
  computeCardKey,
  computeNullifier,
  fromBase64url,
  fromHex,
  PROOF_BYTES,
  verifyProof,
} from '@nullmesh/protocol'
import { createTerminal, PaymentResponseSchema, PaymentSchema, StatusSchema } from '@nullmesh/terminal'
import { Value } from '@sinclair/typebox/value'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { card, http, payment, startVenue, type TestVenue, TOKEN } from './helpers.js'

let venue: TestVenue
const url = (i: number, path: string) => `${venue.terminals[i]!.apiUrl}${path}`
const publicKey = (i: number) => venue.bundle.roster[i]!.publicKey

async function paymentsCount(i: number): Promise<number> {
  return (await venue.terminals[i]!.ledger.stats()).payments
}

beforeAll(async () => {
  venue = await startVenue(3)
})
afterAll(async () => {
  await venue?.cleanup()
})

describe('auth and routing', () => {
  test('401 without a token or with a wrong one, nothing recorded', async () => {
    const before = await paymentsCount(0)
    for (const token of [null, 'wrong-token']) {
      const r = await http(url(0, '/v1/payments'), { token, body: payment() })
      expect(r.status).toBe(401)
      expect(r.json).toMatchObject({ code: 'unauthorized' })
      expect(r.headers.get('www-authenticate')).toBe('Bearer')
    }
    for (const path of ['/v1/status', '/v1/events', '/metrics', '/v1/payments/abc']) {
      expect((await http(url(0, path), { token: null })).status).toBe(401)
    }
    expect(await paymentsCount(0)).toBe(before)
  })

  test('404 for unknown routes and unknown payments', async () => {
    const r = await http(url(0, '/v1/nope'))
    expect(r.status).toBe(404)
    expect(r.json).toMatchObject({ code: 'not_found' })
    const p = await http(url(0, `/v1/payments/${'ab'.repeat(32)}`))
    expect(p.status).toBe(404)
    expect(p.json).toMatchObject({ code: 'payment_not_found', field: 'id' })
  })

  test('[no 414] a long payment id → 400 { code, message, field }', async () => {
    for (const n of [129, 200, 5000]) {
      const r = await http(url(0, `/v1/payments/${'a'.repeat(n)}`))
      expect(r.status).toBe(400)
      expect(r.json).toEqual({ code: 'invalid_request', message: expect.any(String), field: 'id' })
    }
  })

  test('binds to 127.0.0.1 by default', () => {
    expect(venue.terminals[0]!.apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
  })
})

describe('POST /v1/payments validation', () => {
  const cases: [string, (b: Record<string, unknown>) => unknown, string][] = [
    ['missing amountMinor', ({ amountMinor: _, ...b }) => b, 'amountMinor'],
    ['missing idempotencyKey', ({ idempotencyKey: _, ...b }) => b, 'idempotencyKey'],
    ['amount as a string', (b) => ({ ...b, amountMinor: '1250' }), 'amountMinor'],
    ['fractional amount', (b) => ({ ...b, amountMinor: 12.5 }), 'amountMinor'],
    ['zero amount', (b) => ({ ...b, amountMinor: 0 }), 'amountMinor'],
    ['lower-case currency', (b) => ({ ...b, currency: 'eur' }), 'currency'],
    ['unknown method', (b) => ({ ...b, method: 'cash' }), 'method'],
    ['unknown offlineBehavior', (b) => ({ ...b, offlineBehavior: 'sometimes' }), 'offlineBehavior'],
    ['negative credentialCounter', (b) => ({ ...b, credentialCounter: -1 }), 'credentialCounter'],
    ['unknown field', (b) => ({ ...b, tip: 100 }), 'tip'],
    ['context field too long', (b) => ({ ...b, context: { location: 'x'.repeat(500) } }), 'context.location'],
    ['unknown context field', (b) => ({ ...b, context: { table: 4 } }), 'context.table'],
    ['empty card token', (b) => ({ ...b, cardToken: '' }), 'cardToken'],
    ['array body', () => [1, 2], 'body'],
  ]

  test.each(cases.map(([name, mutate, field]) => ({ name, mutate, field })))(
    '$name → 400 naming $field',
    async ({ mutate, field }) => {
      const before = await paymentsCount(0)
      const base = payment()
      const r = await http(url(0, '/v1/payments'), { body: mutate(base) })
      expect(r.status).toBe(400)
      expect(r.json.code).toBe('invalid_request')
      expect(r.json.field).toBe(field)
      expect(String(r.json.message)).toContain(field)
      expect(await paymentsCount(0)).toBe(before)
      // the idempotency key of a rejected request is not taken
      if (typeof base.idempotencyKey === 'string') {
        expect(
          await venue.terminals[0]!.ledger.getPaymentByIdempotencyKey(base.idempotencyKey),
        ).toBeUndefined()
      }
    },
  )

  test('invalid JSON, empty body, wrong content type', async () => {
    const before = await paymentsCount(0)
    const bad = await http(url(0, '/v1/payments'), { rawBody: '{"amountMinor": ' })
    expect(bad.status).toBe(400)
    expect(bad.json).toMatchObject({ code: 'invalid_json', field: 'body' })
    const empty = await http(url(0, '/v1/payments'), { method: 'POST', rawBody: '' })
    expect(empty.status).toBe(400)
    expect(empty.json).toMatchObject({ code: 'invalid_request', field: 'body' })
    const text = await http(url(0, '/v1/payments'), { rawBody: 'amount=1', contentType: 'text/plain' })
    expect(text.status).toBe(415)
    expect(text.json).toMatchObject({ code: 'unsupported_media_type' })
    expect(await paymentsCount(0)).toBe(before)
  })

  test('the in-process API validates the same way', async () => {
    await expect(venue.terminals[0]!.pay({ ...payment(), amountMinor: -5 })).rejects.toMatchObject({
      code: 'invalid_request',
      field: 'amountMinor',
      status: 400,
    })
  })
})

describe('decisions', () => {
  test('approved offline through the barrier; the proof verifies with the terminal key', async () => {
    const body = payment({ amountMinor: 990, currency: 'EUR' })
    const r = await http(url(0, '/v1/payments'), { body })
    expect(r.status).toBe(200)
    expect(Value.Check(PaymentResponseSchema, r.json)).toBe(true)
    expect(r.json).toMatchObject({ status: 'approved_offline', queued: true, mode: 'quorum', terminal: 'T1' })
    const barrier = r.json.barrier as { acks: number; quorum: number; ms: number }
    expect(barrier.acks).toBeGreaterThanOrEqual(barrier.quorum)
    const proof = fromBase64url(r.json.proof as string)
    expect(proof.byteLength).toBe(PROOF_BYTES)
    const verified = verifyProof(proof, fromHex(r.json.nullifier as string), publicKey(0))
    expect(verified.ok).toBe(true)
    if (verified.ok) {
      expect(verified.value).toMatchObject({
        decision: 'approved_offline',
        amountMinor: 990,
        currency: 'EUR',
      })
    }
    // another terminal's key does not verify it
    expect(verifyProof(proof, fromHex(r.json.nullifier as string), publicKey(1)).ok).toBe(false)
    // the payment id is the reservation id, committed in the ledger
    expect(await venue.terminals[0]!.ledger.reservationState(r.json.paymentId as string)).toBe('committed')

    const got = await http(url(0, `/v1/payments/${r.json.paymentId}`))
    expect(got.status).toBe(200)
    expect(Value.Check(PaymentSchema, got.json)).toBe(true)
    expect(got.json).toMatchObject({
      paymentId: r.json.paymentId,
      status: 'approved_offline',
      idempotencyKey: body.idempotencyKey,
      amountMinor: 990,
      settlement: { status: 'queued' },
    })
  })

  test('no card data in the ledger', async () => {
    const token = card()
    const r = await venue.terminals[1]!.pay(payment({ cardToken: token }))
    const record = await venue.terminals[1]!.ledger.getPayment(r.paymentId)
    expect(JSON.stringify(record)).not.toContain(token)
    expect(JSON.stringify(record)).not.toContain(token.slice(0, 8))
  })

  test('require_online without central → declined offline_not_allowed, with a verifiable proof', async () => {
    const r = await http(url(1, '/v1/payments'), { body: payment({ offlineBehavior: 'require_online' }) })
    expect(r.status).toBe(200)
    expect(r.json).toMatchObject({
      status: 'declined_offline',
      declineCode: 'offline_not_allowed',
      queued: false,
    })
    const verified = verifyProof(
      fromBase64url(r.json.proof as string),
      fromHex(r.json.nullifier as string),
      publicKey(1),
    )
    expect(
      verified.ok &&
        verified.value.decision === 'declined_offline' &&
        verified.value.declineCode === 'offline_not_allowed',
    ).toBe(true)
  })

  test('over the floor limit → declined floor_limit_exceeded', async () => {
    const r = await venue.terminals[2]!.pay(payment({ amountMinor: 999_999 }))
    expect(r).toMatchObject({ status: 'declined_offline', declineCode: 'floor_limit_exceeded' })
  })

  test('one card credential tapped at all three terminals at once: approved exactly once', async () => {
    const token = card()
    const answers = await Promise.all(
      venue.terminals.map((t, i) =>
        t.pay(payment({ cardToken: token, credentialCounter: 7, idempotencyKey: `tap-${token}-${i}` })),
      ),
    )
    const approved = answers.filter((a) => a.status === 'approved_offline')
    expect(approved).toHaveLength(1)
    expect(new Set(answers.map((a) => a.nullifier)).size).toBe(1)
  })

  test('GET /v1/status', async () => {
    const r = await http(url(0, '/v1/status'))
    expect(r.status).toBe(200)
    expect(Value.Check(StatusSchema, r.json)).toBe(true)
    expect(r.json).toMatchObject({
      online: false,
      mesh: { mode: 'quorum', peers: 2, roster: 3, quorum: 2 },
      terminal: 'T1',
    })
    const queue = r.json.queue as { count: number; amountsByCurrency: Record<string, number> }
    expect(queue.count).toBeGreaterThan(0)
    expect(queue.amountsByCurrency.EUR).toBeGreaterThan(0)
    expect(r.json.exposureBoundMinor).toBeGreaterThan(0)
  })
})

describe('idempotency', () => {
  test('concurrent and repeated requests with one key get the first decision', async () => {
    const body = payment()
    const answers = await Promise.all([1, 2, 3].map(() => http(url(0, '/v1/payments'), { body })))
    // the same parameters with other labels (context, offlineBehavior) are the same request
    const again = await http(url(0, '/v1/payments'), { body: { ...body, context: { location: 'bar' } } })
    for (const a of [...answers, again]) expect(a.json).toEqual(answers[0]!.json)
    expect(answers[0]!.json.status).toBe('approved_offline')
  })

  test('[idempotency key reused] other parameters with a used key → 409, nothing recorded', async () => {
    const body = payment({ amountMinor: 1000 })
    const first = await http(url(0, '/v1/payments'), { body })
    expect(first.json.status).toBe('approved_offline')
    const before = await paymentsCount(0)
    for (const [field, change] of [
      ['amountMinor', { amountMinor: 4900 }],
      ['cardToken', { cardToken: card() }],
      ['currency', { currency: 'USD' }],
      ['method', { method: 'chip' }],
    ] as const) {
      const r = await http(url(0, '/v1/payments'), { body: { ...body, ...change } })
      expect(r.status, field).toBe(409)
      expect(r.json).toMatchObject({ code: 'idempotency_key_reused', field })
      await expect(venue.terminals[0]!.pay({ ...body, ...change })).rejects.toMatchObject({
        code: 'idempotency_key_reused',
        status: 409,
      })
    }
    expect(await paymentsCount(0)).toBe(before)
    expect((await http(url(0, '/v1/payments'), { body })).json).toEqual(first.json)
  })

  test('[idempotency key reused] in flight: the same key at once with other parameters → 409', async () => {
    const body = payment({ amountMinor: 1000 })
    const t = venue.terminals[1]!
    // pay() registers the decision in flight synchronously: the second call finds the first running
    const [a, b] = await Promise.allSettled([t.pay(body), t.pay({ ...body, amountMinor: 4900 })])
    expect(a).toMatchObject({ status: 'fulfilled', value: { status: 'approved_offline' } })
    expect(b).toMatchObject({
      status: 'rejected',
      reason: { code: 'idempotency_key_reused', status: 409, field: 'amountMinor' },
    })
  })

  test('the same key across a restart: same answer, never two approvals', async () => {
    const body = payment({ amountMinor: 777 })
    const first = await venue.terminals[2]!.pay(body)
    expect(first.status).toBe('approved_offline')
    const t = await venue.restart(2)
    const second = await t.pay(body)
    expect(second).toEqual(first)
    const uses = await t.ledger.nullifier(first.nullifier)
    expect(uses.filter((u) => u.state === 'committed')).toHaveLength(1)
    const r = await http(`${t.apiUrl}/v1/payments`, { body })
    expect(r.json).toEqual(first)
  })

  test('a commit whose payment record was lost in a crash is answered, not decided again', async () => {
    // what a crash between the durable Commit and the payment record leaves behind
    const t = venue.terminals[1]!
    const body = payment({ amountMinor: 555 })
    const { hashingKey } = venue.bundle
    const nullifier = computeNullifier(hashingKey, body.cardToken as string, {
      idempotencyKey: body.idempotencyKey as string,
    })
    const decision = await t.mesh.authorize({
      nullifier,
      cardKey: computeCardKey(hashingKey, body.cardToken as string),
      amountMinor: 555,
      currency: 'EUR',
      method: 'contactless',
    })
    expect(decision.approved).toBe(true)
    const restarted = await venue.restart(1)
    const answer = await restarted.pay(body)
    expect(answer).toMatchObject({
      status: 'approved_offline',
      paymentId: decision.reservationId,
      queued: true,
    })
    expect(verifyProof(fromBase64url(answer.proof), nullifier, publicKey(1)).ok).toBe(true)
    expect(
      (await restarted.ledger.nullifier(answer.nullifier)).filter((u) => u.state === 'committed'),
    ).toHaveLength(1)
  })
})

describe('documents', () => {
  test('/metrics: Prometheus text with the barrier histogram', async () => {
    const r = await http(url(0, '/metrics'))
    expect(r.status).toBe(200)
    expect(r.headers.get('content-type')).toContain('text/plain')
    expect(r.text).toContain('nullmesh_barrier_latency_seconds_bucket')
    expect(r.text).toMatch(/nullmesh_payments_total\{[^}]*status="approved_offline"/)
    expect(r.text).toMatch(
      /nullmesh_declines_total\{[^}]*code="floor_limit_exceeded"|nullmesh_declines_total/,
    )
    expect(r.text).toContain('nullmesh_mesh_peers')
    expect(r.text).toContain('nullmesh_queue_depth')
  })

  test('/openapi.json describes the API (no token needed)', async () => {
    const r = await http(url(0, '/openapi.json'), { token: null })
    expect(r.status).toBe(200)
    expect(r.json.openapi).toBe('3.0.3')
    const paths = r.json.paths as Record<string, Record<string, unknown>>
    expect(Object.keys(paths)).toEqual(
      expect.arrayContaining(['/v1/payments', '/v1/payments/{id}', '/v1/status', '/v1/events', '/metrics']),
    )
    expect(paths['/v1/payments']!.post).toMatchObject({
      requestBody: { content: { 'application/json': {} } },
    })
  })
})

describe('token', () => {
  test('generated once into <dataDir>/api-token with mode 0600 when none is given', async () => {
    const dataDir = join(venue.dir, 'data-token')
    const saved = process.env.NULLMESH_API_TOKEN
    delete process.env.NULLMESH_API_TOKEN
    try {
      const init = {
        venueDir: venue.bundle.dir,
        id: 'T1',
        dataDir,
        api: false as const,
        discovery: { peers: [] },
      }
      // T1's key is in use by the running terminal; a second instance on another data dir is fine for this check
      const a = createTerminal(init)
      await a.start()
      const token = a.token
      await a.stop()
      expect(token.length).toBeGreaterThan(20)
      expect(token).not.toBe(TOKEN)
      expect((await stat(join(dataDir, 'api-token'))).mode & 0o777).toBe(0o600)
      const b = createTerminal(init)
      await b.start()
      expect(b.token).toBe(token)
      await b.stop()
    } finally {
      if (saved !== undefined) process.env.NULLMESH_API_TOKEN = saved
    }
  })
})
