import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type CentralService, createCentralService } from '@nullmesh/central'
import { createVenueBundle, type PolicyOverrides, type VenueBundle } from '@nullmesh/policy'
import {
  type CentralLink,
  createHttpCentralLink,
  createTerminal,
  type Terminal,
  type TerminalInit,
} from '@nullmesh/terminal'

export const TOKEN = 'test-token-0123456789'

/** Connectivity and sync paced for tests: a lost or regained central is noticed within ~250 ms. */
export const FAST = {
  connectivity: { initialDelayMs: 50, maxDelayMs: 250, probeIntervalMs: 250, probeTimeoutMs: 500 },
  sync: { intervalMs: 100, statusPollMinIntervalMs: 100 },
}

/** A real central service for the venue, on 127.0.0.1 (port 0: any), settling every 50 ms. */
export async function startCentral(
  v: { dir: string; bundle: VenueBundle },
  port = 0,
  name = 'central',
): Promise<CentralService> {
  const c = createCentralService({
    dataDir: join(v.dir, name),
    venues: [v.bundle],
    listen: { host: '127.0.0.1', port },
    settleIntervalMs: 50,
    adminToken: 'admin-token',
  })
  await c.start()
  return c
}

export interface TestVenue {
  dir: string
  bundle: VenueBundle
  terminals: Terminal[]
  /** init used for each terminal, by index, to restart it */
  inits: TerminalInit[]
  /** stop terminal i and start a new instance on the same data directory, peers given */
  restart(i: number): Promise<Terminal>
  cleanup(): Promise<void>
}

export async function makeVenueDir(terminals: number, policy: PolicyOverrides = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'nullmesh-terminal-'))
  const bundle = await createVenueBundle({
    outDir: join(dir, 'venue'),
    terminals,
    venueId: 'test-venue',
    policy,
  })
  return { dir, bundle }
}

/** N terminals in this process on 127.0.0.1, static peers (each is given the ones started before it). */
export async function startVenue(
  n: number,
  opts: { policy?: PolicyOverrides; init?: (i: number) => Partial<TerminalInit>; waitQuorum?: boolean } = {},
): Promise<TestVenue> {
  const { dir, bundle } = await makeVenueDir(n, opts.policy)
  const terminals: Terminal[] = []
  const inits: TerminalInit[] = []
  for (let i = 0; i < n; i++) {
    const init: TerminalInit = {
      venueDir: bundle.dir,
      id: `T${i + 1}`,
      dataDir: join(dir, `data-T${i + 1}`),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      token: TOKEN,
      discovery: { mdns: false, peers: terminals.flatMap((t) => t.multiaddrs()) },
      ...opts.init?.(i),
    }
    const t = createTerminal(init)
    await t.start()
    terminals.push(t)
    inits.push(init)
  }
  if (opts.waitQuorum !== false && n > 1) {
    await waitFor(
      () => terminals.every((t) => t.status().mesh.mode === 'quorum' && t.status().mesh.peers === n - 1),
      20_000,
    )
  }
  return {
    dir,
    bundle,
    terminals,
    inits,
    async restart(i: number) {
      await terminals[i]!.stop()
      const peers = terminals.filter((_, j) => j !== i).flatMap((t) => t.multiaddrs())
      const init = { ...inits[i]!, discovery: { mdns: false, peers } }
      const t = createTerminal(init)
      await t.start()
      terminals[i] = t
      inits[i] = init
      return t
    },
    async cleanup() {
      await Promise.all(terminals.map((t) => t.stop().catch(() => {})))
      await rm(dir, { recursive: true, force: true })
    },
  }
}

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  stepMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await cond()) return
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, stepMs))
  }
}

let counter = 0
/** A PAN-shaped test card token (never a real card). */
export function card(n = ++counter): string {
  return `4000${String(n).padStart(12, '0')}`
}

export function payment(overrides: Record<string, unknown> = {}) {
  return {
    idempotencyKey: `key-${Date.now()}-${++counter}`,
    cardToken: card(),
    amountMinor: 1250,
    currency: 'EUR',
    method: 'contactless',
    ...overrides,
  }
}

export async function http(
  url: string,
  opts: {
    method?: string
    token?: string | null
    body?: unknown
    rawBody?: string
    contentType?: string
    headers?: Record<string, string>
  } = {},
) {
  const headers: Record<string, string> = { ...opts.headers }
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? TOKEN}`
  let body: string | undefined
  if (opts.rawBody !== undefined) body = opts.rawBody
  else if (opts.body !== undefined) body = JSON.stringify(opts.body)
  if (body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json'
  const res = await fetch(url, {
    method: opts.method ?? (body === undefined ? 'GET' : 'POST'),
    headers,
    body,
  })
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, headers: res.headers, text, json: json as Record<string, unknown> }
}

/** A free TCP port on 127.0.0.1 (for a service that starts later on a known address). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net')
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  await new Promise((r) => server.close(r))
  return port
}

/**
 * The real HTTP link to central with some methods replaced (a recording, failing or counting test
 * double). The optional notices (revocations, abandoned, checkpoint) are left out, as before.
 */
export function wrapCentralLink(url: string, over: Partial<CentralLink> = {}): CentralLink {
  const inner = createHttpCentralLink({ url })
  return {
    url,
    health: (o) => inner.health(o),
    authorize: (r, o) => inner.authorize(r, o),
    void: (r, o) => inner.void(r, o),
    sync: (e, o) => inner.sync(e, o),
    payment: (id, o) => inner.payment(id, o),
    payments: (ids, o) => inner.payments!(ids, o),
    ownEvents: (k, a, o) => inner.ownEvents!(k, a, o),
    denylist: (v, o) => inner.denylist(v, o),
    ...over,
  }
}
