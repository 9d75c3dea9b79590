import { resolve } from 'node:path'
import {
  createVenueBundle,
  effectiveGroupSize,
  groupQuorum,
  partitionExposureBound,
  type VenuePolicy,
} from '@nullmesh/policy'
import { VENUE_ID_PATTERN } from '@nullmesh/protocol'
import { existingDir } from '../args.js'
import { UserError } from '../errors.js'
import { openVenue, rosterView } from '../venue-tools.js'

export interface VenueInitOptions {
  terminals: number
  out: string
  venue?: string
  force?: boolean
  /** policy barrier.groupSize */
  groupSize?: number
  json?: boolean
}

/** "quorum 3 of 5" for a venue whose roster is its one group; per card's group otherwise */
function quorumText(policy: VenuePolicy, rosterSize: number): string {
  const g = effectiveGroupSize(policy, rosterSize)
  const q = groupQuorum(policy, rosterSize)
  return g === rosterSize
    ? `quorum ${q} of ${rosterSize}`
    : `quorum ${q} of each card's custodian group of ${g}`
}

export async function venueInit(opts: VenueInitOptions): Promise<void> {
  if (opts.venue !== undefined && !VENUE_ID_PATTERN.test(opts.venue)) {
    throw new UserError(
      `invalid --venue ${JSON.stringify(opts.venue)}: 1–64 letters, digits, '.', '_' or '-'`,
    )
  }
  const outDir = resolve(opts.out)
  const bundle = await createVenueBundle({
    outDir,
    terminals: opts.terminals,
    ...(opts.venue === undefined ? {} : { venueId: opts.venue }),
    ...(opts.force === true ? { force: true } : {}),
    ...(opts.groupSize === undefined ? {} : { policy: { barrier: { groupSize: opts.groupSize } } }),
  }).catch((err: unknown) => {
    if (err instanceof Error && /already exists/.test(err.message)) {
      throw new UserError(`${outDir} already holds a venue (pass --force to replace it and all its keys)`, 1)
    }
    throw err
  })
  const roster = rosterView(bundle)
  if (opts.json === true) {
    console.log(
      JSON.stringify({ dir: outDir, venueId: bundle.venueId, policyVersion: bundle.policy.version, roster }),
    )
    return
  }
  const currency = Object.keys(bundle.policy.currencies)[0] ?? 'EUR'
  const limits = bundle.policy.currencies[currency]
  console.log(`venue ${bundle.venueId} created in ${outDir}`)
  console.log(
    `  ${roster.length} terminal(s), ${quorumText(bundle.policy, roster.length)}, policy v${bundle.policy.version}`,
  )
  if (limits !== undefined) {
    console.log(
      `  ${currency}: floor limit ${money(limits.floorLimitMinor)}, card cap ${money(limits.cardCapMinor)}/window, ` +
        `partition exposure bound ${money(partitionExposureBound(bundle.policy, roster.length, currency))}`,
    )
  }
  for (const r of roster) console.log(`  ${r.id.padEnd(4)} ${r.publicKey.slice(0, 16)}…  ${r.peerId}`)
  console.log(
    '  secrets: operator.key.json (keep offline in production), swarm.key, hashing.key.json, terminals/*.key.json',
  )
  console.log(
    `next: nullmesh terminal --venue ${opts.out} --id ${roster[0]?.id ?? 'T1'} --api 127.0.0.1:7401`,
  )
}

export async function venueShow(opts: { venue: string; json?: boolean }): Promise<void> {
  const dir = existingDir(opts.venue, '--venue')
  const bundle = await openVenue(dir)
  const roster = rosterView(bundle)
  if (opts.json === true) {
    console.log(JSON.stringify({ dir, venueId: bundle.venueId, policy: bundle.policy, roster }))
    return
  }
  const p = bundle.policy
  console.log(`venue ${bundle.venueId} (${dir})`)
  console.log(
    `  policy v${p.version}; ${quorumText(p, roster.length)}; isolated mode ${p.isolated.enabled ? 'on' : 'off'}`,
  )
  for (const [currency, l] of Object.entries(p.currencies)) {
    console.log(
      `  ${currency}: floor ${money(l.floorLimitMinor)}, card cap ${money(l.cardCapMinor)}, device cap ${money(l.deviceCapMinor)}, ` +
        `isolated floor ${money(l.isolatedFloorLimitMinor)}, exposure bound ${money(partitionExposureBound(p, roster.length, currency))}`,
    )
  }
  console.log(
    `  blocked BINs: ${p.blockedBins.join(', ') || 'none'}; deny-listed card keys: ${p.denylistCardKeys.length}`,
  )
  for (const r of roster) console.log(`  ${r.id.padEnd(4)} ${r.publicKey}  ${r.peerId}`)
}

export function money(minor: number): string {
  return (minor / 100).toFixed(2)
}
