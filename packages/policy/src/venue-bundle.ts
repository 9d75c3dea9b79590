import { randomBytes } from 'node:crypto'
import { access, chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  decodeCertificate,
  fromBase64url,
  fromHex,
  generateKeyPair,
  issueCertificate,
  type KeyPair,
  keyPairFromFile,
  keyPairToFile,
  type SignedDocument,
  toBase64url,
  toHex,
  VENUE_ID_PATTERN,
  verifyCertificate,
} from '@nullmesh/protocol'
import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import {
  DEFAULT_BARRIER_GROUP_SIZE,
  DEFAULT_BARRIER_RETRIES,
  DEFAULT_BARRIER_TIMEOUT_MS,
  DEFAULT_CARD_CAP_COUNT,
  DEFAULT_CARD_WINDOW_MS,
  DEFAULT_CERTIFICATE_VALIDITY_MS,
  DEFAULT_CURRENCY_LIMITS,
  DEFAULT_DEVICE_MAX_QUEUED,
  DEFAULT_MAX_CLOCK_SKEW_MS,
  DEFAULT_QUEUE_DURATION_MS,
  DEFAULT_TAP_BUDGET_MS,
  MAX_CLOCK_SKEW_MS,
  MAX_GROUP_SIZE,
  MAX_TAP_BUDGET_MS,
  MIN_TAP_BUDGET_MS,
} from './constants.js'
import { PolicyError, VenueBundleError } from './errors.js'
import { defaultPolicy, quorumIssues, rosterSizeIssue, signPolicy, verifySignedPolicy } from './policy.js'
import type { PolicyOverrides, VenuePolicy } from './types.js'

export interface RosterEntry {
  /** 'T1', 'T2', … */
  id: string
  publicKey: Uint8Array
  publicKeyHex: string
  /** encoded enrollment certificate */
  certificate: Uint8Array
}

/** Everything a terminal or central needs to know about a venue, minus private keys. */
export interface VenueBundle {
  dir: string
  venueId: string
  operatorPublicKey: Uint8Array
  /** the whole swarm.key file (libp2p pnet format), as preSharedKey({ psk }) takes it */
  psk: Uint8Array
  /** venue key for nullifiers and card keys */
  hashingKey: Uint8Array
  policy: VenuePolicy
  policyDocument: SignedDocument<VenuePolicy>
  roster: RosterEntry[]
}

export interface CreateVenueBundleOptions {
  outDir: string
  terminals: number
  venueId?: string
  policy?: PolicyOverrides
  /** certificate validity, default 1 year */
  validForMs?: number
  now?: number
  /** overwrite an existing bundle (new keys: terminals of the old one are locked out) */
  force?: boolean
}

export interface LoadVenueBundleOptions {
  /** also require every certificate to be valid at this time (by default only signatures are checked: validity windows are for use time) */
  now?: number
}

export const BUNDLE_FILES = {
  venue: 'venue.json',
  operatorKey: 'operator.key.json',
  swarmKey: 'swarm.key',
  hashingKey: 'hashing.key.json',
  policy: 'policy.json',
  policyNotes: 'policy.defaults.md',
  readme: 'README.md',
  terminals: 'terminals',
} as const

const SWARM_KEY_HEADER = '/key/swarm/psk/1.0.0/\n/base16/\n'
const TERMINAL_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/
const DEFAULT_VENUE_ID = 'demo-venue'
const SECRET = 0o600
const PUBLIC = 0o644

const Hex32 = Type.String({ pattern: '^[0-9a-f]{64}$' })
const VenueFileSchema = Type.Object({
  venueId: Type.String({ pattern: VENUE_ID_PATTERN.source }),
  operatorPublicKey: Hex32,
  roster: Type.Array(
    Type.Object({
      id: Type.String({ pattern: TERMINAL_ID_PATTERN.source }),
      publicKey: Hex32,
      certificate: Type.String({ pattern: '^[A-Za-z0-9_-]+$' }),
    }),
  ),
})
const venueFile = TypeCompiler.Compile(VenueFileSchema)
const hashingFile = TypeCompiler.Compile(Type.Object({ hashingKey: Hex32 }))

type VenueFile = {
  venueId: string
  operatorPublicKey: string
  roster: { id: string; publicKey: string; certificate: string }[]
}

function terminalKeyFile(id: string): string {
  return join(BUNDLE_FILES.terminals, `${id}.key.json`)
}

/** libp2p private-network key file: /key/swarm/psk/1.0.0/ ‖ /base16/ ‖ 64 hex characters. */
export function encodeSwarmKey(key: Uint8Array): Uint8Array {
  if (key.byteLength !== 32) throw new TypeError('a swarm key is 32 bytes')
  return new TextEncoder().encode(SWARM_KEY_HEADER + toHex(key))
}

/** The 32 key bytes of a swarm.key file; throws TypeError when it is not one. */
export function decodeSwarmKey(file: Uint8Array): Uint8Array {
  const lines = new TextDecoder().decode(file).split(/\r\n|\r|\n/)
  if (lines[0] !== '/key/swarm/psk/1.0.0/')
    throw new TypeError('expected /key/swarm/psk/1.0.0/ on the first line')
  if (lines[1] !== '/base16/') throw new TypeError('expected /base16/ on the second line')
  if (!/^[0-9a-fA-F]{64}$/.test(lines[2] ?? ''))
    throw new TypeError('expected 64 hex characters on the third line')
  if (lines.slice(3).some((l) => l !== '')) throw new TypeError('unexpected content after the key')
  return fromHex(lines[2]!.toLowerCase())
}

async function write(dir: string, name: string, data: string | Uint8Array, mode: number): Promise<void> {
  const path = join(dir, name)
  try {
    await writeFile(path, data, { mode })
    // mode only applies when the file is created
    await chmod(path, mode)
  } catch (err: unknown) {
    throw new VenueBundleError(path, `cannot write: ${(err as Error).message}`, { cause: err })
  }
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`
}

/**
 * Create a venue: operator key, terminal keys and their enrollment certificates, swarm key,
 * hashing key and a signed policy, written to `outDir`. Refuses to overwrite an existing bundle
 * unless `force`. Certificates are back-dated by maxClockSkewMs so a terminal whose clock is a
 * little behind accepts them at once. Throws RangeError for a roster outside [1, MAX_ROSTER_SIZE]
 * and PolicyError for an invalid policy, including a numeric quorum that is not a strict majority
 * of `terminals`, before writing anything.
 */
export async function createVenueBundle(opts: CreateVenueBundleOptions): Promise<VenueBundle> {
  const { outDir, terminals } = opts
  const tooMany = rosterSizeIssue(terminals)
  if (tooMany !== undefined) throw new RangeError(`terminals: ${tooMany}`)
  const venueId = opts.venueId ?? opts.policy?.venueId ?? DEFAULT_VENUE_ID
  if (!VENUE_ID_PATTERN.test(venueId)) throw new TypeError(`invalid venue id ${JSON.stringify(venueId)}`)
  const now = opts.now ?? Date.now()
  const validForMs = opts.validForMs ?? DEFAULT_CERTIFICATE_VALIDITY_MS
  if (!Number.isSafeInteger(validForMs) || validForMs <= 0)
    throw new RangeError('validForMs must be a positive integer')

  const venuePath = join(outDir, BUNDLE_FILES.venue)
  if (opts.force !== true && (await exists(venuePath))) {
    throw new VenueBundleError(
      venuePath,
      'a venue bundle already exists here (pass force to replace it and its keys)',
    )
  }

  const operator = generateKeyPair()
  const policy = defaultPolicy(venueId, { ...opts.policy, venueId })
  const policyDocument = signPolicy(operator, policy) // throws PolicyError on an invalid policy
  const quorum = quorumIssues(policyDocument.payload, terminals)
  if (quorum.length > 0) {
    throw new PolicyError(
      'ERR_INVALID_POLICY',
      `invalid policy: ${quorum.map((e) => e.message).join('; ')}`,
      quorum,
    )
  }
  const psk = encodeSwarmKey(new Uint8Array(randomBytes(32)))
  const hashingKey = new Uint8Array(randomBytes(32))
  const notBefore = Math.max(0, now - policy.maxClockSkewMs)
  const keys: KeyPair[] = []
  const roster: RosterEntry[] = []
  for (let i = 1; i <= terminals; i++) {
    const key = generateKeyPair()
    const cert = issueCertificate(operator, {
      venue: venueId,
      subject: key.publicKey,
      role: 'terminal',
      notBefore,
      notAfter: now + validForMs,
    })
    keys.push(key)
    roster.push({
      id: `T${i}`,
      publicKey: key.publicKey,
      publicKeyHex: toHex(key.publicKey),
      certificate: cert.bytes,
    })
  }

  try {
    await mkdir(join(outDir, BUNDLE_FILES.terminals), { recursive: true })
  } catch (err: unknown) {
    throw new VenueBundleError(outDir, `cannot create directory: ${(err as Error).message}`, { cause: err })
  }
  await write(outDir, BUNDLE_FILES.operatorKey, json(keyPairToFile(operator)), SECRET)
  await write(outDir, BUNDLE_FILES.swarmKey, psk, SECRET)
  await write(outDir, BUNDLE_FILES.hashingKey, json({ hashingKey: toHex(hashingKey) }), SECRET)
  for (let i = 0; i < keys.length; i++) {
    await write(outDir, terminalKeyFile(roster[i]!.id), json(keyPairToFile(keys[i]!)), SECRET)
  }
  await write(outDir, BUNDLE_FILES.policy, json(policyDocument), PUBLIC)
  await write(outDir, BUNDLE_FILES.policyNotes, policyNotes(policyDocument.payload), PUBLIC)
  await write(outDir, BUNDLE_FILES.readme, bundleReadme(venueId, terminals), PUBLIC)
  // venue.json last: a bundle interrupted half-way does not load
  const venue: VenueFile = {
    venueId,
    operatorPublicKey: toHex(operator.publicKey),
    roster: roster.map((r) => ({
      id: r.id,
      publicKey: r.publicKeyHex,
      certificate: toBase64url(r.certificate),
    })),
  }
  await write(outDir, BUNDLE_FILES.venue, json(venue), PUBLIC)

  return {
    dir: outDir,
    venueId,
    operatorPublicKey: operator.publicKey,
    psk,
    hashingKey,
    policy: structuredClone(policyDocument.payload),
    policyDocument,
    roster,
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err: unknown) {
    throw new VenueBundleError(path, `cannot read: ${(err as Error).message}`, { cause: err })
  }
}

async function readJson(path: string): Promise<unknown> {
  const text = await readText(path)
  try {
    return JSON.parse(text)
  } catch (err: unknown) {
    throw new VenueBundleError(path, `not valid JSON: ${(err as Error).message}`, { cause: err })
  }
}

async function readVenueFile(dir: string): Promise<VenueFile> {
  const path = join(dir, BUNDLE_FILES.venue)
  const value = await readJson(path)
  const first = venueFile.Errors(value).First()
  if (first !== undefined) throw new VenueBundleError(path, `${first.path || '/'}: ${first.message}`)
  return value as VenueFile
}

/**
 * Load and verify a venue bundle: the roster size (≤ MAX_ROSTER_SIZE), the policy signature,
 * schema and quorum (a strict majority of the roster), and every roster certificate
 * (operator signature, venue, subject, role; validity time too when `opts.now` is given). Throws
 * VenueBundleError (ERR_VENUE_BUNDLE) naming the file and the problem. Reads no private key.
 */
export async function loadVenueBundle(dir: string, opts: LoadVenueBundleOptions = {}): Promise<VenueBundle> {
  const venuePath = join(dir, BUNDLE_FILES.venue)
  const venue = await readVenueFile(dir)
  const operatorPublicKey = fromHex(venue.operatorPublicKey)
  const tooMany = rosterSizeIssue(venue.roster.length)
  if (tooMany !== undefined) throw new VenueBundleError(venuePath, tooMany)

  const roster: RosterEntry[] = []
  const ids = new Set<string>()
  const keys = new Set<string>()
  for (const [i, r] of venue.roster.entries()) {
    const where = `/roster/${i} (${r.id})`
    if (ids.has(r.id)) throw new VenueBundleError(venuePath, `${where}: duplicate terminal id`)
    if (keys.has(r.publicKey)) throw new VenueBundleError(venuePath, `${where}: duplicate public key`)
    ids.add(r.id)
    keys.add(r.publicKey)
    const publicKey = fromHex(r.publicKey)
    const certificate = fromBase64url(r.certificate)
    const decoded = decodeCertificate(certificate)
    if (!decoded.ok) throw new VenueBundleError(venuePath, `${where}: certificate ${decoded.error.message}`)
    const verified = verifyCertificate(decoded.value, {
      operatorPublicKey,
      venue: venue.venueId,
      subject: publicKey,
      role: 'terminal',
      now: opts.now ?? decoded.value.certificate.notBefore,
    })
    if (!verified.ok)
      throw new VenueBundleError(
        venuePath,
        `${where}: certificate ${verified.error.message} (${verified.error.code})`,
      )
    roster.push({ id: r.id, publicKey, publicKeyHex: r.publicKey, certificate })
  }

  const policyPath = join(dir, BUNDLE_FILES.policy)
  const checked = verifySignedPolicy(await readJson(policyPath), operatorPublicKey)
  if (!checked.ok) throw new VenueBundleError(policyPath, `${checked.error.message} (${checked.error.code})`)
  if (checked.policy.venueId !== venue.venueId) {
    throw new VenueBundleError(
      policyPath,
      `policy is for venue ${checked.policy.venueId}, not ${venue.venueId}`,
    )
  }
  const quorum = quorumIssues(checked.policy, roster.length)
  if (quorum.length > 0)
    throw new VenueBundleError(policyPath, `${quorum.map((e) => e.message).join('; ')} (ERR_INVALID_POLICY)`)

  const swarmPath = join(dir, BUNDLE_FILES.swarmKey)
  let psk: Uint8Array
  try {
    psk = new Uint8Array(await readFile(swarmPath))
    decodeSwarmKey(psk)
  } catch (err: unknown) {
    throw new VenueBundleError(swarmPath, (err as Error).message, { cause: err })
  }

  const hashingPath = join(dir, BUNDLE_FILES.hashingKey)
  const hashing = await readJson(hashingPath)
  if (!hashingFile.Check(hashing))
    throw new VenueBundleError(hashingPath, 'expected { "hashingKey": <64 lowercase hex characters> }')

  return {
    dir,
    venueId: venue.venueId,
    operatorPublicKey,
    psk,
    hashingKey: fromHex(hashing.hashingKey),
    policy: checked.policy,
    policyDocument: checked.document,
    roster,
  }
}

/** A terminal's key pair from `terminals/<id>.key.json`, checked against its roster entry. */
export async function loadTerminalKey(dir: string, id: string): Promise<KeyPair> {
  const path = join(dir, terminalKeyFile(id))
  if (!TERMINAL_ID_PATTERN.test(id))
    throw new VenueBundleError(path, `invalid terminal id ${JSON.stringify(id)}`)
  const venue = await readVenueFile(dir)
  const entry = venue.roster.find((r) => r.id === id)
  if (entry === undefined)
    throw new VenueBundleError(join(dir, BUNDLE_FILES.venue), `terminal ${id} is not in the roster`)
  let key: KeyPair
  try {
    key = keyPairFromFile(await readJson(path))
  } catch (err: unknown) {
    if (err instanceof VenueBundleError) throw err
    throw new VenueBundleError(path, (err as Error).message, { cause: err })
  }
  if (toHex(key.publicKey) !== entry.publicKey)
    throw new VenueBundleError(path, `key does not match the roster entry of ${id}`)
  return key
}

function policyNotes(p: VenuePolicy): string {
  const d = DEFAULT_CURRENCY_LIMITS
  const currencies = Object.entries(p.currencies)
    .map(
      ([c, l]) =>
        `| ${c} | ${l.floorLimitMinor} | ${l.cardCapMinor} | ${l.deviceCapMinor} | ${l.venueCapMinor} | ${l.isolatedFloorLimitMinor} | ${l.isolatedDeviceCapMinor} |`,
    )
    .join('\n')
  return `# Venue policy ${p.venueId} v${p.version}

\`policy.json\` is this policy signed by the operator key. Terminals refuse a policy whose signature
does not verify against \`operatorPublicKey\` in \`venue.json\`, so edit it with the operator tooling
(re-sign and bump \`version\`), never by hand. All amounts are integer minor units (cents).

## Limits per currency

Currencies not listed here are declined offline (\`currency_not_supported\`).

| currency | floorLimitMinor | cardCapMinor | deviceCapMinor | venueCapMinor | isolatedFloorLimitMinor | isolatedDeviceCapMinor |
|---|---|---|---|---|---|---|
${currencies}
| (default) | ${d.floorLimitMinor} | ${d.cardCapMinor} | ${d.deviceCapMinor} | ${d.venueCapMinor} | ${d.isolatedFloorLimitMinor} | ${d.isolatedDeviceCapMinor} |

- \`floorLimitMinor\`: largest single offline payment (\`floor_limit_exceeded\`).
- \`cardCapMinor\`: one card's offline total within \`cardWindowMs\` (\`card_cap_exceeded\`).
- \`deviceCapMinor\`: one terminal's offline total within \`queueDurationMs\` (\`device_cap_exceeded\`).
- \`venueCapMinor\`: the whole venue's offline total within \`queueDurationMs\` (\`venue_cap_exceeded\`).
- \`isolatedFloorLimitMinor\`: largest single payment while a terminal cannot reach a quorum; must be ≤ the floor limit.
- \`isolatedDeviceCapMinor\`: one terminal's isolated-mode total not yet confirmed by central, whatever
  the time (no window: a long partition or a clock jump frees nothing); must be ≤ the device cap.
  With every terminal isolated the venue can lose at most terminals × this per partition
  (partitionExposureBound).

## Other fields

| field | value | default | meaning |
|---|---|---|---|
| allowedMethodsOffline | ${p.allowedMethodsOffline.join(', ')} | all but swipe | payment methods accepted offline (\`method_not_allowed_offline\`) |
| cardWindowMs | ${p.cardWindowMs} | ${DEFAULT_CARD_WINDOW_MS} | window of the per-card caps |
| cardCapCount | ${p.cardCapCount} | ${DEFAULT_CARD_CAP_COUNT} | offline payments per card per window (\`card_count_exceeded\`) |
| deviceMaxQueued | ${p.deviceMaxQueued} | ${DEFAULT_DEVICE_MAX_QUEUED} | offline payments per terminal within queueDurationMs (\`queue_full\`) |
| queueDurationMs | ${p.queueDurationMs} | ${DEFAULT_QUEUE_DURATION_MS} | how long an offline payment may wait for settlement; window of device and venue caps |
| blockedBins | ${p.blockedBins.join(', ') || '(none)'} | none | card number prefixes declined offline (\`blocked_bin\`) |
| denylistCardKeys | ${p.denylistCardKeys.length} key(s) | none | card keys (keyed hashes, never card numbers) declined offline (\`denylisted_card\`) |
| barrier.quorum | ${p.barrier.quorum} | majority | acks a payment needs within its card's custodian group, its own terminal included if a member; a number must be a strict majority of the group (fewer voids the double-spend guarantee; bundles refuse it) |
| barrier.groupSize | ${p.barrier.groupSize} | ${DEFAULT_BARRIER_GROUP_SIZE} | terminals in a card's custodian group (odd, ≤ ${MAX_GROUP_SIZE}); a roster of at most this many is one group |
| barrier.timeoutMs | ${p.barrier.timeoutMs} | ${DEFAULT_BARRIER_TIMEOUT_MS} | how long one barrier attempt waits for acks; ≤ tapBudgetMs |
| barrier.retries | ${p.barrier.retries} | ${DEFAULT_BARRIER_RETRIES} | attempts after a retryable refusal |
| barrier.retryJitterMs | ${p.barrier.retryJitterMs} | 25 | random back-off between attempts |
| isolated.enabled | ${p.isolated.enabled} | true | approve within isolated limits when no quorum is reachable (else \`quorum_unavailable\`) |
| isolated.maxApprovalsPerCard | ${p.isolated.maxApprovalsPerCard} | 1 | approvals of one card by one isolated terminal not yet confirmed by central (\`isolated_card_used\`) |
| maxClockSkewMs | ${p.maxClockSkewMs} | ${DEFAULT_MAX_CLOCK_SKEW_MS} | reservations further than this from a peer's clock are refused (\`stale_reservation\`); at most ${MAX_CLOCK_SKEW_MS} (10 min) |
| tapBudgetMs | ${p.tapBudgetMs} | ${DEFAULT_TAP_BUDGET_MS} | every decision of a terminal (barrier attempts, retries, isolated fallback) returns within this; ${MIN_TAP_BUDGET_MS}–${MAX_TAP_BUDGET_MS} |
`
}

function bundleReadme(venueId: string, terminals: number): string {
  return `# Venue bundle: ${venueId}

| file | secret | contents |
|---|---|---|
| venue.json | no | venue id, operator public key, roster of ${terminals} terminal(s) with enrollment certificates |
| policy.json | no | the venue policy, signed by the operator (see policy.defaults.md) |
| swarm.key | **yes** (0600) | libp2p private-network key: only holders can even connect to the mesh |
| hashing.key.json | **yes** (0600) | venue key for nullifiers and card keys |
| terminals/T<n>.key.json | **yes** (0600) | each terminal's identity key; install on that terminal only |
| operator.key.json | **yes** (0600) | the operator key that signs certificates and policies |

**operator.key.json belongs offline in production.** Whoever holds it can enroll terminals and
sign policies (raise every limit). Terminals never need it; keep it on an offline machine or HSM
and use it only to enroll terminals and sign new policy versions. It is written here so a demo
venue works out of the box.
`
}
