import { createHmac } from 'node:crypto'
import { appendFile, readFile } from 'node:fs/promises'
import { AbortError } from './errors.js'

export interface AuthorizeRequest {
  /** idempotency key: the same paymentId never charges twice */
  paymentId: string
  venue: string
  /** the terminal's keyed card hash (hex), never a card number */
  cardKey: string
  nullifier: string
  amountMinor: number
  currency: string
}

export type AuthorizeResult =
  | { approved: true; authorizationCode: string }
  | { approved: false; code: string }

/** The payment processor. Calls must be idempotent by paymentId: central retries after a crash. */
export interface IssuerAdapter {
  authorize(req: AuthorizeRequest, opts: { signal?: AbortSignal }): Promise<AuthorizeResult>
}

export interface SimulatedIssuerInit {
  /** decisions (random declines, authorisation codes) are a pure function of seed and paymentId */
  seed?: string | number
  /** share of otherwise approvable payments declined with 'issuer_declined' (0..1, default 0) */
  declineRate?: number
  /** balance of a card/currency not listed in balances (default 1,000,000.00) */
  defaultBalanceMinor?: number
  /** cardKeyHex → currency → balance in minor units */
  balances?: Record<string, Record<string, number>>
  /** cardKeyHex of cards reported lost or stolen */
  lostOrStolen?: string[]
  /**
   * Append every decision to this JSON-lines file and replay it on first use, so the simulated
   * issuer's idempotency and balances survive a restart like a real processor's would.
   */
  journalPath?: string
  /** simulated processing time per call (default 0) */
  latencyMs?: number
}

export interface SimulatedCharge {
  paymentId: string
  cardKey: string
  currency: string
  amountMinor: number
  result: AuthorizeResult
}

export interface SimulatedIssuer extends IssuerAdapter {
  /** current balance of a card in a currency */
  balance(cardKey: string, currency: string): number
  /** every decision made, in order (one per paymentId) */
  decisions(): SimulatedCharge[]
  /** authorize() calls received, retries included */
  readonly calls: number
}

class DefaultSimulatedIssuer implements SimulatedIssuer {
  private readonly seed: string
  private readonly declineRate: number
  private readonly defaultBalance: number
  private readonly balances = new Map<string, number>()
  private readonly lost: Set<string>
  private readonly journalPath: string | undefined
  private readonly latencyMs: number
  private readonly results = new Map<string, SimulatedCharge>()
  private loaded: Promise<void> | undefined
  private tail: Promise<unknown> = Promise.resolve()
  calls = 0

  constructor(init: SimulatedIssuerInit) {
    this.seed = String(init.seed ?? 'nullmesh')
    this.declineRate = init.declineRate ?? 0
    if (!(this.declineRate >= 0 && this.declineRate <= 1))
      throw new RangeError('declineRate must be within 0..1')
    this.defaultBalance = init.defaultBalanceMinor ?? 100_000_000
    for (const [card, byCurrency] of Object.entries(init.balances ?? {})) {
      for (const [currency, amount] of Object.entries(byCurrency))
        this.balances.set(`${card}/${currency}`, amount)
    }
    this.lost = new Set(init.lostOrStolen ?? [])
    this.journalPath = init.journalPath
    this.latencyMs = init.latencyMs ?? 0
  }

  balance(cardKey: string, currency: string): number {
    return this.balances.get(`${cardKey}/${currency}`) ?? this.defaultBalance
  }

  decisions(): SimulatedCharge[] {
    return [...this.results.values()]
  }

  async authorize(req: AuthorizeRequest, opts: { signal?: AbortSignal } = {}): Promise<AuthorizeResult> {
    this.calls++
    if (opts.signal?.aborted === true) throw new AbortError()
    if (this.latencyMs > 0) await delay(this.latencyMs, opts.signal)
    this.loaded ??= this.load()
    await this.loaded
    // one decision at a time: balances are read-modify-write and the journal is append-only
    const run = this.tail.then(() => this.decide(req))
    this.tail = run.catch(() => {})
    return run
  }

  private async decide(req: AuthorizeRequest): Promise<AuthorizeResult> {
    const previous = this.results.get(req.paymentId)
    if (previous !== undefined) return previous.result
    let result: AuthorizeResult
    const balance = this.balance(req.cardKey, req.currency)
    if (this.lost.has(req.cardKey)) result = { approved: false, code: 'lost_or_stolen' }
    else if (balance < req.amountMinor) result = { approved: false, code: 'insufficient_funds' }
    else if (this.draw(req.paymentId) < this.declineRate)
      result = { approved: false, code: 'issuer_declined' }
    else
      result = {
        approved: true,
        authorizationCode: this.hmac(`auth:${req.paymentId}`).slice(0, 6).toUpperCase(),
      }
    const charge: SimulatedCharge = {
      paymentId: req.paymentId,
      cardKey: req.cardKey,
      currency: req.currency,
      amountMinor: req.amountMinor,
      result,
    }
    if (this.journalPath !== undefined) await appendFile(this.journalPath, `${JSON.stringify(charge)}\n`)
    this.record(charge)
    return result
  }

  private record(charge: SimulatedCharge): void {
    this.results.set(charge.paymentId, charge)
    if (charge.result.approved) {
      const key = `${charge.cardKey}/${charge.currency}`
      this.balances.set(key, this.balance(charge.cardKey, charge.currency) - charge.amountMinor)
    }
  }

  private async load(): Promise<void> {
    if (this.journalPath === undefined) return
    let text: string
    try {
      text = await readFile(this.journalPath, 'utf8')
    } catch (err: unknown) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue
      let charge: SimulatedCharge
      try {
        charge = JSON.parse(line) as SimulatedCharge
      } catch {
        continue // a line torn by a crash mid-append: that decision was never returned
      }
      if (!this.results.has(charge.paymentId)) this.record(charge)
    }
  }

  private hmac(text: string): string {
    return createHmac('sha256', this.seed).update(text).digest('hex')
  }

  /** a uniform number in [0, 1) from seed and paymentId */
  private draw(paymentId: string): number {
    return Number.parseInt(this.hmac(`draw:${paymentId}`).slice(0, 8), 16) / 2 ** 32
  }
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(new AbortError())
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** A deterministic in-process issuer for development, tests and demos. */
export function createSimulatedIssuer(init: SimulatedIssuerInit = {}): SimulatedIssuer {
  return new DefaultSimulatedIssuer(init)
}
