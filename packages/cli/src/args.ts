import { statSync } from 'node:fs'
import { resolve } from 'node:path'
import { InvalidArgumentError } from 'commander'
import { UserError } from './errors.js'

/** commander argument parser: an integer within [min, max]. */
export function intArg(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError('expected an integer.')
    const n = Number(value)
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER
          ? `expected an integer >= ${min}.`
          : `expected an integer from ${min} to ${max}.`,
      )
    }
    return n
  }
}

/** commander argument parser: a custodian group size (`barrier.groupSize`): odd, 1–127. */
export function groupSizeArg(value: string): number {
  const n = intArg(1, 127)(value)
  if (n % 2 === 0) {
    throw new InvalidArgumentError(
      `expected an odd integer from 1 to 127 (an even group tolerates no more failures than ${n - 1} and needs one more ack).`,
    )
  }
  return n
}

/** commander argument parser: a finite number within [min, max]. */
export function numberArg(min: number, max = Number.POSITIVE_INFINITY): (value: string) => number {
  return (value: string) => {
    const n = Number(value)
    if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        Number.isFinite(max) ? `expected a number from ${min} to ${max}.` : `expected a number >= ${min}.`,
      )
    }
    return n
  }
}

/** commander argument parser: one of a fixed set of words. */
export function choiceArg<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value: string) => {
    if (!(choices as readonly string[]).includes(value))
      throw new InvalidArgumentError(`expected one of ${choices.join(', ')}.`)
    return value as T
  }
}

export interface HostPort {
  host: string
  port: number
}

/** `HOST:PORT`, `:PORT` or `PORT` (host 127.0.0.1); IPv6 as `[::1]:PORT`. */
export function parseHostPort(value: string): HostPort {
  const text = value.trim()
  let host = '127.0.0.1'
  let portText = text
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(text)
  if (v6 !== null) {
    host = v6[1]!
    portText = v6[2]!
  } else if (text.includes(':')) {
    const i = text.lastIndexOf(':')
    host = text.slice(0, i) || host
    portText = text.slice(i + 1)
  }
  if (!/^\d+$/.test(portText)) throw new InvalidArgumentError('expected HOST:PORT, e.g. 127.0.0.1:8080.')
  const port = Number(portText)
  if (port > 65_535) throw new InvalidArgumentError('port must be from 0 to 65535.')
  if (!/^[a-zA-Z0-9.:-]+$/.test(host)) throw new InvalidArgumentError('invalid host.')
  return { host, port }
}

export function hostPortArg(value: string): HostPort {
  return parseHostPort(value)
}

/** An http(s) URL; a bare HOST:PORT is taken as http://HOST:PORT. */
export function urlArg(value: string): string {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new InvalidArgumentError('expected a URL, e.g. http://127.0.0.1:8080.')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InvalidArgumentError('expected an http:// or https:// URL.')
  return url.toString().replace(/\/$/, '')
}

/** A multiaddr string (checked for shape only; libp2p validates it on start). */
/** a PostgreSQL connection URL */
export function pgUrlArg(value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new InvalidArgumentError(`${value} is not a URL (postgres://user:pass@host:port/db)`)
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')
    throw new InvalidArgumentError(`${value}: expected postgres://user:pass@host:port/db`)
  return value
}

export function multiaddrArg(value: string): string {
  if (!/^\/(ip4|ip6|dns|dns4|dns6|unix)\/\S+/.test(value))
    throw new InvalidArgumentError('expected a multiaddr, e.g. /ip4/127.0.0.1/tcp/0.')
  return value
}

/** commander collector for variadic options given several times. */
export function collect<T>(parse: (value: string) => T): (value: string, previous: T[] | undefined) => T[] {
  return (value, previous) => [...(previous ?? []), parse(value)]
}

/** An existing directory, resolved; a UserError naming the flag otherwise. */
export function existingDir(path: string, what: string): string {
  const full = resolve(path)
  let isDir = false
  try {
    isDir = statSync(full).isDirectory()
  } catch {
    throw new UserError(`${what} ${path} does not exist`)
  }
  if (!isDir) throw new UserError(`${what} ${path} is not a directory`)
  return full
}

/** An existing regular file, resolved. */
export function existingFile(path: string, what: string): string {
  const full = resolve(path)
  let isFile = false
  try {
    isFile = statSync(full).isFile()
  } catch {
    throw new UserError(`${what} ${path} does not exist`)
  }
  if (!isFile) throw new UserError(`${what} ${path} is not a file`)
  return full
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** A duration: `500ms`, `5s`, `2m`, `1h`, `3d` (a bare number is milliseconds). */
export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim())
  if (m === null)
    throw new InvalidArgumentError(`${value}: expected a duration such as 500ms, 5s, 2m, 1h or 3d.`)
  const ms = Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? 'ms']!)
  if (!Number.isSafeInteger(ms)) throw new InvalidArgumentError(`${value}: too long.`)
  return ms
}

export function durationArg(value: string): number {
  return parseDuration(value)
}

/** Comma-separated durations, e.g. `5s,30s,2m,1h`. */
export function durationListArg(value: string): number[] {
  const list = value.split(',').map((v) => v.trim())
  if (list.length === 0 || list.some((v) => v === ''))
    throw new InvalidArgumentError('expected comma-separated durations, e.g. 5s,30s,2m,1h.')
  return list.map(parseDuration)
}
