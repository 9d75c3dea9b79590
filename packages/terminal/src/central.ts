import { fromBase64url, toBase64url } from '@nullmesh/protocol'
import { DEFAULT_CENTRAL_TIMEOUT_MS, DEFAULT_ONLINE_TIMEOUT_MS } from './constants.js'
import { TerminalError } from './errors.js'

export interface AbortOptions {
  signal?: AbortSignal
}

/** `POST /v1/authorize/void` answer. */
export interface CentralVoid {
  paymentId: string
  /** voided: the customer is not charged for it; committed: a Commit of it reached central first and stands */
  status: 'voided' | 'committed'
}

/** `POST /v1/authorize` answer. */
export interface CentralAuthorization {
  paymentId: string
  status: 'approved' | 'declined'
  declineCode?: string | undefined
}

export interface CentralEventResult {
  /** event id (hex sha256 of the wire bytes) */
  id: string
  status: 'stored' | 'duplicate' | 'rejected'
  code?: string | undefined
  message?: string | undefined
}

/** Central's settlement state of one payment. */
export interface CentralPaymentStatus {
  paymentId: string
  status: 'created' | 'released' | 'queued' | 'processing' | 'completed' | 'failed' | 'voided'
  declineCode?: string | undefined
  syncDeclineCode?: string | undefined
  queuedAt?: number | undefined
  completedAt?: number | undefined
}

/** `POST /v1/sync` answer. */
export interface CentralSyncResult {
  results: CentralEventResult[]
  payments: CentralPaymentStatus[]
}

/**
 * Everything the terminal asks of the central service. A terminal without a CentralLink is
 * offline for good: every payment takes the offline path and nothing is synced. Implementations
 * throw TerminalError `central_unavailable` when central cannot be reached (network, timeout,
 * 5xx) and `central_rejected` when it refused the request (4xx).
 */
export interface CentralLink {
  /** for logs and /v1/status */
  readonly url: string
  /** resolves when central answers its health check */
  health(opts?: AbortOptions): Promise<void>
  /** online authorisation of a signed Reservation (wire bytes) */
  authorize(reservation: Uint8Array, opts?: AbortOptions): Promise<CentralAuthorization>
  /**
   * void a signed Reservation (wire bytes) whose online authorisation went unanswered and that
   * this terminal declines, before releasing it; idempotent, so retry until answered
   */
  void(reservation: Uint8Array, opts?: AbortOptions): Promise<CentralVoid>
  /** one ordered batch of events (wire bytes), at most 500 */
  sync(events: Uint8Array[], opts?: AbortOptions): Promise<CentralSyncResult>
  /** a payment's settlement state, undefined if central does not know it */
  payment(paymentId: string, opts?: AbortOptions): Promise<CentralPaymentStatus | undefined>
  /**
   * several payments' states in one request (at most 500 ids; unknown ones are left out); a central
   * without it answers 404 (TerminalError, upstreamStatus 404). Optional for test doubles.
   */
  payments?(paymentIds: string[], opts?: AbortOptions): Promise<CentralPaymentStatus[]>
  /**
   * one page of a terminal's own events central keeps (wire bytes), seq > afterSeq in seq order;
   * `next` is the seq to ask after when more may follow. A terminal that lost its disk takes them
   * back before it signs (docs/protocol.md, "Lost disks"). Optional for test doubles; a central
   * without it answers 404 (TerminalError, upstreamStatus 404).
   */
  ownEvents?(
    originHex: string,
    afterSeq: number,
    opts?: AbortOptions,
  ): Promise<{ events: Uint8Array[]; next: number | null }>
  /** the venue's signed deny list document (verified by the caller) */
  denylist(venueId: string, opts?: AbortOptions): Promise<unknown>
  /** the venue's operator revocations (signed documents); optional for test doubles */
  revocations?(venueId: string, opts?: AbortOptions): Promise<unknown>
  /** central's signed list of abandoned reservations of the venue (issue 17, item 5) */
  abandoned?(venueId: string, opts?: AbortOptions): Promise<unknown>
  /** tell central this ledger has flushed everything it held at the checkpoint's time */
  checkpoint?(doc: unknown, opts?: AbortOptions): Promise<unknown>
}

export interface HttpCentralLinkInit {
  /** base URL, e.g. http://127.0.0.1:7400 */
  url: string
  /** online authorisations (default 3 s: a customer is waiting) */
  authorizeTimeoutMs?: number
  /** every other request (default 10 s) */
  timeoutMs?: number
  fetch?: typeof fetch
}

class HttpCentralLink implements CentralLink {
  readonly url: string
  readonly #base: string
  readonly #authorizeTimeoutMs: number
  readonly #timeoutMs: number
  readonly #fetch: typeof fetch

  constructor(init: HttpCentralLinkInit) {
    this.url = init.url
    this.#base = init.url.endsWith('/') ? init.url : `${init.url}/`
    this.#authorizeTimeoutMs = init.authorizeTimeoutMs ?? DEFAULT_ONLINE_TIMEOUT_MS
    this.#timeoutMs = init.timeoutMs ?? DEFAULT_CENTRAL_TIMEOUT_MS
    this.#fetch = init.fetch ?? globalThis.fetch.bind(globalThis)
  }

  async health(opts: AbortOptions = {}): Promise<void> {
    await this.#request('GET', 'healthz', undefined, this.#timeoutMs, opts)
  }

  async authorize(reservation: Uint8Array, opts: AbortOptions = {}): Promise<CentralAuthorization> {
    const body = await this.#request(
      'POST',
      'v1/authorize',
      { reservation: toBase64url(reservation) },
      this.#authorizeTimeoutMs,
      opts,
    )
    const r = body as Partial<CentralAuthorization>
    if (typeof r?.paymentId !== 'string' || (r.status !== 'approved' && r.status !== 'declined')) {
      throw new TerminalError('central_unavailable', 'central answered /v1/authorize with an unexpected body')
    }
    return {
      paymentId: r.paymentId,
      status: r.status,
      declineCode: typeof r.declineCode === 'string' ? r.declineCode : undefined,
    }
  }

  async void(reservation: Uint8Array, opts: AbortOptions = {}): Promise<CentralVoid> {
    // the customer has been answered already: no hurry, the normal timeout
    const body = await this.#request(
      'POST',
      'v1/authorize/void',
      { reservation: toBase64url(reservation) },
      this.#timeoutMs,
      opts,
    )
    const r = body as Partial<CentralVoid>
    if (typeof r?.paymentId !== 'string' || (r.status !== 'voided' && r.status !== 'committed')) {
      throw new TerminalError(
        'central_unavailable',
        'central answered /v1/authorize/void with an unexpected body',
      )
    }
    return { paymentId: r.paymentId, status: r.status }
  }

  async sync(events: Uint8Array[], opts: AbortOptions = {}): Promise<CentralSyncResult> {
    const body = (await this.#request(
      'POST',
      'v1/sync',
      { events: events.map(toBase64url) },
      this.#timeoutMs,
      opts,
    )) as Partial<CentralSyncResult>
    if (!Array.isArray(body?.results) || !Array.isArray(body.payments)) {
      throw new TerminalError('central_unavailable', 'central answered /v1/sync with an unexpected body')
    }
    return body as CentralSyncResult
  }

  async payment(paymentId: string, opts: AbortOptions = {}): Promise<CentralPaymentStatus | undefined> {
    try {
      return (await this.#request(
        'GET',
        `v1/payments/${encodeURIComponent(paymentId)}`,
        undefined,
        this.#timeoutMs,
        opts,
      )) as CentralPaymentStatus
    } catch (err: unknown) {
      if (err instanceof TerminalError && err.code === 'central_rejected' && err.upstreamStatus === 404)
        return undefined
      throw err
    }
  }

  async payments(paymentIds: string[], opts: AbortOptions = {}): Promise<CentralPaymentStatus[]> {
    const body = (await this.#request(
      'POST',
      'v1/payments/status',
      { ids: paymentIds },
      this.#timeoutMs,
      opts,
    )) as { payments?: unknown }
    if (!Array.isArray(body?.payments))
      throw new TerminalError(
        'central_unavailable',
        'central answered /v1/payments/status with an unexpected body',
      )
    return body.payments as CentralPaymentStatus[]
  }

  async ownEvents(
    originHex: string,
    afterSeq: number,
    opts: AbortOptions = {},
  ): Promise<{ events: Uint8Array[]; next: number | null }> {
    const body = (await this.#request(
      'GET',
      `v1/terminals/${encodeURIComponent(originHex)}/events?after=${afterSeq}`,
      undefined,
      this.#timeoutMs,
      opts,
    )) as { events?: unknown; next?: unknown }
    const next = body?.next
    if (
      !Array.isArray(body?.events) ||
      !body.events.every((e) => typeof e === 'string') ||
      (next !== null && (typeof next !== 'number' || !Number.isSafeInteger(next) || next <= afterSeq))
    )
      throw new TerminalError(
        'central_unavailable',
        'central answered /v1/terminals/:key/events with an unexpected body',
      )
    return { events: (body.events as string[]).map((e) => fromBase64url(e)), next: next as number | null }
  }

  async denylist(venueId: string, opts: AbortOptions = {}): Promise<unknown> {
    return this.#request(
      'GET',
      `v1/venues/${encodeURIComponent(venueId)}/denylist`,
      undefined,
      this.#timeoutMs,
      opts,
    )
  }

  async revocations(venueId: string, opts: AbortOptions = {}): Promise<unknown> {
    return this.#request(
      'GET',
      `v1/venues/${encodeURIComponent(venueId)}/revocations`,
      undefined,
      this.#timeoutMs,
      opts,
    )
  }

  async abandoned(venueId: string, opts: AbortOptions = {}): Promise<unknown> {
    return this.#request(
      'GET',
      `v1/venues/${encodeURIComponent(venueId)}/abandoned`,
      undefined,
      this.#timeoutMs,
      opts,
    )
  }

  async checkpoint(doc: unknown, opts: AbortOptions = {}): Promise<unknown> {
    return this.#request('POST', 'v1/sync/checkpoint', doc, this.#timeoutMs, opts)
  }

  async #request(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    timeoutMs: number,
    opts: AbortOptions,
  ): Promise<unknown> {
    opts.signal?.throwIfAborted()
    const timeout = AbortSignal.timeout(timeoutMs)
    const signal = opts.signal === undefined ? timeout : AbortSignal.any([opts.signal, timeout])
    let response: Response
    let text: string
    try {
      response = await this.#fetch(new URL(path, this.#base), {
        method,
        headers:
          body === undefined
            ? { accept: 'application/json' }
            : { accept: 'application/json', 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
        signal,
      })
      text = await response.text()
    } catch (err: unknown) {
      if (opts.signal?.aborted === true) throw opts.signal.reason
      const why = timeout.aborted ? `no answer within ${timeoutMs} ms` : (err as Error).message
      throw new TerminalError('central_unavailable', `${method} ${path}: ${why}`, { cause: err })
    }
    let parsed: unknown
    try {
      parsed = text === '' ? undefined : JSON.parse(text)
    } catch {
      parsed = undefined
    }
    if (response.status >= 500 || (parsed === undefined && response.ok)) {
      throw new TerminalError('central_unavailable', `${method} ${path}: HTTP ${response.status}`, {
        upstreamStatus: response.status,
      })
    }
    if (!response.ok) {
      const p = parsed as { code?: unknown; message?: unknown } | undefined
      const detail =
        typeof p?.code === 'string' ? `${p.code}: ${String(p.message ?? '')}` : `HTTP ${response.status}`
      throw new TerminalError('central_rejected', `${method} ${path}: ${detail}`, {
        upstreamStatus: response.status,
      })
    }
    return parsed
  }
}

/** The CentralLink over central's HTTP API. */
export function createHttpCentralLink(init: HttpCentralLinkInit): CentralLink {
  return new HttpCentralLink(init)
}
