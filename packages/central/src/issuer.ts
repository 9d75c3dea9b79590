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
  /**
   * Reverse (void) the authorisation of paymentId: once this resolves the card is not charged for
   * it and a later authorize of that paymentId is declined. Idempotent; a paymentId never
   * authorised is simply never charged. Without it, central cannot void online authorisations.
   */
  reverse?(paymentId: string, opts: { signal?: AbortSignal }): Promise<void>
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
  reverse(paymentId: string, opts?: { signal?: AbortSignal }): Promise<void>
  /** current balance of a card in a currency */
  balance(cardKey: string, currency: string): number
  /** every decision made, in order (one per paymentId) */
  decisions(): SimulatedCharge[]
  /** authorize() calls received, retries included */
  readonly calls: number
  /** paymentIds reversed, in order */
  reversals(): string[]
}

/** A journal line recording a reversal (the others are SimulatedCharge). */
interface SimulatedReversal {
  reversed: string
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
  /** reversed paymentIds: their charge (if any) is refunded, later authorisations declined */
  private readonly reversed = new Set<string>()
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

  reversals(): string[] {
    return [...this.reversed]
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

  async reverse(paymentId: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (opts.signal?.aborted === true) throw new AbortError()
    if (this.latencyMs > 0) await delay(this.latencyMs, opts.signal)
    this.loaded ??= this.load()
    await this.loaded
    // in turn with decisions: a reversal that overtakes an authorisation still wins
    const run = this.tail.then(async () => {
      if (this.reversed.has(paymentId)) return
      if (this.journalPath !== undefined)
        await appendFile(this.journalPath, `${JSON.stringify({ reversed: paymentId })}\n`)
      this.unrecord(paymentId)
    })
    this.tail = run.catch(() => {})
    return run
  }

  private async decide(req: AuthorizeRequest): Promise<AuthorizeResult> {
    // a reversed payment stays declined, even when retried after its approval
    if (this.reversed.has(req.paymentId)) return { approved: false, code: 'reversed' }
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

  private unrecord(paymentId: string): void {
    this.reversed.add(paymentId)
    const charge = this.results.get(paymentId)
    if (charge?.result.approved === true) {
      const key = `${charge.cardKey}/${charge.currency}`
      this.balances.set(key, this.balance(charge.cardKey, charge.currency) + charge.amountMinor)
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
      let entry: SimulatedCharge | SimulatedReversal
      try {
        entry = JSON.parse(line) as SimulatedCharge | SimulatedReversal
      } catch {
        continue // a line torn by a crash mid-append: that decision was never returned
      }
      if ('reversed' in entry) {
        if (!this.reversed.has(entry.reversed)) this.unrecord(entry.reversed)
      } else if (!this.results.has(entry.paymentId)) this.record(entry)
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
