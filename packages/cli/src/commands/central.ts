import { join, resolve } from 'node:path'
import type { VenueBundle } from '@nullmesh/policy'
import type { HostPort } from '../args.js'
import { existingDir, existingFile } from '../args.js'
import { UserError } from '../errors.js'
import { runUntilSignalled } from '../lifecycle.js'
import { openVenue } from '../venue-tools.js'

export interface CentralOptions {
  data?: string
  store?: string
  listen?: HostPort
  venues?: string[]
  issuerSeed?: string
  declineRate?: number
  lostOrStolen?: string[]
  adminToken?: string
  webhookRetry?: number[]
  webhookTimeout?: number
  eventRetention?: number
  stopOnStdinEnd?: boolean
}

async function loadVenues(dirs: string[] | undefined): Promise<VenueBundle[]> {
  if (dirs === undefined || dirs.length === 0)
    throw new UserError('--venues <dir...> is required: the venues this service settles for')
  const bundles: VenueBundle[] = []
  for (const d of dirs) bundles.push(await openVenue(existingDir(d, '--venues')))
  return bundles
}

/** --store postgres://… or --data DIR (the embedded store in DIR/central-pg) */
function storeOptions(opts: { data?: string; store?: string }): { dataDir?: string; storeUrl?: string } {
  if (opts.data === undefined && opts.store === undefined)
    throw new UserError('--data <dir> (embedded store) or --store postgres://… is required')
  return {
    ...(opts.data === undefined ? {} : { dataDir: resolve(opts.data) }),
    ...(opts.store === undefined ? {} : { storeUrl: opts.store }),
  }
}

/** postgres://user:secret@host/db → postgres://user:***@host/db */
function redact(url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return 'postgres://…'
  }
}

export async function runCentral(opts: CentralOptions): Promise<number> {
  const where = storeOptions(opts)
  for (const k of opts.lostOrStolen ?? []) {
    if (!/^[0-9a-f]{32}$/.test(k))
      throw new UserError(`--lost-or-stolen: ${k} is not a card key (32 lowercase hex characters)`)
  }
  const dataDir = where.dataDir
  const venues = await loadVenues(opts.venues)
  const { createCentralService, createSimulatedIssuer } = await import('@nullmesh/central')
  const custom =
    opts.issuerSeed !== undefined || opts.declineRate !== undefined || opts.lostOrStolen !== undefined
  const service = createCentralService({
    ...where,
    venues,
    listen: opts.listen ?? { host: '127.0.0.1', port: 0 },
    ...(opts.adminToken === undefined ? {} : { adminToken: opts.adminToken }),
    ...(opts.webhookRetry === undefined && opts.webhookTimeout === undefined
      ? {}
      : {
          webhookRetry: {
            ...(opts.webhookRetry === undefined ? {} : { scheduleMs: opts.webhookRetry }),
            ...(opts.webhookTimeout === undefined ? {} : { timeoutMs: opts.webhookTimeout }),
          },
        }),
    ...(opts.eventRetention === undefined ? {} : { eventRetentionMs: opts.eventRetention }),
    ...(custom
      ? {
          issuer: createSimulatedIssuer({
            seed: opts.issuerSeed ?? 'nullmesh',
            declineRate: opts.declineRate ?? 0,
            lostOrStolen: opts.lostOrStolen ?? [],
            ...(dataDir === undefined ? {} : { journalPath: join(dataDir, 'simulated-issuer.jsonl') }),
          }),
        }
      : {}),
  })
  const done = runUntilSignalled('central', () => service.stop(), {
    stopOnStdinEnd: opts.stopOnStdinEnd === true,
  })
  await service.start()
  console.log(
    JSON.stringify({ ready: true, url: service.url, venues: venues.map((v) => v.venueId), pid: process.pid }),
  )
  console.error(
    `central: listening on ${service.url} for ${venues.map((v) => v.venueId).join(', ')} (store ${
      where.storeUrl === undefined ? `embedded in ${dataDir}` : redact(where.storeUrl)
    })`,
  )
  // libp2p and fastify may leave timers behind: a stopped daemon exits explicitly
  process.exit(await done)
}

export async function centralImport(
  file: string,
  opts: { data?: string; store?: string; venues?: string[]; json?: boolean },
): Promise<void> {
  const path = existingFile(file, 'export file')
  const where = storeOptions(opts)
  const venues = await loadVenues(opts.venues)
  const { createCentralService } = await import('@nullmesh/central')
  const service = createCentralService({
    ...where,
    venues,
    listen: { host: '127.0.0.1', port: 0 },
  })
  await service.start()
  try {
    const r = await service.importFile(path)
    const byStatus: Record<string, number> = {}
    const rejected: Record<string, number> = {}
    for (const e of r.results) {
      byStatus[e.status] = (byStatus[e.status] ?? 0) + 1
      if (e.status === 'rejected') rejected[e.code ?? 'unknown'] = (rejected[e.code ?? 'unknown'] ?? 0) + 1
    }
    const settled = await service.settleNow()
    const payments: Record<string, number> = {}
    for (const p of r.payments) payments[p.status] = (payments[p.status] ?? 0) + 1
    const result = {
      file: path,
      header: r.header,
      events: r.results.length,
      byStatus,
      rejected,
      payments,
      settled,
    }
    if (opts.json === true) {
      console.log(JSON.stringify(result))
      return
    }
    console.log(
      `imported ${r.results.length} events of ${r.header.venue}/${r.header.terminal}: ` +
        `${byStatus.stored ?? 0} stored, ${byStatus.duplicate ?? 0} already known, ${byStatus.rejected ?? 0} rejected`,
    )
    for (const [code, n] of Object.entries(rejected)) console.log(`  rejected ${code}: ${n}`)
    console.log(
      `  payments touched: ${
        Object.entries(payments)
          .map(([s, n]) => `${s} ${n}`)
          .join(', ') || 'none'
      }`,
    )
    console.log(
      `  settled now: ${settled.completed} completed, ${settled.failed} failed, ${settled.pending} pending`,
    )
  } finally {
    await service.stop()
  }
}

/** `nullmesh central report`: one SQL query over the report_payments view, summarised per venue. */
export async function centralReport(opts: {
  data?: string
  store?: string
  venue?: string
  json?: boolean
}): Promise<void> {
  const where = storeOptions(opts)
  const { createSqlStore, summarize } = await import('@nullmesh/central')
  const store =
    where.storeUrl !== undefined
      ? createSqlStore({ kind: 'postgres', url: where.storeUrl })
      : createSqlStore({ kind: 'pglite', path: join(existingDir(where.dataDir!, '--data'), 'central-pg') })
  await store.open()
  let summaries: ReturnType<typeof summarize>
  try {
    summaries = summarize(
      opts.venue === undefined ? [] : [opts.venue],
      await store.aggregatePayments(opts.venue),
    )
  } finally {
    await store.close()
  }
  if (opts.json === true) {
    console.log(JSON.stringify({ venues: summaries }))
    return
  }
  if (summaries.length === 0) console.log('no payments')
  const money = (m: Record<string, number>): string =>
    Object.entries(m)
      .map(([c, v]) => `${(v / 100).toFixed(2)} ${c}`)
      .join(', ') || '0'
  for (const s of summaries) {
    console.log(`${s.venueId}: ${s.payments} payments`)
    console.log(
      `  by status: ${Object.entries(s.byStatus)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}`,
    )
    console.log(`  settled: ${s.settled.completed} completed, ${s.settled.failed} failed`)
    const codes = Object.entries(s.failedByCode)
    if (codes.length > 0) console.log(`  failed by code: ${codes.map(([k, n]) => `${k} ${n}`).join(', ')}`)
    console.log(`  offline exposure (approved, not settled): ${money(s.offlineExposureMinor)}`)
    console.log(`  offline losses: ${money(s.offlineLossMinor)}`)
    console.log(`  partition losses: ${s.partitionLosses} (${money(s.partitionLossMinor)})`)
  }
}
