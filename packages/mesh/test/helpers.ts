import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLedger, type Ledger } from '@nullmesh/ledger'
import { createMeshNode, type MeshNode, type OfflineCandidate } from '@nullmesh/mesh'
import { createVenueBundle, loadTerminalKey, type VenueBundle, type VenuePolicy } from '@nullmesh/policy'
import { computeCardKey, computeNullifier } from '@nullmesh/protocol'

export interface TestVenue {
  dir: string
  bundle: VenueBundle
  nodes: { id: string; node: MeshNode; ledger: Ledger; dataDir: string }[]
  cleanup(): Promise<void>
}

export async function makeVenue(
  terminals: number,
  policy: Partial<VenuePolicy> = {},
  venueId = 'test-venue',
): Promise<{ dir: string; bundle: VenueBundle }> {
  const dir = await mkdtemp(join(tmpdir(), 'nullmesh-mesh-'))
  const bundle = await createVenueBundle({ outDir: join(dir, 'venue'), terminals, venueId, policy })
  return { dir, bundle }
}

export async function startNode(
  bundle: VenueBundle,
  dir: string,
  id: string,
  peers: string[] = [],
  opts: { port?: number } = {},
) {
  const dataDir = join(dir, `data-${id}`)
  const ledger = createLedger({ path: dataDir })
  await ledger.open()
  const key = await loadTerminalKey(bundle.dir, id)
  const node = createMeshNode({
    bundle,
    key,
    ledger,
    listen: [`/ip4/127.0.0.1/tcp/${opts.port ?? 0}`],
    discovery: { peers },
  })
  await node.start()
  return { id, node, ledger, dataDir }
}

/**
 * N nodes on 127.0.0.1, each given the others' addresses (static discovery). With `running` < N
 * the whole venue starts first, so that every node learns its own (empty) history from enough peers
 * (N − q + 1, itself not counted), then the others are stopped and their data directories removed:
 * the venue runs with `running` nodes and the others come back empty.
 */
export async function startVenue(
  terminals: number,
  policy: Partial<VenuePolicy> = {},
  running = terminals,
): Promise<TestVenue> {
  const { dir, bundle } = await makeVenue(terminals, policy)
  const nodes: TestVenue['nodes'] = []
  for (let i = 1; i <= terminals; i++) {
    nodes.push(
      await startNode(
        bundle,
        dir,
        `T${i}`,
        nodes.flatMap((n) => n.node.multiaddrs()),
      ),
    )
  }
  if (running < terminals) {
    await waitFor(
      () => nodes.every((n) => n.node.status().historyKnown),
      30_000,
      'every node learned its own history',
    )
    for (const n of nodes.splice(running)) {
      await n.node.stop()
      await n.ledger.close()
      await rm(n.dataDir, { recursive: true, force: true })
    }
  }
  return {
    dir,
    bundle,
    nodes,
    async cleanup() {
      for (const n of nodes) {
        await n.node.stop().catch(() => {})
        await n.ledger.close().catch(() => {})
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export function candidate(
  bundle: VenueBundle,
  card: string,
  amountMinor: number,
  use: { atc?: number; idem: string },
): OfflineCandidate {
  return {
    nullifier: computeNullifier(bundle.hashingKey, card, {
      credentialCounter: use.atc,
      idempotencyKey: use.idem,
    }),
    cardKey: computeCardKey(bundle.hashingKey, card),
    amountMinor,
    currency: 'EUR',
    method: 'contactless',
  }
}
