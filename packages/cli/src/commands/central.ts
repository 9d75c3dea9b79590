import { join, resolve } from 'node:path'
import type { VenueBundle } from '@nullmesh/policy'
import type { HostPort } from '../args.js'
import { existingDir, existingFile } from '../args.js'
import { UserError } from '../errors.js'
import { runUntilSignalled } from '../lifecycle.js'
import { openVenue } from '../venue-tools.js'

export interface CentralOptions {
  data?: string
  listen?: HostPort
  venues?: string[]
  issuerSeed?: string
  declineRate?: number
  lostOrStolen?: string[]
  adminToken?: string
  stopOnStdinEnd?: boolean
}

async function loadVenues(dirs: string[] | undefined): Promise<VenueBundle[]> {
  if (dirs === undefined || dirs.length === 0)
    throw new UserError('--venues <dir...> is required: the venues this service settles for')
  const bundles: VenueBundle[] = []
  for (const d of dirs) bundles.push(await openVenue(existingDir(d, '--venues')))
  return bundles
}

export async function runCentral(opts: CentralOptions): Promise<number> {
  if (opts.data === undefined) throw new UserError('--data <dir> is required')
  for (const k of opts.lostOrStolen ?? []) {
    if (!/^[0-9a-f]{32}$/.test(k))
      throw new UserError(`--lost-or-stolen: ${k} is not a card key (32 lowercase hex characters)`)
  }
  const dataDir = resolve(opts.data)
  const venues = await loadVenues(opts.venues)
  const { createCentralService, createSimulatedIssuer } = await import('@nullmesh/central')
  const custom =
    opts.issuerSeed !== undefined || opts.declineRate !== undefined || opts.lostOrStolen !== undefined
  const service = createCentralService({
    dataDir,
    venues,
    listen: opts.listen ?? { host: '127.0.0.1', port: 0 },
    ...(opts.adminToken === undefined ? {} : { adminToken: opts.adminToken }),
    ...(custom
      ? {
          issuer: createSimulatedIssuer({
            seed: opts.issuerSeed ?? 'nullmesh',
            declineRate: opts.declineRate ?? 0,
            lostOrStolen: opts.lostOrStolen ?? [],
            journalPath: join(dataDir, 'simulated-issuer.jsonl'),
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
    `central: listening on ${service.url} for ${venues.map((v) => v.venueId).join(', ')} (data ${dataDir})`,
  )
  // libp2p and fastify may leave timers behind: a stopped daemon exits explicitly
  process.exit(await done)
}

export async function centralImport(
  file: string,
  opts: { data: string; venues?: string[]; json?: boolean },
): Promise<void> {
  const path = existingFile(file, 'export file')
  const venues = await loadVenues(opts.venues)
  const { createCentralService } = await import('@nullmesh/central')
  const service = createCentralService({
    dataDir: resolve(opts.data),
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
