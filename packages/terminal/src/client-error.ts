import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { TerminalError, type TerminalErrorCode } from './errors.js'

/**
 * What Node's HTTP parser refuses before any route (an unknown method, a malformed request line or
 * header, headers too large, a timeout), answered as `{ code, message }` like every other error
 * instead of Fastify's own `{ error, message, statusCode }` body (issue 17, found by fuzzing).
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const [code, message]: [TerminalErrorCode, string] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? ['request_timeout', 'the request was not received in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? ['headers_too_large', 'the request headers are too large']
        : ['invalid_request', 'the request is not valid HTTP/1.1 (method, request line or headers)']
  const e = new TerminalError(code, message)
  const body = JSON.stringify(e.toJSON())
  socket.end(
    `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  )
}
