import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, TAP_AT_HEADER } from './constants.js'
import { TerminalApiError } from './errors.js'
import { SseParser } from './sse.js'
import {
  type ApiErrorBody,
  type Payment,
  type PaymentRequest,
  type PaymentResponse,
  TERMINAL_EVENT_TYPES,
  type TerminalEvent,
  type TerminalEventType,
  type TerminalStatus,
} from './types.js'

export interface TerminalClientInit {
  /** base URL of the terminal's API, e.g. http://127.0.0.1:7401 */
  url: string
  /** the terminal's bearer token */
  token: string
  /** per-request timeout (default 10 s); `events()` uses it for the connection only */
  timeoutMs?: number
  /** a fetch implementation (default: the global fetch) */
  fetch?: typeof fetch
}

export interface CallOptions {
  signal?: AbortSignal
  /** overrides the client's timeout for this call */
  timeoutMs?: number
}

export interface PayOptions extends CallOptions {
  /** when the card was tapped, ms since the epoch (default: now, as pay() is called) */
  tappedAt?: number
}

export interface EventsOptions {
  /** ends the stream: the iterator throws the signal's reason */
  signal?: AbortSignal
  /** only these event types (default: all) */
  types?: TerminalEventType[]
}

const KNOWN_TYPES: ReadonlySet<string> = new Set(TERMINAL_EVENT_TYPES)

/**
 * SDK for a POS app talking to its nullmesh terminal over the local HTTP API.
 *
 * @example
 * ```ts
 * const client = new TerminalClient({ url: 'http://127.0.0.1:7401', token })
 * const answer = await client.pay({ idempotencyKey: 'order-1', cardToken, amountMinor: 1250, currency: 'EUR', method: 'contactless' })
 * ```
 */
export class TerminalClient {
  readonly url: string
  readonly #token: string
  readonly #timeoutMs: number
  readonly #fetch: typeof fetch

  constructor(init: TerminalClientInit) {
    if (typeof init?.url !== 'string' || init.url === '')
      throw new TypeError('TerminalClient: url is required')
    if (typeof init.token !== 'string' || init.token === '')
      throw new TypeError('TerminalClient: token is required')
    this.url = init.url.endsWith('/') ? init.url : `${init.url}/`
    this.#token = init.token
    this.#timeoutMs = init.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.#fetch = init.fetch ?? globalThis.fetch.bind(globalThis)
  }

  /**
   * `POST /v1/payments`: one decision. Retrying with the same idempotencyKey returns the first
   * decision. Sends the tap's time (`tappedAt`, default now) so the terminal's tap budget counts
   * from the tap, not from when it read the request.
   */
  async pay(body: PaymentRequest, opts: PayOptions = {}): Promise<PaymentResponse> {
    const tappedAt = Math.floor(opts.tappedAt ?? Date.now())
    return this.#json<PaymentResponse>('POST', 'v1/payments', opts, body, {
      [TAP_AT_HEADER]: String(tappedAt),
    })
  }

  /** `GET /v1/payments/:id`: the decision and its settlement state. */
  async payment(id: string, opts: CallOptions = {}): Promise<Payment> {
    return this.#json<Payment>('GET', `v1/payments/${encodeURIComponent(id)}`, opts)
  }

  /** `GET /v1/status` */
  async status(opts: CallOptions = {}): Promise<TerminalStatus> {
    return this.#json<TerminalStatus>('GET', 'v1/status', opts)
  }

  /**
   * `GET /v1/events` as an async iterator of typed events. Breaking out of the loop closes the
   * connection; aborting `signal` ends it with the signal's reason. Event types this SDK does not
   * know (a newer terminal) are skipped.
   */
  async *events(opts: EventsOptions = {}): AsyncGenerator<TerminalEvent, void, undefined> {
    const controller = new AbortController()
    const onAbort = (): void => controller.abort(opts.signal?.reason)
    opts.signal?.throwIfAborted()
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    const connectTimer = setTimeout(
      () => controller.abort(new TerminalApiError('timeout', 0, 'timed out connecting to the event stream')),
      Math.max(this.#timeoutMs, DEFAULT_CONNECT_TIMEOUT_MS),
    )
    const wanted = opts.types === undefined ? undefined : new Set<string>(opts.types)
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined
    try {
      let response: Response
      try {
        response = await this.#fetch(new URL('v1/events', this.url), {
          headers: { authorization: `Bearer ${this.#token}`, accept: 'text/event-stream' },
          signal: controller.signal,
        })
      } catch (err: unknown) {
        throw this.#failure(err, controller.signal, opts.signal)
      } finally {
        clearTimeout(connectTimer)
      }
      if (!response.ok) throw await toApiError(response)
      if (response.body === null)
        throw new TerminalApiError('network_error', response.status, 'event stream has no body')
      reader = response.body.getReader()
      const decoder = new TextDecoder()
      const parser = new SseParser()
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>
        try {
          chunk = await reader.read()
        } catch (err: unknown) {
          throw this.#failure(err, controller.signal, opts.signal)
        }
        if (chunk.done) return
        for (const message of parser.push(decoder.decode(chunk.value, { stream: true }))) {
          if (!KNOWN_TYPES.has(message.event)) continue
          if (wanted !== undefined && !wanted.has(message.event)) continue
          let data: unknown
          try {
            data = JSON.parse(message.data)
          } catch {
            continue
          }
          yield { type: message.event, id: message.id, data } as TerminalEvent
        }
      }
    } finally {
      clearTimeout(connectTimer)
      opts.signal?.removeEventListener('abort', onAbort)
      if (!controller.signal.aborted) controller.abort()
      await reader?.cancel().catch(() => {})
    }
  }

  async #json<T>(
    method: 'GET' | 'POST',
    path: string,
    opts: CallOptions,
    body?: unknown,
    extra: Record<string, string> = {},
  ): Promise<T> {
    opts.signal?.throwIfAborted()
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs
    const timeout = AbortSignal.timeout(timeoutMs)
    const signal = opts.signal === undefined ? timeout : AbortSignal.any([opts.signal, timeout])
    const headers: Record<string, string> = {
      ...extra,
      authorization: `Bearer ${this.#token}`,
      accept: 'application/json',
    }
    if (body !== undefined) headers['content-type'] = 'application/json'
    let response: Response
    let text: string
    try {
      response = await this.#fetch(new URL(path, this.url), {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        signal,
      })
      text = await response.text()
    } catch (err: unknown) {
      throw this.#failure(err, timeout, opts.signal, timeoutMs)
    }
    if (!response.ok) throw errorFromBody(response.status, text)
    try {
      return JSON.parse(text) as T
    } catch (err: unknown) {
      throw new TerminalApiError(
        'invalid_response',
        response.status,
        'the terminal answered with invalid JSON',
        { cause: err },
      )
    }
  }

  /** Map a fetch failure: the caller's abort as is, our timeout and network errors as TerminalApiError. */
  #failure(err: unknown, own: AbortSignal, caller: AbortSignal | undefined, timeoutMs?: number): unknown {
    if (caller?.aborted === true) return caller.reason
    if (err instanceof TerminalApiError) return err
    if (own.aborted && own.reason instanceof TerminalApiError) return own.reason
    if (own.aborted) {
      return new TerminalApiError(
        'timeout',
        0,
        `no answer from the terminal within ${timeoutMs ?? this.#timeoutMs} ms`,
        { cause: err },
      )
    }
    const message = err instanceof Error ? err.message : String(err)
    return new TerminalApiError('network_error', 0, `cannot reach the terminal at ${this.url}: ${message}`, {
      cause: err,
    })
  }
}

async function toApiError(response: Response): Promise<TerminalApiError> {
  let text = ''
  try {
    text = await response.text()
  } catch {
    // keep the status alone
  }
  return errorFromBody(response.status, text)
}

function errorFromBody(status: number, text: string): TerminalApiError {
  let body: Partial<ApiErrorBody> = {}
  try {
    const parsed: unknown = JSON.parse(text)
    if (parsed !== null && typeof parsed === 'object') body = parsed as Partial<ApiErrorBody>
  } catch {
    // not JSON
  }
  const code = typeof body.code === 'string' ? body.code : `http_${status}`
  const message = typeof body.message === 'string' ? body.message : `HTTP ${status}`
  return new TerminalApiError(code, status, message, {
    field: typeof body.field === 'string' ? body.field : undefined,
  })
}
