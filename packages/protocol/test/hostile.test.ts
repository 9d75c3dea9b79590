import {
  decodeAck,
  decodeCertificate,
  decodeEvent,
  decodeProof,
  encodeCbor,
  MAX_ACK_BYTES,
  MAX_EVENT_BYTES,
  PROTOCOL_VERSION,
  type Result,
} from '@nullmesh/protocol'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ack, alice, bob, commit, release, reservation } from './fixtures.js'

const CODES = [
  'ERR_TOO_LARGE',
  'ERR_BAD_VERSION',
  'ERR_MALFORMED',
  'ERR_NON_CANONICAL',
  'ERR_BAD_FIELD',
] as const

const DECODERS: Array<[string, (b: Uint8Array) => Result<unknown>]> = [
  ['decodeEvent', decodeEvent],
  ['decodeAck', decodeAck],
  ['decodeCertificate', decodeCertificate],
  ['decodeProof', decodeProof],
]

/** Never throws; a failure is typed with a stable code. */
function expectRejected(result: Result<unknown>, code?: (typeof CODES)[number]): void {
  expect(result.ok).toBe(false)
  if (result.ok) return
  expect(CODES).toContain(result.error.code)
  expect(result.error.message.length).toBeGreaterThan(0)
  if (code !== undefined) expect(result.error.code).toBe(code)
}

function versioned(body: Uint8Array, version = PROTOCOL_VERSION): Uint8Array {
  const out = new Uint8Array(body.byteLength + 1)
  out[0] = version
  out.set(body, 1)
  return out
}

const valid = {
  reservation: reservation(),
  commit: commit(reservation()),
  release: release(reservation().id),
}

describe('hostile bytes', () => {
  it.each(DECODERS)('%s: random bytes never throw and are rejected', (_name, decode) => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        expectRejected(decode(bytes))
      }),
      { numRuns: 500 },
    )
  })

  it.each(DECODERS)('%s: random bytes behind a valid version byte never throw', (_name, decode) => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 600 }), (bytes) => {
        expectRejected(decode(versioned(bytes)))
      }),
      { numRuns: 500 },
    )
  })

  it('random CBOR values (valid encoding, wrong shape) are rejected with ERR_BAD_FIELD', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.array(fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.string(), fc.uint8Array(), fc.boolean())),
          fc.dictionary(fc.string(), fc.integer()),
          fc.string(),
          fc.integer({ min: 0, max: 2 ** 40 }),
        ),
        (value) => {
          const bytes = versioned(encodeCbor(value))
          expectRejected(decodeEvent(bytes))
          expectRejected(decodeAck(bytes))
          expectRejected(decodeCertificate(bytes))
        },
      ),
      { numRuns: 300 },
    )
  })

  it('random mutations of valid events never throw', () => {
    const events = Object.values(valid)
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: events.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        (which, edits) => {
          const bytes = new Uint8Array(events[which]!.bytes)
          for (const [pos, value] of edits) bytes[pos % bytes.byteLength] = value
          const r = decodeEvent(bytes)
          if (!r.ok) expect(CODES).toContain(r.error.code)
        },
      ),
      { numRuns: 1000 },
    )
  })

  it.each(Object.entries(valid))('every truncation of a %s is rejected', (_name, signed) => {
    for (let len = 0; len < signed.bytes.byteLength; len++) {
      expectRejected(decodeEvent(signed.bytes.subarray(0, len)))
    }
  })

  it('trailing bytes after a valid event are rejected', () => {
    const bytes = new Uint8Array([...valid.reservation.bytes, 0])
    expectRejected(decodeEvent(bytes))
  })

  it('oversized input is rejected before parsing', () => {
    const big = new Uint8Array(MAX_EVENT_BYTES + 1)
    big[0] = PROTOCOL_VERSION
    expectRejected(decodeEvent(big), 'ERR_TOO_LARGE')
    const bigAck = new Uint8Array(MAX_ACK_BYTES + 1)
    bigAck[0] = PROTOCOL_VERSION
    expectRejected(decodeAck(bigAck), 'ERR_TOO_LARGE')
    expectRejected(decodeCertificate(bigAck), 'ERR_TOO_LARGE')
  })

  it('an event padded to just over the limit with a valid structure is rejected', () => {
    const padded = versioned(encodeCbor([['x'.repeat(MAX_EVENT_BYTES)], new Uint8Array(64)]))
    expectRejected(decodeEvent(padded), 'ERR_TOO_LARGE')
  })

  it('a wrong version byte is rejected', () => {
    for (const version of [0, 2, 255]) {
      const bytes = new Uint8Array(valid.reservation.bytes)
      bytes[0] = version
      expectRejected(decodeEvent(bytes), 'ERR_BAD_VERSION')
      const a = new Uint8Array(ack(bob, valid.reservation.id).bytes)
      a[0] = version
      expectRejected(decodeAck(a), 'ERR_BAD_VERSION')
    }
  })

  it('empty and one-byte inputs are rejected', () => {
    expectRejected(decodeEvent(new Uint8Array(0)), 'ERR_MALFORMED')
    expectRejected(decodeEvent(new Uint8Array([PROTOCOL_VERSION])), 'ERR_MALFORMED')
  })

  it('non-canonical CBOR is rejected', () => {
    // 1.0 as a float64 decodes to the integer 1 but is not its canonical encoding
    const float = versioned(new Uint8Array([0x82, 0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x00]))
    expectRejected(decodeEvent(float), 'ERR_NON_CANONICAL')
    // a map with unsorted keys
    const map = versioned(new Uint8Array([0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02]))
    expectRejected(decodeEvent(map), 'ERR_NON_CANONICAL')
    // an integer in more bytes than necessary (rejected by the strict parser)
    const wide = versioned(new Uint8Array([0x82, 0x18, 0x01, 0x00]))
    expectRejected(decodeEvent(wide))
    // indefinite-length array
    const indefinite = versioned(new Uint8Array([0x9f, 0x01, 0xff]))
    expectRejected(decodeEvent(indefinite), 'ERR_MALFORMED')
  })

  it('a valid event re-encoded non-canonically (seq as a wide integer) is rejected', () => {
    // rebuild the reservation with a 64-bit seq encoding: replace the canonical 0x01 after the origin bytes
    const bytes = valid.reservation.bytes
    const origin = Buffer.from(alice.publicKey)
    const at = Buffer.from(bytes).indexOf(origin) + origin.byteLength
    expect(bytes[at]).toBe(0x01)
    const wide = new Uint8Array([
      ...bytes.subarray(0, at),
      0x1b,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      1,
      ...bytes.subarray(at + 1),
    ])
    expectRejected(decodeEvent(wide))
  })

  it('a huge declared array or byte-string length is rejected without allocating', () => {
    const cases = [
      [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
      [0x9a, 0xff, 0xff, 0xff, 0xff],
      [0x5a, 0xff, 0xff, 0xff, 0xff],
      [0x7a, 0x7f, 0xff, 0xff, 0xff],
      [0x82, 0x9a, 0x10, 0x00, 0x00, 0x00],
    ]
    for (const c of cases) {
      expectRejected(decodeEvent(versioned(new Uint8Array(c))), 'ERR_MALFORMED')
      expectRejected(decodeAck(versioned(new Uint8Array(c))), 'ERR_MALFORMED')
    }
  })

  it('deep nesting is rejected without throwing', () => {
    for (const depth of [100, 1000, MAX_EVENT_BYTES - 2]) {
      const body = new Uint8Array(depth + 1).fill(0x81)
      body[depth] = 0x00
      expectRejected(decodeEvent(versioned(body)))
    }
    const deepMap = new Uint8Array(MAX_EVENT_BYTES - 1)
    for (let i = 0; i + 1 < deepMap.length; i += 2) {
      deepMap[i] = 0xa1
      deepMap[i + 1] = 0x00
    }
    expectRejected(decodeEvent(versioned(deepMap)))
  })

  it('a commit wrapping a commit instead of a reservation is rejected', () => {
    const inner = commit(reservation())
    const body = [1, 'venue-1', alice.publicKey, 9, 1, inner.bytes, 0, []]
    expectRejected(decodeEvent(versioned(encodeCbor([body, new Uint8Array(64)]))), 'ERR_BAD_FIELD')
  })

  it('a commit with more than MAX_ACKS acks is rejected', () => {
    const res = reservation()
    const a = ack(bob, res.id).bytes
    const body = [1, 'venue-1', alice.publicKey, 9, 1, res.bytes, 0, Array.from({ length: 65 }, () => a)]
    expectRejected(decodeEvent(versioned(encodeCbor([body, new Uint8Array(64)]))), 'ERR_BAD_FIELD')
  })

  it('out-of-range fields are rejected with ERR_BAD_FIELD', () => {
    const r = valid.reservation.event
    const base = [
      0,
      r.venue,
      r.origin,
      r.seq,
      r.ts,
      r.nullifier,
      r.cardKey,
      r.amountMinor,
      r.currency,
      1,
      r.policyVersion,
    ]
    const sig = new Uint8Array(64)
    const mutations: Array<[number, unknown]> = [
      [0, 7], // unknown type
      [1, 'bad venue!'],
      [2, new Uint8Array(31)],
      [3, -1],
      [4, 2 ** 48],
      [5, new Uint8Array(33)],
      [6, new Uint8Array(15)],
      [7, 2 ** 48],
      [8, 'eur'],
      [9, 5], // method index out of range
      [10, 0x10000],
      [7, 'x'],
    ]
    for (const [i, v] of mutations) {
      const body: unknown[] = [...base]
      body[i] = v
      expectRejected(decodeEvent(versioned(encodeCbor([body, sig]))), 'ERR_BAD_FIELD')
    }
    expectRejected(decodeEvent(versioned(encodeCbor([base, new Uint8Array(63)]))), 'ERR_BAD_FIELD')
    expectRejected(decodeEvent(versioned(encodeCbor([[...base, 0], sig]))), 'ERR_BAD_FIELD')
  })

  it('decodeProof rejects wrong lengths and versions', () => {
    for (const len of [0, 1, 86, 88, 200]) expectRejected(decodeProof(new Uint8Array(len)), 'ERR_MALFORMED')
    const p = new Uint8Array(87)
    expectRejected(decodeProof(p), 'ERR_BAD_VERSION')
  })

  it('non-Uint8Array input is rejected, not thrown', () => {
    expectRejected(decodeEvent('hello' as unknown as Uint8Array))
    expectRejected(decodeEvent(null as unknown as Uint8Array))
    expectRejected(decodeProof([1, 2, 3] as unknown as Uint8Array))
  })
})
