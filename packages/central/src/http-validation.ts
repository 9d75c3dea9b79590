import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { CentralError } from './errors.js'

/**
 * Fastify's default (ajv) validator coerces types and silently drops unknown fields: `{"events":
 * "AAAA"}` became `["AAAA"]`, `[123456]` became `["123456"]`, a one-element array a string (issue 17,
 * item 4). This one checks bodies and path parameters exactly as the route's TypeBox schema says,
 * and refuses unknown fields of any object schema unless it allows them. Query strings are text, so
 * only there are values converted (`limit=5` → 5) before the same exact check.
 *
 * A failure is `CentralError ERR_INVALID_REQUEST` (400) whose message names the part and field,
 * e.g. `body/events/1: Expected string to match '^[A-Za-z0-9_-]+$'`.
 */
type HttpPart = 'body' | 'params' | 'querystring' | 'headers' | string

function closed(schema: TSchema): TSchema {
  // an object schema without an explicit additionalProperties is closed: unknown fields are refused
  if (schema.type === 'object' && schema.additionalProperties === undefined)
    return { ...schema, additionalProperties: false }
  return schema
}

const INTEGER = /^-?(0|[1-9][0-9]{0,15})$/
const NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/

/** Query values are text: a property the schema declares numeric is read as a number when it is one. */
function readQuery(schema: TSchema, data: unknown): unknown {
  if (data === null || typeof data !== 'object') return data
  const props = (schema.properties ?? {}) as Record<string, TSchema>
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(data)) {
    const type = props[k]?.type
    if (typeof v === 'string' && type === 'integer' && INTEGER.test(v)) out[k] = Number(v)
    else if (typeof v === 'string' && type === 'number' && NUMBER.test(v)) out[k] = Number(v)
    else out[k] = v
  }
  return out
}

export function strictValidatorCompiler({ schema, httpPart }: { schema: unknown; httpPart?: HttpPart }) {
  const part = httpPart ?? 'body'
  const s = closed(schema as TSchema)
  const check = TypeCompiler.Compile(s)
  return (data: unknown): { value: unknown } | { error: Error } => {
    const value = part === 'querystring' ? readQuery(s, data) : data
    if (check.Check(value)) return { value }
    const first = check.Errors(value).First()
    const where = first === undefined || first.path === '' ? part : `${part}${first.path}`
    const what = first?.message ?? 'invalid'
    return { error: new CentralError('ERR_INVALID_REQUEST', `${where}: ${what}`, 400) }
  }
}

/**
 * What Node's HTTP parser refuses before any route (an unknown method, a malformed request line or
 * header, headers too large, a timeout) answered as `{ code, message }` like every other error,
 * instead of Fastify's own `{ error, message, statusCode }` body (the terminal has the same).
 */
export function jsonClientErrorHandler(codes: { invalid: string; timeout: string; headers: string }) {
  return (err: NodeJS.ErrnoException, socket: Duplex): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    const [status, code, message] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, codes.timeout, 'the request was not received in time']
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? [431, codes.headers, 'the request headers are too large']
          : [400, codes.invalid, 'the request is not valid HTTP/1.1 (method, request line or headers)']
    const body = JSON.stringify({ code, message })
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  }
}
