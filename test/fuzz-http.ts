import { request } from 'node:http'
import fc from 'fast-check'

/** One raw HTTP request over a real socket: any method, path, headers and body the arbitraries make. */
export interface RawRequest {
  method: string
  path: string
  headers: Record<string, string>
  body: string | undefined
}

export async function send(base: string, r: RawRequest): Promise<{ status: number; body: string }> {
  const url = new URL(base)
  const framed = { ...r.headers }
  // the body is framed either way the headers say (chunked) or by its length: a request the HTTP
  // parser cannot frame is Node's own 400 before any route, not what is fuzzed here
  if (r.body !== undefined && framed['transfer-encoding'] === undefined)
    framed['content-length'] = String(Buffer.byteLength(r.body))
  // one connection per request: a server may close a connection after refusing a body, and a reused
  // keep-alive socket would then fail on the client side, not the server's
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, method: r.method, path: r.path, headers: framed, agent: false },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        )
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer to ${r.method} ${r.path.slice(0, 80)}`)))
    req.end(r.body)
  })
}

const pathChar = fc.constantFrom(
  ...'abcdefghijklmnopqrstuvwxyz0123456789-._~%/?&=:@!$\'()*+,;[]{}|^`"<>\\#'.split(''),
)
const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) })

/** Paths: the API's own routes, with hostile parameters and query strings, and any path at all. */
export function paths(routes: string[]): fc.Arbitrary<string> {
  const param = fc.oneof(
    fc.string({ unit: pathChar, maxLength: 40 }),
    fc.nat({ max: 5000 }).map((n) => 'a'.repeat(n)),
    fc.constantFrom('%00', '%2e%2e', '..', '%ff%fe', '0'.repeat(64), 'constructor', '__proto__'),
  )
  const route = fc
    .tuple(fc.constantFrom(...routes), param, fc.option(fc.string({ unit: pathChar, maxLength: 60 })))
    .map(
      ([r, p, q]) =>
        `${r.replace(':id', encodeURIComponent(p).replaceAll('%25', '%'))}${q === null ? '' : `?${q}`}`,
    )
  const any = fc.string({ unit: pathChar, maxLength: 200 }).map((s) => `/${s}`)
  return fc.oneof(route, route, any)
}

/** Bodies: valid-looking JSON with hostile values, any JSON, and bytes that are not JSON at all. */
export function bodies(examples: unknown[]): fc.Arbitrary<string | undefined> {
  const json = fc.jsonValue({ maxDepth: 4 })
  const tweaked = fc
    .tuple(fc.constantFrom(...examples), fc.string({ maxLength: 12 }), json)
    .map(([ex, k, v]) => {
      const base = ex !== null && typeof ex === 'object' ? { ...(ex as object) } : {}
      const keys = Object.keys(base)
      const key = keys.length > 0 && k.length % 2 === 0 ? keys[k.length % keys.length]! : k
      return { ...base, [key]: v }
    })
  return fc.oneof(
    fc.constant(undefined),
    json.map((v) => JSON.stringify(v)),
    tweaked.map((v) => JSON.stringify(v)),
    printable,
    fc.constantFrom(
      '{',
      '{"a":',
      '[',
      'null',
      '""',
      '{"__proto__":{"x":1}}',
      '{"constructor":{"prototype":{}}}',
    ),
  )
}

/** Headers: content types right and wrong, lengths and encodings that lie, junk headers. */
export function headers(token: string | undefined): fc.Arbitrary<Record<string, string>> {
  return fc
    .record(
      {
        'content-type': fc.constantFrom(
          'application/json',
          'application/json; charset=utf-8',
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          'application/octet-stream',
          '',
          'application/json; charset=latin1',
        ),
        authorization: fc.oneof(
          fc.constant(token === undefined ? 'Bearer none' : `Bearer ${token}`),
          fc.constant(token === undefined ? 'Bearer none' : `bearer   ${token}  `),
          printable.map((s) => `Bearer ${s}`),
          printable,
        ),
        'x-junk': printable,
        'content-encoding': fc.constantFrom('gzip', 'br', 'identity', 'deflate'),
        'transfer-encoding': fc.constant('chunked'),
        accept: fc.constantFrom('*/*', 'text/event-stream', 'application/json'),
      },
      { requiredKeys: [] },
    )
    .map(
      (h) =>
        Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Record<string, string>,
    )
}

export const methods = fc.constantFrom(
  'GET',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'HEAD',
  'OPTIONS',
  'TRACE',
  'FOO',
)
