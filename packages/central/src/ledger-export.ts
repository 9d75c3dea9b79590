import { createReadStream } from 'node:fs'
import { open, rename, rm } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { fromBase64url, MAX_EVENT_BYTES, toBase64url } from '@nullmesh/protocol'
import { LEDGER_EXPORT_FORMAT, LEDGER_EXPORT_VERSION } from './constants.js'
import { CentralError } from './errors.js'
import type { AbortOptions } from './types.js'

export interface LedgerExportMeta {
  venue: string
  /** the exporting terminal's id (e.g. T3) or public key hex */
  terminal: string
}

export interface LedgerExportHeader extends LedgerExportMeta {
  format: typeof LEDGER_EXPORT_FORMAT
  version: typeof LEDGER_EXPORT_VERSION
  /** ms since the epoch */
  createdAt: number
}

export interface LedgerExport {
  header: LedgerExportHeader
  /** wire bytes, in file order */
  events: Uint8Array[]
}

/**
 * Write a terminal's ledger as a file (JSON lines: a header, then one base64url event per line).
 * Written to a temporary name, fsynced and renamed: a reader never sees half a file.
 * @returns the number of events written
 */
export async function writeLedgerExport(
  path: string,
  meta: LedgerExportMeta,
  events: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: AbortOptions = {},
): Promise<number> {
  opts.signal?.throwIfAborted()
  const header: LedgerExportHeader = {
    format: LEDGER_EXPORT_FORMAT,
    version: LEDGER_EXPORT_VERSION,
    venue: meta.venue,
    terminal: meta.terminal,
    createdAt: Date.now(),
  }
  const tmp = `${path}.${process.pid}.tmp`
  const file = await open(tmp, 'w')
  let count = 0
  try {
    let chunk = `${JSON.stringify(header)}\n`
    for await (const bytes of events) {
      opts.signal?.throwIfAborted()
      chunk += `${toBase64url(bytes)}\n`
      count++
      if (chunk.length > 64 * 1024) {
        await file.write(chunk)
        chunk = ''
      }
    }
    await file.write(chunk)
    await file.sync()
  } catch (err: unknown) {
    await file.close()
    await rm(tmp, { force: true })
    throw err
  }
  await file.close()
  await rename(tmp, path)
  return count
}

const LINE_PATTERN = /^[A-Za-z0-9_-]+$/
const MAX_LINE = Math.ceil((MAX_EVENT_BYTES * 4) / 3) + 4

/** Read and check a ledger export file. Throws CentralError ERR_INVALID_EXPORT naming the line. */
export async function readLedgerExport(path: string, opts: AbortOptions = {}): Promise<LedgerExport> {
  opts.signal?.throwIfAborted()
  const lines = createInterface({
    input: createReadStream(path, { encoding: 'utf8' }),
    crlfDelay: Number.POSITIVE_INFINITY,
  })
  let header: LedgerExportHeader | undefined
  const events: Uint8Array[] = []
  let n = 0
  try {
    for await (const raw of lines) {
      opts.signal?.throwIfAborted()
      n++
      const line = raw.trim()
      if (header === undefined) {
        header = parseHeader(line)
        continue
      }
      if (line === '') continue
      if (line.length > MAX_LINE || !LINE_PATTERN.test(line)) {
        throw new CentralError('ERR_INVALID_EXPORT', `line ${n}: not a base64url event`)
      }
      events.push(fromBase64url(line))
    }
  } catch (err: unknown) {
    if (err instanceof CentralError || (err instanceof Error && err.name === 'AbortError')) throw err
    const code = (err as NodeJS.ErrnoException).code
    throw new CentralError(
      code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_INVALID_EXPORT',
      `cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`,
      code === 'ENOENT' ? 404 : 400,
    )
  } finally {
    lines.close()
  }
  if (header === undefined) throw new CentralError('ERR_INVALID_EXPORT', 'line 1: missing header')
  return { header, events }
}

function parseHeader(line: string): LedgerExportHeader {
  let h: Partial<LedgerExportHeader>
  try {
    h = JSON.parse(line) as Partial<LedgerExportHeader>
  } catch {
    throw new CentralError('ERR_INVALID_EXPORT', 'line 1: header is not JSON')
  }
  if (h === null || typeof h !== 'object' || h.format !== LEDGER_EXPORT_FORMAT) {
    throw new CentralError('ERR_INVALID_EXPORT', `line 1: format must be "${LEDGER_EXPORT_FORMAT}"`)
  }
  if (h.version !== LEDGER_EXPORT_VERSION) {
    throw new CentralError('ERR_INVALID_EXPORT', `line 1: unsupported version ${String(h.version)}`)
  }
  if (typeof h.venue !== 'string' || typeof h.terminal !== 'string' || typeof h.createdAt !== 'number') {
    throw new CentralError('ERR_INVALID_EXPORT', 'line 1: header needs venue, terminal and createdAt')
  }
  return h as LedgerExportHeader
}
