import { EventValidationError, type ValidationContext, validateEventBytes } from '@nullmesh/mesh'
import { defaultPolicy, parsePolicy, signPolicy, verifySignedPolicy } from '@nullmesh/policy'
import {
  createProof,
  decodeAck,
  decodeCertificate,
  decodeEvent,
  decodeProof,
  generateKeyPair,
  issueCertificate,
  type Result,
  signAck,
  signEvent,
  toHex,
  verifyDocument,
} from '@nullmesh/protocol'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FramedStream } from '../packages/mesh/dist/framing.js'
import { fcOptions, fuzzTimeout } from './fuzz.js'

// Issue 17, item 7: every decoder of untrusted bytes, fuzzed. The invariant is the same everywhere:
// never a throw (or only the decoder's own typed error), and whatever is accepted is canonical.

const VENUE = 'fuzz-venue'
const NOW = 1_800_000_000_000
const alice = generateKeyPair()
const bob = generateKeyPair()
const operator = generateKeyPair()

const res = signEvent(alice, {
  type: 'reservation',
  venue: VENUE,
  origin: alice.publicKey,
  seq: 1,
  ts: NOW,
  nullifier: new Uint8Array(32).fill(1),
  cardKey: new Uint8Array(16).fill(2),
  amountMinor: 1000,
  currency: 'EUR',
  method: 'contactless',
  policyVersion: 1,
})
const ackOf = (k = bob) =>
  signAck(k, { venue: VENUE, acker: k.publicKey, reservationId: res.id, ok: true, reason: '', ts: NOW })
const commit = signEvent(alice, {
  type: 'commit',
  venue: VENUE,
  origin: alice.publicKey,
  seq: 2,
  ts: NOW,
  reservation: res,
  mode: 'quorum',
  acks: [ackOf(alice), ackOf(bob)],
})
const release = signEvent(alice, {
  type: 'release',
  venue: VENUE,
  origin: alice.publicKey,
  seq: 3,
  ts: NOW,
  reservationId: res.id,
  reason: 'barrier_timeout',
})
const certificate = issueCertificate(operator, {
  venue: VENUE,
  subject: alice.publicKey,
  role: 'terminal',
  notBefore: NOW - 1000,
  notAfter: NOW + 1000,
})
const proof = createProof(alice, {
  decision: 'approved_offline',
  ts: NOW,
  seq: 2,
  policyVersion: 1,
  amountMinor: 1000,
  currency: 'EUR',
  nullifier: new Uint8Array(32).fill(1),
})

/** Arbitrary bytes, and valid encodings mutated: bit flips, truncation, splices, insertions. */
function hostileBytes(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const seed = fc.constantFrom(...seeds)
  const mutated = fc
    .tuple(
      seed,
      fc.array(
        fc.tuple(
          fc.nat(),
          fc.integer({ min: 0, max: 255 }),
          fc.constantFrom('flip', 'set', 'cut', 'insert', 'drop'),
        ),
        { minLength: 1, maxLength: 6 },
      ),
    )
    .map(([bytes, edits]) => {
      let b = Uint8Array.from(bytes)
      for (const [at, v, op] of edits) {
        const i = b.length === 0 ? 0 : at % b.length
        if (op === 'flip' && b.length > 0) b[i] = b[i]! ^ (1 << (v % 8))
        else if (op === 'set' && b.length > 0) b[i] = v
        else if (op === 'cut') b = b.subarray(0, i)
        else if (op === 'insert') b = Uint8Array.from([...b.subarray(0, i), v, ...b.subarray(i)])
        else if (op === 'drop' && b.length > 0)
          b = Uint8Array.from([...b.subarray(0, i), ...b.subarray(i + 1)])
      }
      return b
    })
  return fc.oneof(fc.uint8Array({ maxLength: 512 }), mutated, mutated)
}

const DECODE_CODES = [
  'ERR_TOO_LARGE',
  'ERR_BAD_VERSION',
  'ERR_MALFORMED',
  'ERR_NON_CANONICAL',
  'ERR_BAD_FIELD',
]

function total<T>(decode: (b: Uint8Array) => Result<T>, bytes: Uint8Array): Result<T> {
  const r = decode(bytes)
  if (!r.ok) expect(DECODE_CODES).toContain(r.error.code)
  return r
}

describe('[fuzz] decoders of untrusted bytes', () => {
  it(
    'events: never a throw; what decodes is canonical (re-encodes to the same bytes)',
    () => {
      fc.assert(
        fc.property(hostileBytes([res.bytes, commit.bytes, release.bytes]), (bytes) => {
          const r = total(decodeEvent, bytes)
          if (r.ok) expect(toHex(r.value.bytes)).toBe(toHex(bytes))
        }),
        fcOptions(1500),
      )
    },
    fuzzTimeout(30_000),
  )

  it(
    'acks, certificates, proofs: never a throw',
    () => {
      fc.assert(
        fc.property(hostileBytes([ackOf().bytes]), (b) => void total(decodeAck, b)),
        fcOptions(1000),
      )
      fc.assert(
        fc.property(hostileBytes([certificate.bytes]), (b) => void total(decodeCertificate, b)),
        fcOptions(1000),
      )
      fc.assert(
        fc.property(hostileBytes([proof]), (b) => void total(decodeProof, b)),
        fcOptions(1000),
      )
    },
    fuzzTimeout(30_000),
  )

  it(
    'gossip validation: only EventValidationError, and a mutated commit is never accepted',
    () => {
      const enrolled = new Set([toHex(alice.publicKey), toHex(bob.publicKey)])
      const ctx: ValidationContext = {
        venue: VENUE,
        now: NOW,
        maxClockSkewMs: 30_000,
        quorum: 2,
        // the original commit itself reaches the quorum-certificate check, which asks the card's
        // custodian group (missing here, the test threw a TypeError whenever fast-check drew it)
        group: () => ({ members: [...enrolled].sort(), has: (m) => enrolled.has(m) }),
        policy: defaultPolicy(VENUE),
        isEnrolled: (k) => enrolled.has(k),
        isKnown: () => false,
        idAt: () => undefined,
        reservationOrigin: (id) => (id === res.idHex ? toHex(alice.publicKey) : undefined),
      }
      const originals = new Set([res, commit, release].map((e) => e.idHex))
      fc.assert(
        fc.property(hostileBytes([res.bytes, commit.bytes, release.bytes]), (bytes) => {
          try {
            const signed = validateEventBytes(ctx, bytes, 16 * 1024)
            // signatures cover every byte: only the originals themselves pass
            expect(originals.has(signed.idHex)).toBe(true)
          } catch (err: unknown) {
            expect(err).toBeInstanceOf(EventValidationError)
          }
        }),
        fcOptions(1500),
      )
    },
    fuzzTimeout(30_000),
  )

  it(
    'policy documents: parsePolicy and verifySignedPolicy never throw on any JSON',
    () => {
      const signed = signPolicy(operator, defaultPolicy(VENUE))
      const json = fc.jsonValue({ maxDepth: 4 })
      const mutatedPolicy = fc
        .tuple(fc.constantFrom(...Object.keys(defaultPolicy(VENUE))), json)
        .map(([k, v]) => ({ ...defaultPolicy(VENUE), [k]: v }))
      fc.assert(
        fc.property(fc.oneof(json, mutatedPolicy), (doc) => {
          const parsed = parsePolicy(doc)
          expect(typeof parsed.ok).toBe('boolean')
          expect(verifySignedPolicy(doc, operator.publicKey).ok).toBe(false)
          const tampered = { ...signed, payload: doc }
          const same = JSON.stringify(doc) === JSON.stringify(signed.payload)
          expect(verifySignedPolicy(tampered, operator.publicKey).ok).toBe(same)
          expect(() => verifyDocument('nullmesh/denylist/v1', doc, operator.publicKey)).not.toThrow()
        }),
        fcOptions(1000),
      )
      expect(verifySignedPolicy(signed, operator.publicKey).ok).toBe(true)
    },
    fuzzTimeout(30_000),
  )

  it(
    'frames: any chunking of any bytes yields frames or aborts the stream, never a throw',
    () => {
      fc.assert(
        fc.property(
          fc.array(
            fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.constant(Uint8Array.of(0xff, 0xff, 0xff, 0x7f))),
            {
              maxLength: 8,
            },
          ),
          (chunks) => {
            const stream = new EventTarget() as EventTarget & { abort(err: Error): void; aborted?: Error }
            stream.abort = (err: Error) => {
              stream.aborted = err
            }
            let frames = 0
            new FramedStream(
              stream as never,
              () => frames++,
              () => {},
            )
            for (const data of chunks) {
              if (stream.aborted !== undefined) break
              stream.dispatchEvent(Object.assign(new Event('message'), { data }))
            }
            expect(frames >= 0).toBe(true)
          },
        ),
        fcOptions(1000),
      )
    },
    fuzzTimeout(30_000),
  )
})
