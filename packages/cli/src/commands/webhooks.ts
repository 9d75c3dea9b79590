import { createHmac, randomBytes } from 'node:crypto'
import { urlArg } from '../args.js'
import { UserError } from '../errors.js'
import { runUntilSignalled } from '../lifecycle.js'

interface CentralTarget {
  central?: string
  token?: string
}

interface Central {
  url: string
  token: string
}

/** a loosely typed event of the log: { id, type, createdAt, data: { payment } } */
interface LoggedEvent {
  id: string
  type: string
  createdAt: number
  data?: { payment?: { paymentId?: string } }
}

function target(opts: CentralTarget): Central {
  const env = process.env.NULLMESH_CENTRAL
  const url = opts.central ?? (env === undefined || env === '' ? undefined : urlArg(env))
  if (url === undefined)
    throw new UserError(
      '--central <url> is required (or NULLMESH_CENTRAL): central’s URL, e.g. http://127.0.0.1:8080',
    )
  const token = opts.token ?? process.env.NULLMESH_ADMIN_TOKEN
  if (token === undefined || token === '')
    throw new UserError('--token <token> is required (or NULLMESH_ADMIN_TOKEN): central’s admin token')
  return { url, token }
}

/** One call to central's API; a 4xx/5xx becomes a one-line UserError with central's message. */
async function call<T>(c: Central, method: string, path: string, body?: unknown): Promise<T> {
  let res: Response
  try {
    res = await fetch(`${c.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${c.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    })
  } catch (err: unknown) {
    const why =
      err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err)
    throw new UserError(`cannot reach central at ${c.url}: ${why}`, 1)
  }
  const text = await res.text()
  let parsed: unknown
  try {
    parsed = text === '' ? undefined : JSON.parse(text)
  } catch {
    parsed = undefined
  }
  if (!res.ok) {
    const e = parsed as { code?: string; message?: string } | undefined
    const hint = res.status === 401 || res.status === 403 ? ' (check --token)' : ''
    throw new UserError(
      `central answered ${res.status} ${e?.code ?? ''}: ${e?.message ?? text.slice(0, 200)}${hint}`.replace(
        /\s+:/,
        ':',
      ),
      1,
    )
  }
  return parsed as T
}

function sign(body: string, secret: string, t: number): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.`).update(body).digest('hex')}`
}

export interface ListenOptions extends CentralTarget {
  forwardTo: string
  events?: string
  secret?: string
  poll?: number
  json?: boolean
}

/** events created this long before the newest one seen are read again (a late commit is not missed) */
const LOOKBACK_MS = 30_000

/**
 * `nullmesh webhooks listen`: poll the event log, forward every event not seen yet, in the log's
 * order, signed with the listen secret; print one line per event with the status it got.
 */
export async function webhooksListen(opts: ListenOptions): Promise<number> {
  const c = target(opts)
  const secret = opts.secret ?? `whsec_${randomBytes(32).toString('base64url')}`
  const pollMs = opts.poll ?? 500
  const typeQuery = opts.events === undefined ? '' : `&type=${encodeURIComponent(opts.events)}`
  // what is in the log now is not new: the newest event, and everything in the look-back before it
  const first = await call<{ events: LoggedEvent[] }>(c, 'GET', `/v1/events?limit=1${typeQuery}`)
  const seen = new Map<string, number>()
  let newest = first.events[0]?.createdAt ?? 0
  let stopping = false
  let wake: (() => void) | undefined

  const forward = async (e: LoggedEvent): Promise<void> => {
    const body = JSON.stringify(e)
    const t = Date.now()
    let status: number | undefined
    let error: string | undefined
    try {
      const res = await fetch(opts.forwardTo, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'nullmesh-cli-webhooks-listen',
          'nullmesh-signature': sign(body, secret, t),
        },
        body,
        signal: AbortSignal.timeout(10_000),
      })
      await res.arrayBuffer().catch(() => undefined)
      status = res.status
    } catch (err: unknown) {
      error = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err)
    }
    if (opts.json === true) {
      console.log(
        JSON.stringify({
          at: new Date(t).toISOString(),
          id: e.id,
          type: e.type,
          status: status ?? null,
          error,
        }),
      )
    } else {
      const payment = e.data?.payment?.paymentId
      console.log(
        `${new Date(t).toISOString()}  ${e.type.padEnd(18)}  ${e.id}${payment === undefined ? '' : `  payment ${payment.slice(0, 12)}…`}  → ${status ?? `error: ${error}`}`,
      )
    }
  }

  /** read the log from the look-back on; forward (or, at start, only remember) what was not seen */
  const pollOnce = async (forwarding = true): Promise<void> => {
    let cursor: string | undefined
    const since = Math.max(0, newest - LOOKBACK_MS)
    for (;;) {
      const page = await call<{ events: LoggedEvent[]; nextCursor: string | null }>(
        c,
        'GET',
        `/v1/events?order=asc&limit=100&created_gte=${since}${typeQuery}${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`,
      )
      for (const e of page.events) {
        if (stopping) return
        if (seen.has(e.id)) continue
        seen.set(e.id, e.createdAt)
        newest = Math.max(newest, e.createdAt)
        if (forwarding) await forward(e)
      }
      if (page.nextCursor === null) break
      cursor = page.nextCursor
    }
    for (const [id, at] of seen) if (at < newest - 2 * LOOKBACK_MS) seen.delete(id)
  }

  if (newest > 0) await pollOnce(false)
  let loop: Promise<void> = Promise.resolve()
  const done = runUntilSignalled('webhooks listen', async () => {
    stopping = true
    wake?.()
    await loop
  })
  console.error(
    `Ready! Forwarding central ${c.url} events to ${opts.forwardTo}\nYour webhook signing secret is ${secret} (Ctrl-C to quit)`,
  )
  let complained = 0
  loop = (async () => {
    while (!stopping) {
      try {
        await pollOnce()
      } catch (err: unknown) {
        if (Date.now() - complained > 10_000) {
          complained = Date.now()
          console.error(`webhooks listen: ${err instanceof Error ? err.message : String(err)} (retrying)`)
        }
      }
      if (stopping) break
      await new Promise<void>((resolve) => {
        wake = resolve
        // not unref'd: this timer is what keeps the process running between polls
        setTimeout(resolve, pollMs)
      })
    }
  })()
  process.exit(await done)
}

export interface TriggerOptions extends CentralTarget {
  endpoint: string
  json?: boolean
}

/** `nullmesh webhooks trigger <type> --endpoint ID`: central signs and sends one test event now. */
export async function webhooksTrigger(type: string, opts: TriggerOptions): Promise<number> {
  const c = target(opts)
  const r = await call<{ event: LoggedEvent; status: number; error?: string; durationMs: number }>(
    c,
    'POST',
    `/v1/webhooks/${encodeURIComponent(opts.endpoint)}/test`,
    { type },
  )
  const ok = r.status >= 200 && r.status < 300
  if (opts.json === true) console.log(JSON.stringify(r))
  else
    console.log(
      `${r.event.type} ${r.event.id} → ${opts.endpoint}: ${r.status === 0 ? `no answer (${r.error ?? 'error'})` : r.status} in ${r.durationMs} ms`,
    )
  return ok ? 0 : 1
}
