import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BUNDLE_FILES } from '@nullmesh/policy'
import { keyPairFromFile, MAX_REVOCATION_REASON, signRevocation } from '@nullmesh/protocol'
import { existingDir } from '../args.js'
import { UserError } from '../errors.js'
import { openVenue } from '../venue-tools.js'

export interface VenueRevokeOptions {
  venue: string
  terminal: string
  reason: string
  /** ISO 8601 time or ms since the epoch; default now */
  effective?: string
  /** write the signed document here (default: stdout) */
  out?: string
  /** publish it: POST /v1/venues/:id/revocations */
  central?: string
  json?: boolean
}

function parseTime(value: string | undefined, now: number): number {
  if (value === undefined) return now
  if (/^\d{1,16}$/.test(value)) return Number(value)
  const t = Date.parse(value)
  if (Number.isNaN(t))
    throw new UserError(
      `invalid --effective ${JSON.stringify(value)}: an ISO 8601 time or ms since the epoch`,
    )
  return t
}

/**
 * Issue 17, item 2: sign a revocation of one terminal with the operator key of the bundle and
 * print it, write it to a file, or publish it to central (which serves it to the venue's terminals).
 */
export async function venueRevoke(opts: VenueRevokeOptions): Promise<void> {
  const dir = existingDir(opts.venue, '--venue')
  const bundle = await openVenue(dir)
  const entry = bundle.roster.find(
    (r) => r.id === opts.terminal || r.publicKeyHex === opts.terminal.toLowerCase(),
  )
  if (entry === undefined)
    throw new UserError(
      `no terminal ${JSON.stringify(opts.terminal)} in the roster of ${bundle.venueId} (ids: ${bundle.roster.map((r) => r.id).join(', ')})`,
    )
  if (opts.reason.length > MAX_REVOCATION_REASON)
    throw new UserError(`--reason is at most ${MAX_REVOCATION_REASON} characters`)
  const now = Date.now()
  const effectiveAt = parseTime(opts.effective, now)
  let operatorFile: unknown
  try {
    operatorFile = JSON.parse(await readFile(join(dir, BUNDLE_FILES.operatorKey), 'utf8'))
  } catch {
    throw new UserError(
      `${join(dir, BUNDLE_FILES.operatorKey)} is missing or unreadable: only the operator can revoke a terminal`,
    )
  }
  const doc = signRevocation(keyPairFromFile(operatorFile), {
    venueId: bundle.venueId,
    terminal: entry.publicKeyHex,
    effectiveAt,
    reason: opts.reason,
    issuedAt: now,
  })
  if (opts.out !== undefined) await writeFile(opts.out, `${JSON.stringify(doc, null, 2)}\n`)
  let published: unknown
  if (opts.central !== undefined) {
    const url = new URL(`v1/venues/${encodeURIComponent(bundle.venueId)}/revocations`, opts.central)
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(doc),
      signal: AbortSignal.timeout(10_000),
    })
    const body = (await res.json().catch(() => ({}))) as { code?: string; message?: string }
    if (!res.ok)
      throw new UserError(
        `central refused the revocation (${res.status} ${body.code ?? ''}): ${body.message ?? ''}`,
        1,
      )
    published = body
  }
  if (opts.json === true || (opts.out === undefined && opts.central === undefined)) {
    console.log(JSON.stringify(published === undefined ? doc : { document: doc, central: published }))
    return
  }
  console.log(
    `terminal ${entry.id} (${entry.publicKeyHex.slice(0, 16)}…) revoked from ${new Date(effectiveAt).toISOString()}` +
      (opts.out === undefined ? '' : `; document in ${opts.out}`) +
      (opts.central === undefined ? '' : `; published to ${opts.central}`),
  )
}
