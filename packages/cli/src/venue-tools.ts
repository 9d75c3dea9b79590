import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  BUNDLE_FILES,
  loadVenueBundle,
  signPolicy,
  type VenueBundle,
  type VenuePolicy,
} from '@nullmesh/policy'
import { keyPairFromFile } from '@nullmesh/protocol'
import { UserError } from './errors.js'
import { peerIdFromEd25519 } from './peer-id.js'

/** Load a venue bundle, turning a missing directory into a one-line user error. */
export async function openVenue(dir: string): Promise<VenueBundle> {
  try {
    await readFile(join(dir, BUNDLE_FILES.venue))
  } catch {
    throw new UserError(
      `${dir} is not a venue directory (no ${BUNDLE_FILES.venue}; create one with \`nullmesh venue init\`)`,
    )
  }
  return loadVenueBundle(dir)
}

/**
 * Operator tooling: change the venue policy and re-sign it with the operator key in the bundle.
 * `bumpVersion` (the default) increments the policy version: terminals must all run the new one.
 */
export async function updateVenuePolicy(
  dir: string,
  mutate: (policy: VenuePolicy) => VenuePolicy,
  opts: { bumpVersion?: boolean } = {},
): Promise<VenueBundle> {
  const bundle = await openVenue(dir)
  let operatorFile: unknown
  try {
    operatorFile = JSON.parse(await readFile(join(dir, BUNDLE_FILES.operatorKey), 'utf8'))
  } catch {
    throw new UserError(
      `${join(dir, BUNDLE_FILES.operatorKey)} is missing or unreadable: only the operator can change the policy`,
    )
  }
  const operator = keyPairFromFile(operatorFile)
  const next = mutate(structuredClone(bundle.policy))
  if (opts.bumpVersion !== false) next.version = bundle.policy.version + 1
  const document = signPolicy(operator, next)
  await writeFile(join(dir, BUNDLE_FILES.policy), `${JSON.stringify(document, null, 2)}\n`)
  return loadVenueBundle(dir)
}

export interface RosterView {
  id: string
  publicKey: string
  peerId: string
}

export function rosterView(bundle: VenueBundle): RosterView[] {
  return bundle.roster.map((r) => ({
    id: r.id,
    publicKey: r.publicKeyHex,
    peerId: peerIdFromEd25519(r.publicKey),
  }))
}

/** The roster id of a public key (hex), or a short form of the key. */
export function nameOf(bundle: VenueBundle | undefined, publicKeyHex: string): string {
  return bundle?.roster.find((r) => r.publicKeyHex === publicKeyHex)?.id ?? `${publicKeyHex.slice(0, 12)}…`
}
