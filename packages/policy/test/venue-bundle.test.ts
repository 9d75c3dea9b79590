import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createVenueBundle,
  decodeSwarmKey,
  encodeSwarmKey,
  loadTerminalKey,
  loadVenueBundle,
  PolicyError,
  signPolicy,
  VenueBundleError,
} from '@nullmesh/policy'
import {
  fromBase64url,
  keyPairFromFile,
  signBytes,
  toHex,
  verifyBytes,
  verifyCertificate,
} from '@nullmesh/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const dirs: string[] = []
async function freshDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'nullmesh-bundle-'))
  dirs.push(d)
  return d
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

async function expectBundleError(
  p: Promise<unknown>,
  file: string,
  match?: RegExp,
): Promise<VenueBundleError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(VenueBundleError)
  const e = err as VenueBundleError
  expect(e.code).toBe('ERR_VENUE_BUNDLE')
  expect(e.file.endsWith(file)).toBe(true)
  expect(e.message).toContain(file)
  if (match !== undefined) expect(e.message).toMatch(match)
  return e
}

const NOW = 1_700_000_000_000

describe('createVenueBundle / loadVenueBundle', () => {
  let dir: string
  beforeAll(async () => {
    dir = await freshDir()
    await createVenueBundle({
      outDir: dir,
      terminals: 3,
      venueId: 'cafe-1',
      policy: { version: 2, currencies: { EUR: { floorLimitMinor: 3000 } } },
      now: NOW,
    })
  })

  it('writes the documented files, secrets mode 0600', async () => {
    for (const f of [
      'operator.key.json',
      'swarm.key',
      'hashing.key.json',
      'terminals/T1.key.json',
      'terminals/T3.key.json',
    ]) {
      expect(((await stat(join(dir, f))).mode & 0o777).toString(8), f).toBe('600')
    }
    for (const f of ['venue.json', 'policy.json', 'policy.defaults.md', 'README.md']) {
      expect(((await stat(join(dir, f))).mode & 0o077) !== 0, f).toBe(true)
    }
    const swarm = await readFile(join(dir, 'swarm.key'), 'utf8')
    expect(swarm).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/)
    const venue = JSON.parse(await readFile(join(dir, 'venue.json'), 'utf8'))
    expect(Object.keys(venue).sort()).toEqual(['operatorPublicKey', 'roster', 'venueId'])
    expect(venue.roster.map((r: { id: string }) => r.id)).toEqual(['T1', 'T2', 'T3'])
    expect(JSON.parse(await readFile(join(dir, 'hashing.key.json'), 'utf8')).hashingKey).toMatch(
      /^[0-9a-f]{64}$/,
    )
    expect(await readFile(join(dir, 'policy.json'), 'utf8')).toContain('\n  "payload": {')
    expect(await readFile(join(dir, 'README.md'), 'utf8')).toMatch(/operator\.key\.json belongs offline/)
    const notes = await readFile(join(dir, 'policy.defaults.md'), 'utf8')
    expect(notes).toMatch(/floorLimitMinor/)
    expect(notes).toMatch(/\| tapBudgetMs \| 2000 \| 2000 \|/)
    expect(notes).toMatch(/\| barrier.retries \| 4 \| 4 \|/)
  })

  it('loads back what was created and verifies every certificate', async () => {
    const b = await loadVenueBundle(dir)
    expect(b.venueId).toBe('cafe-1')
    expect(b.dir).toBe(dir)
    expect(b.policy.version).toBe(2)
    expect(b.policy.currencies.EUR!.floorLimitMinor).toBe(3000)
    expect(Object.keys(b.policy.currencies)).toEqual(['EUR'])
    expect(b.policyDocument.payload).toEqual(b.policy)
    expect(b.hashingKey.byteLength).toBe(32)
    expect(toHex(decodeSwarmKey(b.psk))).toHaveLength(64)
    expect(b.psk).toEqual(new Uint8Array(await readFile(join(dir, 'swarm.key'))))
    expect(b.roster).toHaveLength(3)
    for (const r of b.roster) {
      expect(r.publicKeyHex).toBe(toHex(r.publicKey))
      const v = verifyCertificate(r.certificate, {
        operatorPublicKey: b.operatorPublicKey,
        venue: 'cafe-1',
        now: NOW,
        subject: r.publicKey,
        role: 'terminal',
      })
      expect(v.ok).toBe(true)
      // back-dated by the clock skew, valid for a year
      if (v.ok)
        expect(v.value.certificate.notAfter - v.value.certificate.notBefore).toBe(
          365 * 24 * 3600 * 1000 + 30_000,
        )
    }
    await expect(loadVenueBundle(dir, { now: NOW + 1000 })).resolves.toBeDefined()
  })

  it('createVenueBundle returns what loadVenueBundle returns', async () => {
    const d = await freshDir()
    const created = await createVenueBundle({ outDir: d, terminals: 2 })
    const loaded = await loadVenueBundle(d)
    expect(loaded).toEqual(created)
    expect(created.venueId).toBe('demo-venue')
  })

  it('loadTerminalKey returns the enrolled key', async () => {
    const b = await loadVenueBundle(dir)
    const key = await loadTerminalKey(dir, 'T2')
    expect(toHex(key.publicKey)).toBe(b.roster[1]!.publicKeyHex)
    const msg = new Uint8Array([1, 2, 3])
    expect(verifyBytes(b.roster[1]!.publicKey, msg, signBytes(key.privateKey, msg))).toBe(true)
    await expectBundleError(loadTerminalKey(dir, 'T9'), 'venue.json', /T9 is not in the roster/)
    await expectBundleError(loadTerminalKey(dir, '../operator'), 'operator.key.json', /invalid terminal id/)
  })

  it('refuses to overwrite a bundle unless forced', async () => {
    await expectBundleError(createVenueBundle({ outDir: dir, terminals: 1 }), 'venue.json', /already exists/)
    const d = await freshDir()
    await createVenueBundle({ outDir: d, terminals: 1 })
    const again = await createVenueBundle({ outDir: d, terminals: 2, force: true })
    expect((await loadVenueBundle(d)).operatorPublicKey).toEqual(again.operatorPublicKey)
  })

  it('refuses an invalid policy', async () => {
    const d = await freshDir()
    await expect(
      createVenueBundle({
        outDir: d,
        terminals: 1,
        policy: { currencies: { EUR: { isolatedFloorLimitMinor: 9000 } } },
      }),
    ).rejects.toBeInstanceOf(PolicyError)
    await expect(createVenueBundle({ outDir: d, terminals: 0 })).rejects.toBeInstanceOf(RangeError)
  })

  it('refuses a numeric quorum that is not a strict majority of the roster, writing nothing', async () => {
    const d = await freshDir()
    const err = await createVenueBundle({
      outDir: d,
      terminals: 4,
      policy: { barrier: { quorum: 2 } },
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PolicyError)
    expect((err as PolicyError).issues.map((i) => i.path)).toEqual(['/barrier/quorum'])
    expect((err as Error).message).toMatch(/2 is not a strict majority of 4 terminals/)
    await expectBundleError(loadVenueBundle(d), 'venue.json', /cannot read/)
    await expect(
      createVenueBundle({ outDir: d, terminals: 4, policy: { barrier: { quorum: 3 } } }),
    ).resolves.toBeDefined()
  })

  it('refuses a roster larger than 1,000', async () => {
    const d = await freshDir()
    await expect(createVenueBundle({ outDir: d, terminals: 1001 })).rejects.toThrow(
      /terminals: a roster must have 1 to 1000 terminals/,
    )
  })
})

describe('loadVenueBundle rejects tampered bundles, naming the file', () => {
  async function tampered(edit: (dir: string) => Promise<void>): Promise<string> {
    const d = await freshDir()
    await createVenueBundle({ outDir: d, terminals: 3, venueId: 'bar-9', now: NOW })
    await edit(d)
    return d
  }
  // biome-ignore lint/suspicious/noExplicitAny: tests poke at arbitrary JSON
  const editJson = async (path: string, f: (v: any) => void) => {
    const v = JSON.parse(await readFile(path, 'utf8'))
    f(v)
    await writeFile(path, JSON.stringify(v))
  }

  it('a raised limit in policy.json', async () => {
    const d = await tampered((d) =>
      editJson(join(d, 'policy.json'), (doc) => (doc.payload.currencies.EUR.floorLimitMinor = 1e6)),
    )
    await expectBundleError(loadVenueBundle(d), 'policy.json', /ERR_BAD_SIGNATURE/)
  })

  it('a policy signed by another operator', async () => {
    const other = await freshDir()
    await createVenueBundle({ outDir: other, terminals: 1, venueId: 'bar-9' })
    const d = await tampered(async (d) =>
      writeFile(join(d, 'policy.json'), await readFile(join(other, 'policy.json'))),
    )
    await expectBundleError(loadVenueBundle(d), 'policy.json', /ERR_WRONG_ISSUER/)
  })

  it('certificates swapped between roster entries', async () => {
    const d = await tampered((d) =>
      editJson(join(d, 'venue.json'), (v) => {
        const c = v.roster[0].certificate
        v.roster[0].certificate = v.roster[1].certificate
        v.roster[1].certificate = c
      }),
    )
    await expectBundleError(loadVenueBundle(d), 'venue.json', /roster\/0 \(T1\).*ERR_WRONG_SUBJECT/)
  })

  it('a roster key that is not enrolled', async () => {
    const d = await tampered((d) =>
      editJson(join(d, 'venue.json'), (v) => (v.roster[2].publicKey = 'ab'.repeat(32))),
    )
    await expectBundleError(loadVenueBundle(d), 'venue.json', /T3/)
  })

  it('a corrupted certificate', async () => {
    const d = await tampered((d) =>
      editJson(join(d, 'venue.json'), (v) => {
        const bytes = fromBase64url(v.roster[1].certificate)
        bytes[bytes.length - 1]! ^= 1
        v.roster[1].certificate = Buffer.from(bytes).toString('base64url')
      }),
    )
    await expectBundleError(loadVenueBundle(d), 'venue.json', /T2/)
  })

  it('another operator key in venue.json', async () => {
    const d = await tampered((d) =>
      editJson(join(d, 'venue.json'), (v) => (v.operatorPublicKey = 'cd'.repeat(32))),
    )
    await expectBundleError(loadVenueBundle(d), 'venue.json', /ERR_WRONG_ISSUER/)
  })

  it('expired certificates when a time is given', async () => {
    const d = await tampered(async () => {})
    await expectBundleError(
      loadVenueBundle(d, { now: NOW + 2 * 365 * 24 * 3600 * 1000 }),
      'venue.json',
      /ERR_EXPIRED/,
    )
  })

  it('a validly signed policy whose numeric quorum is not a majority of the roster', async () => {
    const resign = (quorum: number) => async (d: string) => {
      const operator = keyPairFromFile(JSON.parse(await readFile(join(d, 'operator.key.json'), 'utf8')))
      const policy = (await loadVenueBundle(d)).policy
      const doc = signPolicy(operator, { ...policy, barrier: { ...policy.barrier, quorum } })
      await writeFile(join(d, 'policy.json'), JSON.stringify(doc))
    }
    await expect(loadVenueBundle(await tampered(resign(2)))).resolves.toBeDefined()
    await expectBundleError(
      loadVenueBundle(await tampered(resign(1))),
      'policy.json',
      /1 is not a strict majority of 3 terminals.*ERR_INVALID_POLICY/,
    )
  })

  it('a roster larger than 1,000', async () => {
    const d = await tampered((d) =>
      editJson(join(d, 'venue.json'), (v) => {
        for (let i = 4; i <= 1001; i++) v.roster.push({ ...v.roster[0], id: `T${i}` })
      }),
    )
    await expectBundleError(loadVenueBundle(d), 'venue.json', /a roster must have 1 to 1000 terminals/)
  })

  it('duplicate roster ids', async () => {
    const d = await tampered((d) => editJson(join(d, 'venue.json'), (v) => (v.roster[1].id = 'T1')))
    await expectBundleError(loadVenueBundle(d), 'venue.json', /duplicate terminal id/)
  })

  it('malformed venue.json, swarm.key, hashing.key.json; missing files', async () => {
    await expectBundleError(
      loadVenueBundle(await tampered((d) => writeFile(join(d, 'venue.json'), '{'))),
      'venue.json',
      /JSON/,
    )
    await expectBundleError(
      loadVenueBundle(await tampered((d) => editJson(join(d, 'venue.json'), (v) => delete v.roster))),
      'venue.json',
      /roster/,
    )
    await expectBundleError(
      loadVenueBundle(
        await tampered((d) => writeFile(join(d, 'swarm.key'), '/key/swarm/psk/1.0.0/\n/base16/\nzz')),
      ),
      'swarm.key',
    )
    await expectBundleError(
      loadVenueBundle(await tampered((d) => writeFile(join(d, 'hashing.key.json'), '{"hashingKey":"00"}'))),
      'hashing.key.json',
    )
    await expectBundleError(
      loadVenueBundle(await tampered((d) => rm(join(d, 'policy.json')))),
      'policy.json',
      /cannot read/,
    )
    await expectBundleError(loadVenueBundle(await freshDir()), 'venue.json', /cannot read/)
  })

  it('a terminal key file that does not match the roster', async () => {
    const d = await tampered(async (d) =>
      writeFile(join(d, 'terminals/T1.key.json'), await readFile(join(d, 'terminals/T2.key.json'))),
    )
    await expectBundleError(loadTerminalKey(d, 'T1'), 'T1.key.json', /does not match/)
  })
})

describe('swarm key format', () => {
  it('is the libp2p pnet v1 format', () => {
    const key = new Uint8Array(32).fill(0xab)
    const file = encodeSwarmKey(key)
    expect(new TextDecoder().decode(file)).toBe(`/key/swarm/psk/1.0.0/\n/base16/\n${'ab'.repeat(32)}`)
    expect(decodeSwarmKey(file)).toEqual(key)
    expect(() => decodeSwarmKey(new TextEncoder().encode('/key/swarm/psk/1.0.0/\n/base64/\nxx'))).toThrow(
      TypeError,
    )
    expect(() => encodeSwarmKey(new Uint8Array(31))).toThrow(TypeError)
  })
})
