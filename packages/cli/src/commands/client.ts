import { randomUUID } from 'node:crypto'
import type { OfflineBehavior, PaymentMethod, PaymentRequest } from '@nullmesh/client'
import { fromBase64url } from '@nullmesh/protocol'
import { urlArg } from '../args.js'
import { UserError } from '../errors.js'
import { money } from './venue.js'

interface Target {
  api?: string
  token?: string
}

async function client(opts: Target) {
  const url =
    opts.api ??
    (process.env.NULLMESH_API === undefined ? 'http://127.0.0.1:8080' : urlArg(process.env.NULLMESH_API))
  const token = opts.token ?? process.env.NULLMESH_TOKEN
  if (token === undefined || token === '') {
    throw new UserError(
      'a bearer token is required: --token T (or NULLMESH_TOKEN); `nullmesh terminal` prints it in its ready line',
    )
  }
  const { TerminalClient } = await import('@nullmesh/client')
  return new TerminalClient({ url, token, timeoutMs: 15_000 })
}

/** A client error (no answer, 401, 400…) as one line naming the terminal. */
function explain(err: unknown, url: string): never {
  const e = err as { code?: unknown; status?: unknown; message?: unknown; field?: unknown }
  if (typeof e?.code === 'string' && typeof e.status === 'number') {
    if (e.status === 0)
      throw new UserError(
        `cannot reach the terminal at ${url} (${e.code}): is it running? (${String(e.message)})`,
        1,
      )
    if (e.status === 401 || e.status === 403)
      throw new UserError(`the terminal at ${url} refused the token (${e.code})`, 1)
    const field = typeof e.field === 'string' ? ` [${e.field}]` : ''
    throw new UserError(`the terminal answered ${e.status} ${e.code}${field}: ${String(e.message)}`, 1)
  }
  throw err
}

export async function status(opts: Target & { json?: boolean }): Promise<void> {
  const c = await client(opts)
  const s = await c.status().catch((err: unknown) => explain(err, c.url))
  if (opts.json === true) {
    console.log(JSON.stringify(s))
    return
  }
  console.log(`terminal ${s.terminal ?? '?'} (${s.peerId ?? '?'}) at ${c.url}`)
  console.log(`  central: ${s.online ? 'online' : 'offline'}`)
  console.log(
    `  mesh: ${s.mesh.mode}, ${s.mesh.peers} of ${Math.max(0, s.mesh.roster - 1)} peers ready, quorum ${s.mesh.quorum}`,
  )
  const amounts = Object.entries(s.queue.amountsByCurrency ?? {})
    .map(([cur, v]) => `${money(v)} ${cur}`)
    .join(', ')
  console.log(`  queue: ${s.queue.count} payment(s) awaiting central${amounts === '' ? '' : ` (${amounts})`}`)
  console.log(`  partition exposure bound: ${money(s.exposureBoundMinor)}`)
}

export interface PayOptions extends Target {
  card: string
  amount: number
  currency: string
  method: PaymentMethod
  idempotencyKey?: string
  counter?: number
  offlineBehavior?: OfflineBehavior
  json?: boolean
}

export async function pay(opts: PayOptions): Promise<number> {
  if (!/^[A-Z]{3}$/.test(opts.currency))
    throw new UserError(`--currency ${opts.currency}: expected an ISO 4217 code such as EUR`)
  const c = await client(opts)
  const body: PaymentRequest = {
    idempotencyKey: opts.idempotencyKey ?? `cli-${randomUUID()}`,
    cardToken: opts.card,
    amountMinor: opts.amount,
    currency: opts.currency,
    method: opts.method,
  }
  if (opts.counter !== undefined) body.credentialCounter = opts.counter
  if (opts.offlineBehavior !== undefined) body.offlineBehavior = opts.offlineBehavior
  const r = await c.pay(body).catch((err: unknown) => explain(err, c.url))
  if (opts.json === true) {
    console.log(JSON.stringify(r))
  } else {
    const approved = r.status.startsWith('approved')
    console.log(
      `${approved ? 'APPROVED' : 'DECLINED'} ${r.status}${r.declineCode === undefined ? '' : ` (${r.declineCode})`} — ${money(opts.amount)} ${opts.currency} at ${r.terminal}, mode ${r.mode}`,
    )
    console.log(`  payment ${r.paymentId}`)
    console.log(`  idempotency key ${body.idempotencyKey}`)
    if (r.barrier !== undefined)
      console.log(`  barrier ${r.barrier.acks}/${r.barrier.quorum} acks in ${r.barrier.ms} ms`)
    console.log(`  proof ${fromBase64url(r.proof).byteLength} bytes${r.queued ? ', queued for central' : ''}`)
  }
  return r.status.startsWith('approved') ? 0 : 3
}
