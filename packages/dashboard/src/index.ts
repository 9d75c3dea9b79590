import { createHash, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema } from 'fastify'

/*
 * What the terminal's and central's dashboards share: the static assets (served by the process
 * itself, never a CDN: the venue may be offline), the browser login (bearer token, or a cookie set
 * from `?token=` once), the page shell and a Server-Sent Events stream of snapshots.
 */

export const DASHBOARD_PATH = '/dashboard'
export const ASSETS_PATH = '/dashboard/assets/'
/** a browser session lasts this long, then the operator opens the printed URL again */
const COOKIE_MAX_AGE_S = 12 * 3600
/** at most this many snapshots a second per stream */
const SNAPSHOT_MIN_INTERVAL_MS = 400
const KEEPALIVE_MS = 15_000
const MAX_BUFFERED_BYTES = 1 << 20

const require = createRequire(import.meta.url)
const assetsDir = new URL('../assets/', import.meta.url)

interface Asset {
  file: string | URL
  type: string
}

const ASSETS: Record<string, Asset> = {
  'dashboard.css': { file: new URL('dashboard.css', assetsDir), type: 'text/css; charset=utf-8' },
  'views.js': { file: new URL('views.js', assetsDir), type: 'text/javascript; charset=utf-8' },
  'client.js': { file: new URL('client.js', assetsDir), type: 'text/javascript; charset=utf-8' },
  'uPlot.min.js': {
    file: require.resolve('uplot/dist/uPlot.iife.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  'uPlot.min.css': { file: require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
}

const cache = new Map<string, Promise<Buffer>>()
function asset(name: string): Promise<Buffer> | undefined {
  const a = ASSETS[name]
  if (a === undefined) return undefined
  let p = cache.get(name)
  if (p === undefined) {
    p = readFile(a.file)
    p.catch(() => cache.delete(name))
    cache.set(name, p)
  }
  return p
}

/** keeps a route out of an OpenAPI document (@fastify/swagger) */
export const HIDDEN = { hide: true } as FastifySchema

/** True for paths that need no token: the static assets (no data in them). */
export function isPublicDashboardPath(path: string): boolean {
  return path.startsWith(ASSETS_PATH)
}

/** GET /dashboard/assets/:name — the dashboard's CSS and scripts, uPlot included. */
export function registerDashboardAssets(app: FastifyInstance): void {
  app.get(`${ASSETS_PATH}:name`, { schema: HIDDEN }, async (req, reply) => {
    const { name } = req.params as { name: string }
    const body = asset(name)
    if (body === undefined) return reply.code(404).type('text/plain').send('no such asset')
    return reply
      .type(ASSETS[name]!.type)
      .header('cache-control', 'public, max-age=300')
      .send(await body)
  })
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

export interface DashboardAuth {
  /** per token: terminals and central on one host share cookies across ports */
  readonly cookieName: string
  valid(token: string | undefined): boolean
  /** the bearer header, else the login cookie (GET and HEAD only: no cookie-authorised writes) */
  token(req: FastifyRequest): string | undefined
  cookie(token: string): string
}

export function createDashboardAuth(expectedToken: string): DashboardAuth {
  const expected = digest(expectedToken)
  const cookieName = `nullmesh_${createHash('sha256').update(`cookie:${expectedToken}`).digest('hex').slice(0, 12)}`
  const valid = (token: string | undefined): boolean =>
    token !== undefined && token !== '' && timingSafeEqual(digest(token), expected)
  return {
    cookieName,
    valid,
    token(req) {
      const header = req.headers.authorization
      if (typeof header === 'string' && /^bearer /i.test(header)) return header.slice(7).trim()
      if (req.method !== 'GET' && req.method !== 'HEAD') return undefined
      return readCookie(req.headers.cookie, cookieName)
    },
    cookie(token) {
      return `${cookieName}=${encodeURIComponent(token)}; Path=/; Max-Age=${COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Strict`
    },
  }
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim())
      } catch {
        return undefined
      }
    }
  }
  return undefined
}

export function escapeHtml(s: unknown): string {
  return String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  )
}

interface Views {
  renderTerminal(snapshot: unknown): string
  renderCentral(snapshot: unknown): string
}
let views: Promise<Views> | undefined
/** The same render functions the browser runs (assets/views.js): one implementation, server and client. */
export function loadViews(): Promise<Views> {
  views ??= import(new URL('views.js', assetsDir).href) as Promise<Views>
  return views
}

export interface PageInit {
  title: string
  kind: 'terminal' | 'central'
  /** server-rendered body of the live region */
  html: string
  snapshot: unknown
  /** the SSE stream of snapshots (same origin) */
  stream: string
}

/** The whole page: readable without script, then kept live by client.js over SSE. */
export function page(init: PageInit): string {
  const json = JSON.stringify(init.snapshot).replace(/</g, '\\u003c')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(init.title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${ASSETS_PATH}uPlot.min.css">
<link rel="stylesheet" href="${ASSETS_PATH}dashboard.css">
</head>
<body data-kind="${init.kind}" data-stream="${escapeHtml(init.stream)}">
<div id="live" class="live" role="status" aria-live="polite"><span class="dot"></span><span id="live-text">live</span></div>
<main id="view">${init.html}</main>
<section id="chart-box" class="card wide" ${init.kind === 'terminal' ? '' : 'hidden'}>
<h2>Decisions per minute</h2><div id="chart"></div><p class="legend-note">approved (green, solid) and declined (red, dashed), this terminal's ledger and what it saw from peers</p>
</section>
<dialog id="detail"><form method="dialog"><button class="close" aria-label="close">close ✕</button></form><div id="detail-body"></div></dialog>
<script id="snapshot" type="application/json">${json}</script>
<script src="${ASSETS_PATH}uPlot.min.js"></script>
<script type="module" src="${ASSETS_PATH}client.js"></script>
</body>
</html>
`
}

/** The sign-in page: the token printed by `nullmesh terminal`, `nullmesh central` or `npm start`. */
export function loginPage(title: string, failed: boolean): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} — sign in</title><link rel="icon" href="data:,"><link rel="stylesheet" href="${ASSETS_PATH}dashboard.css"></head>
<body><main class="login card">
<h1>${escapeHtml(title)}</h1>
<p>${failed ? '<strong class="bad-text">That token is not valid.</strong> ' : ''}Open the dashboard URL printed at start-up (it carries the token), or paste the API token:</p>
<form method="get" action="${DASHBOARD_PATH}"><label>token <input name="token" type="password" autocomplete="off" required></label> <button>open</button></form>
</main></body></html>
`
}

/**
 * GET /dashboard: with `?token=` a valid token becomes the login cookie and the browser is sent to
 * the clean URL (the token leaves the address bar and history); without a valid token or cookie, the
 * sign-in page. Returns true when the caller should render the dashboard.
 */
export function handleLogin(
  auth: DashboardAuth,
  title: string,
  req: FastifyRequest,
  reply: FastifyReply,
  open = false,
): boolean {
  const query = req.query as { token?: unknown }
  if (typeof query.token === 'string') {
    if (auth.valid(query.token)) {
      void reply
        .code(303)
        .header('set-cookie', auth.cookie(query.token))
        .header('location', DASHBOARD_PATH)
        .send()
    } else {
      void reply.code(401).type('text/html; charset=utf-8').send(loginPage(title, true))
    }
    return false
  }
  if (open || auth.valid(auth.token(req))) return true
  void reply.code(401).type('text/html; charset=utf-8').send(loginPage(title, false))
  return false
}

export interface SnapshotStreams {
  /** GET handler body: hijacks the reply and streams `snapshot` events */
  open(req: FastifyRequest, reply: FastifyReply): void
  /** something changed: every stream gets a fresh snapshot (throttled) */
  changed(): void
  close(): void
}

/** Server-Sent Events of whole snapshots: small (tens of KB at most), simple to render, never stale. */
export function snapshotStreams(
  snapshot: () => Promise<unknown>,
  onError: (err: unknown) => void,
): SnapshotStreams {
  const streams = new Set<{ send(data: string): void; end(): void }>()
  let timer: NodeJS.Timeout | undefined
  let last = 0
  let building = false
  let again = false
  const broadcast = async (): Promise<void> => {
    timer = undefined
    if (streams.size === 0) return
    if (building) {
      again = true
      return
    }
    building = true
    last = Date.now()
    try {
      const data = JSON.stringify(await snapshot())
      for (const s of streams) s.send(data)
    } catch (err: unknown) {
      onError(err)
    } finally {
      building = false
      if (again) {
        again = false
        schedule()
      }
    }
  }
  const schedule = (): void => {
    if (timer !== undefined || streams.size === 0) return
    timer = setTimeout(() => void broadcast(), Math.max(0, last + SNAPSHOT_MIN_INTERVAL_MS - Date.now()))
    timer.unref()
  }
  return {
    open(_req, reply) {
      reply.hijack()
      const res = reply.raw
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      })
      const write = (chunk: string): void => {
        if (res.destroyed || res.writableEnded) return
        if (res.writableLength > MAX_BUFFERED_BYTES) {
          end()
          return
        }
        res.write(chunk)
      }
      const keepalive = setInterval(() => write(': keepalive\n\n'), KEEPALIVE_MS)
      keepalive.unref()
      const stream = {
        send: (data: string) => write(`event: snapshot\ndata: ${data}\n\n`),
        end: () => end(),
      }
      let ended = false
      const end = (): void => {
        if (ended) return
        ended = true
        clearInterval(keepalive)
        streams.delete(stream)
        if (!res.writableEnded) res.end()
      }
      streams.add(stream)
      res.on('close', end)
      write('retry: 2000\n\n')
      void snapshot().then(
        (s) => stream.send(JSON.stringify(s)),
        (err: unknown) => onError(err),
      )
    },
    changed: schedule,
    close() {
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      for (const s of [...streams]) s.end()
    },
  }
}
