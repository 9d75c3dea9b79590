import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { type CentralService, createCentralService } from '@nullmesh/central'
import { createVenueBundle } from '@nullmesh/policy'
import { verifyRevocation } from '@nullmesh/protocol'
import { afterEach, describe, expect, it } from 'vitest'

const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url))
const run = promisify(execFile)

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args])
    return { code: 0, stdout, stderr }
  } catch (err: unknown) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

let dir: string | undefined
let central: CentralService | undefined
afterEach(async () => {
  await central?.stop()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  central = undefined
  dir = undefined
})

// Issue 17, item 2: operator tooling. `nullmesh venue revoke` signs with the bundle's operator key
// and publishes to central, which serves it to the venue's terminals.
describe('[revocation] nullmesh venue revoke', () => {
  it('signs a revocation and publishes it; bad input is a one-line error', async () => {
    dir = await mkdtemp(join(tmpdir(), 'nullmesh-cli-'))
    const bundle = await createVenueBundle({ outDir: join(dir, 'venue'), terminals: 3, venueId: 'bar' })
    central = createCentralService({ dataDir: join(dir, 'central'), venues: [bundle], settleIntervalMs: 0 })
    await central.start()
    const ok = await cli([
      'venue',
      'revoke',
      '--venue',
      bundle.dir,
      '--terminal',
      'T2',
      '--reason',
      'stolen',
      '--central',
      central.url,
      '--json',
    ])
    expect(ok.code).toBe(0)
    const out = JSON.parse(ok.stdout) as { document: unknown; central: { terminal: string } }
    expect(out.central.terminal).toBe(bundle.roster[1]!.publicKeyHex)
    const served = (await (await fetch(`${central.url}/v1/venues/bar/revocations`)).json()) as {
      revocations: unknown[]
    }
    expect(served.revocations).toHaveLength(1)
    const v = verifyRevocation(served.revocations[0], {
      operatorPublicKey: bundle.operatorPublicKey,
      venueId: 'bar',
    })
    expect(v.ok && v.value.payload).toMatchObject({
      terminal: bundle.roster[1]!.publicKeyHex,
      reason: 'stolen',
    })

    const unknown = await cli(['venue', 'revoke', '--venue', bundle.dir, '--terminal', 'T9', '--reason', 'x'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toMatch(/no terminal "T9" in the roster/)
    const badTime = await cli([
      'venue',
      'revoke',
      '--venue',
      bundle.dir,
      '--terminal',
      'T1',
      '--reason',
      'x',
      '--effective',
      'someday',
    ])
    expect(badTime.code).toBe(2)
    expect(badTime.stderr).toMatch(/invalid --effective/)
  })
})
