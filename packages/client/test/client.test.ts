import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type Payment,
  type PaymentRequest,
  type PaymentResponse,
  SseParser,
  TAP_AT_HEADER,
  TerminalApiError,
  TerminalClient,
  type TerminalEvent,
  type TerminalStatus,
} from '@nullmesh/client'
import { createVenueBundle } from '@nullmesh/policy'
import {
  createTerminal,
  PaymentRequestSchema,
  PaymentResponseSchema,
  PaymentSchema,
  StatusSchema,
  TAP_AT_HEADER as TERMINAL_TAP_AT_HEADER,
  type Terminal,
} from '@nullmesh/terminal'
import { Value } from '@sinclair/typebox/value'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'

const TOKEN = 'sdk-test-token-abcdef'
let dir: string
let terminal: Terminal
let peer: Terminal
let client: TerminalClient
let n = 0

function request(overrides: Partial<PaymentRequest> = {}): PaymentRequest {
  n++
  return {
    idempotencyKey: `sdk-${Date.now()}-${n}`,
    cardToken: `5100${String(n).padStart(12, '0')}`,
    amountMinor: 1500,
    currency: 'EUR',
    method: 'chip',
    ...overrides,
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nullmesh-client-'))
  // two terminals: the quorum (2 of 2) needs the peer, as in a real venue
  const bundle = await createVenueBundle({ outDir: join(dir, 'venue'), terminals: 2, venueId: 'sdk-venue' })
  terminal = createTerminal({
    venueDir: bundle.dir,
    id: 'T1',
    dataDir: join(dir, 'T1'),
    token: TOKEN,
    discovery: { peers: [] },
  })
  await terminal.start()
  peer = createTerminal({
    venueDir: bundle.dir,
    id: 'T2',
    dataDir: join(dir, 'T2'),
    api: false,
    discovery: { peers: terminal.multiaddrs() },
  })
  await peer.start()
  const deadline = Date.now() + 20_000
  while (terminal.status().mesh.mode !== 'quorum' || peer.status().mesh.mode !== 'quorum') {
    if (Date.now() > deadline) throw new Error('no quorum')
    await new Promise((r) => setTimeout(r, 25))
  }
  client = new TerminalClient({ url: terminal.apiUrl, token: TOKEN })
})

afterAll(async () => {
  await peer?.stop()
  await terminal?.stop()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe('TerminalClient against a running terminal', () => {
  test('pay → payment → status, and the wire types agree with the terminal schemas', async () => {
    // every field of the client's request type, optional ones included
    const body: Required<PaymentRequest> = {
      ...request(),
      offlineBehavior: 'prefer_online',
      credentialCounter: 41,
      context: { location: 'bar-2', eventId: 'gig-7', vertical: 'festival' },
    }
    expect(Object.keys(body).sort()).toEqual(Object.keys(PaymentRequestSchema.properties).sort())
    expect(Value.Check(PaymentRequestSchema, body)).toBe(true)

    const answer: PaymentResponse = await client.pay(body)
    expect(Value.Errors(PaymentResponseSchema, answer).First()).toBeUndefined()
    expect(answer).toMatchObject({ status: 'approved_offline', queued: true, terminal: 'T1', mode: 'quorum' })

    const payment: Payment = await client.payment(answer.paymentId)
    expect(Value.Errors(PaymentSchema, payment).First()).toBeUndefined()
    expect(payment).toMatchObject({
      ...answer,
      idempotencyKey: body.idempotencyKey,
      context: body.context,
      settlement: { status: 'queued' },
    })

    const status: TerminalStatus = await client.status()
    expect(Value.Errors(StatusSchema, status).First()).toBeUndefined()
    expect(status).toMatchObject({
      online: false,
      terminal: 'T1',
      mesh: { mode: 'quorum', peers: 1, roster: 2, quorum: 2 },
    })
    expect(status.queue.count).toBeGreaterThan(0)

    // the same idempotency key: the first decision
    expect(await client.pay(body)).toEqual(answer)
  })

  test('errors carry the API code, status and field', async () => {
    const bad = await client.pay({ ...request(), currency: 'euro' }).catch((e: unknown) => e)
    expect(bad).toBeInstanceOf(TerminalApiError)
    expect(bad).toMatchObject({ code: 'invalid_request', status: 400, field: 'currency' })

    const missing = await client.payment('ff'.repeat(32)).catch((e: unknown) => e)
    expect(missing).toMatchObject({ code: 'payment_not_found', status: 404 })

    const stranger = new TerminalClient({ url: terminal.apiUrl, token: 'nope' })
    await expect(stranger.status()).rejects.toMatchObject({ code: 'unauthorized', status: 401 })
  })

  test('pay() sends the tap time (TAP_AT_HEADER); the terminal counts its decision from it', async () => {
    expect(TAP_AT_HEADER).toBe(TERMINAL_TAP_AT_HEADER)
    const sent: string[] = []
    const spy = new TerminalClient({
      url: terminal.apiUrl,
      token: TOKEN,
      fetch: (input, init) => {
        sent.push(String(new Headers(init?.headers).get(TAP_AT_HEADER)))
        return fetch(input, init)
      },
    })
    const before = terminal.status().decisions.maxMs
    const tappedAt = Date.now() - 600
    const r = await spy.pay(request({ offlineBehavior: 'force_offline' }), { tappedAt })
    expect(r.status).toBe('approved_offline')
    expect(sent).toEqual([String(tappedAt)])
    expect(terminal.status().decisions.maxMs).toBeGreaterThanOrEqual(Math.max(before, 600))
  })

  test('AbortSignal: the caller’s reason is thrown as is', async () => {
    const controller = new AbortController()
    controller.abort(new Error('customer walked away'))
    await expect(client.status({ signal: controller.signal })).rejects.toThrow('customer walked away')
  })

  test('events(): a payment event arrives; breaking out closes the stream', async () => {
    const seen: TerminalEvent[] = []
    const iterator = client.events()
    const first = await iterator.next() // the current state is sent first
    expect(first.value).toMatchObject({ type: 'connectivity', data: { online: false } })
    const answer = await client.pay(request())
    for await (const event of { [Symbol.asyncIterator]: () => iterator }) {
      seen.push(event)
      if (event.type === 'payment.queued' && event.data.payment.paymentId === answer.paymentId) break
    }
    const decided = seen.find((e) => e.type === 'payment.decided')
    expect(decided?.data).toMatchObject({
      payment: { paymentId: answer.paymentId, status: 'approved_offline' },
    })
  })

  test('events() with types and a signal', async () => {
    const controller = new AbortController()
    const got: TerminalEvent[] = []
    const consume = (async () => {
      for await (const e of client.events({ types: ['payment.queued'], signal: controller.signal })) {
        got.push(e)
        controller.abort(new Error('enough'))
      }
    })()
    // the filter drops the state snapshot, so give the stream a moment to connect
    await new Promise((r) => setTimeout(r, 250))
    await client.pay(request())
    await expect(consume).rejects.toThrow('enough')
    expect(got.map((e) => e.type)).toEqual(['payment.queued'])
  })
})

describe('TerminalClient failures without a terminal', () => {
  let silent: Server
  let silentUrl: string
  const sockets = new Set<import('node:net').Socket>()
  beforeAll(async () => {
    // accepts connections and never answers
    silent = createServer((socket) => sockets.add(socket))
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
    const address = silent.address() as { port: number }
    silentUrl = `http://127.0.0.1:${address.port}`
  })
  afterAll(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((r) => silent.close(r))
  })

  test('timeout → TerminalApiError timeout', async () => {
    const c = new TerminalClient({ url: silentUrl, token: 't', timeoutMs: 150 })
    const t0 = Date.now()
    await expect(c.status()).rejects.toMatchObject({ code: 'timeout', status: 0 })
    expect(Date.now() - t0).toBeLessThan(2_000)
    // and it leaves no socket open on our side
    await new Promise((r) => setTimeout(r, 10))
  })

  test('nothing listening → TerminalApiError network_error', async () => {
    const probe = createServer()
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
    const port = (probe.address() as { port: number }).port
    await new Promise((r) => probe.close(r))
    const c = new TerminalClient({ url: `http://127.0.0.1:${port}`, token: 't' })
    await expect(c.pay(request())).rejects.toMatchObject({ code: 'network_error', status: 0 })
  })

  test('constructor checks its options', () => {
    expect(() => new TerminalClient({ url: '', token: 't' })).toThrow(TypeError)
    expect(() => new TerminalClient({ url: 'http://x', token: '' })).toThrow(TypeError)
  })
})

describe('SseParser', () => {
  test('split chunks, CRLF, comments, multi-line data, ids', () => {
    const p = new SseParser()
    expect(p.push(': hello\r\nretry: 10\r\n\r\nid: 1\r\nevent: a\r\nda')).toEqual([])
    expect(p.push('ta: x\r\ndata: y\r')).toEqual([])
    expect(p.push('\n\r\n')).toEqual([{ event: 'a', data: 'x\ny', id: '1' }])
    expect(p.push('data:z\n\n')).toEqual([{ event: 'message', data: 'z', id: '1' }])
  })
})
