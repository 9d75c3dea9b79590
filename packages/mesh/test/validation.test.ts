import { TopicValidatorResult } from '@libp2p/gossipsub'
import {
  EventValidationError,
  toGossipVerdict,
  VALIDATION_CODES,
  type ValidationContext,
  validateCatchupRequest,
  validateEventBytes,
} from '@nullmesh/mesh'
import { defaultPolicy } from '@nullmesh/policy'
import {
  generateKeyPair,
  type KeyPair,
  type Reservation,
  type SignedEvent,
  signAck,
  signEvent,
  toHex,
} from '@nullmesh/protocol'
import { describe, expect, it } from 'vitest'

const venue = 'venue-a'
const NOW = 1_800_000_000_000
const terminals = [generateKeyPair(), generateKeyPair(), generateKeyPair()]
const stranger = generateKeyPair()

function ctx(over: Partial<ValidationContext> = {}): ValidationContext {
  const enrolled = new Set(terminals.map((k) => toHex(k.publicKey)))
  return {
    venue,
    now: NOW,
    maxClockSkewMs: 30_000,
    quorum: 2,
    // a roster of three is one custodian group
    group: () => ({ members: [...enrolled].sort(), has: (m) => enrolled.has(m) }),
    policy: defaultPolicy(venue),
    isEnrolled: (k) => enrolled.has(k),
    isKnown: () => false,
    idAt: () => undefined,
    reservationOrigin: () => undefined,
    ...over,
  }
}

function reservation(key: KeyPair, over: Partial<Reservation> = {}): SignedEvent<Reservation> {
  return signEvent(key, {
    type: 'reservation',
    venue,
    origin: key.publicKey,
    seq: 1,
    ts: NOW,
    nullifier: new Uint8Array(32).fill(1),
    cardKey: new Uint8Array(16).fill(2),
    amountMinor: 1000,
    currency: 'EUR',
    method: 'contactless',
    policyVersion: 1,
    ...over,
  })
}

function ack(key: KeyPair, r: SignedEvent<Reservation>, ok = true) {
  return signAck(key, {
    venue,
    acker: key.publicKey,
    reservationId: r.id,
    ok,
    reason: ok ? '' : 'card_cap_exceeded',
    ts: NOW,
  })
}

function commitOf(
  key: KeyPair,
  r: SignedEvent<Reservation>,
  acks: ReturnType<typeof ack>[],
  mode: 'quorum' | 'isolated' = 'quorum',
) {
  return signEvent(key, {
    type: 'commit',
    venue,
    origin: key.publicKey,
    seq: 2,
    ts: NOW,
    reservation: r,
    mode,
    acks,
  })
}

function expectCode(fn: () => unknown, code: keyof typeof VALIDATION_CODES) {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(EventValidationError)
    expect((err as EventValidationError).code).toBe(code)
    expect((err as EventValidationError).action).toBe(VALIDATION_CODES[code])
    return
  }
  throw new Error(`expected ${code}`)
}

describe('gossip validation rules', () => {
  const [a, b, c] = terminals as [KeyPair, KeyPair, KeyPair]

  it('accepts a valid reservation, quorum commit and release', () => {
    const r = reservation(a)
    expect(validateEventBytes(ctx(), r.bytes, 16384).idHex).toBe(r.idHex)
    const commit = commitOf(a, r, [ack(a, r), ack(b, r)])
    expect(validateEventBytes(ctx(), commit.bytes, 16384).event.type).toBe('commit')
    const release = signEvent(a, {
      type: 'release',
      venue,
      origin: a.publicKey,
      seq: 3,
      ts: NOW,
      reservationId: r.id,
      reason: 'barrier_timeout',
    })
    expect(
      validateEventBytes(ctx({ reservationOrigin: () => toHex(a.publicKey) }), release.bytes, 16384).event
        .type,
    ).toBe('release')
  })

  it('[REJECT] oversized', () =>
    expectCode(() => validateEventBytes(ctx(), reservation(a).bytes, 100), 'ERR_TOO_LARGE'))
  it('[REJECT] undecodable bytes', () =>
    expectCode(() => validateEventBytes(ctx(), new Uint8Array([1, 2, 3, 4]), 16384), 'ERR_DECODE'))
  it('[IGNORE] already known', () => {
    const r = reservation(a)
    expectCode(
      () => validateEventBytes(ctx({ isKnown: (id) => id === r.idHex }), r.bytes, 16384),
      'ERR_ALREADY_KNOWN',
    )
  })
  it('[REJECT] another venue', () =>
    expectCode(
      () => validateEventBytes(ctx(), reservation(a, { venue: 'venue-b' }).bytes, 16384),
      'ERR_WRONG_VENUE',
    ))
  it('[REJECT] origin not enrolled', () =>
    expectCode(
      () => validateEventBytes(ctx(), reservation(stranger, { origin: stranger.publicKey }).bytes, 16384),
      'ERR_NOT_ENROLLED',
    ))
  it('[REJECT] timestamp too far in the future', () =>
    expectCode(
      () => validateEventBytes(ctx(), reservation(a, { ts: NOW + 60_000 }).bytes, 16384),
      'ERR_FUTURE_TIMESTAMP',
    ))
  it('[REJECT] forged signature (signed by another enrolled key)', () => {
    const forged = signEvent(b, { ...reservation(a).event })
    expectCode(() => validateEventBytes(ctx(), forged.bytes, 16384), 'ERR_BAD_SIGNATURE')
  })
  it('[REJECT] equivocation: same (origin, seq), different content', () => {
    const r1 = reservation(a)
    const r2 = reservation(a, { amountMinor: 999 })
    expectCode(() => validateEventBytes(ctx({ idAt: () => r1.idHex }), r2.bytes, 16384), 'ERR_EQUIVOCATION')
  })
  it('[REJECT] commit with too few acks', () => {
    const r = reservation(a)
    const commit = commitOf(a, r, [ack(a, r)])
    expectCode(() => validateEventBytes(ctx(), commit.bytes, 16384), 'ERR_BAD_QUORUM_CERTIFICATE')
  })
  it('[REJECT] commit whose certificate counts one acker twice', () => {
    const r = reservation(a)
    const commit = commitOf(a, r, [ack(a, r), ack(a, r)])
    expectCode(() => validateEventBytes(ctx(), commit.bytes, 16384), 'ERR_BAD_QUORUM_CERTIFICATE')
  })
  it('[REJECT] commit with an ack from a non-enrolled key', () => {
    const r = reservation(a)
    const commit = commitOf(a, r, [ack(a, r), ack(stranger, r)])
    expectCode(() => validateEventBytes(ctx(), commit.bytes, 16384), 'ERR_BAD_QUORUM_CERTIFICATE')
  })
  it('[REJECT] commit whose certificate counts an ack from outside the card’s custodian group', () => {
    const r = reservation(a)
    // the card's group is {a, b}: c is enrolled, but its ack says nothing about this card
    const members = [toHex(a.publicKey), toHex(b.publicKey)].sort()
    const group = () => ({ members, has: (m: string) => members.includes(m) })
    expect(
      validateEventBytes(ctx({ group }), commitOf(a, r, [ack(a, r), ack(b, r)]).bytes, 16384),
    ).toBeDefined()
    const outside = commitOf(a, r, [ack(a, r), ack(c, r)])
    expectCode(() => validateEventBytes(ctx({ group }), outside.bytes, 16384), 'ERR_BAD_QUORUM_CERTIFICATE')
    // and the quorum is counted within the group: a's own ack alone is not a majority of {a, b}
    expectCode(
      () => validateEventBytes(ctx({ group }), commitOf(a, r, [ack(a, r)]).bytes, 16384),
      'ERR_BAD_QUORUM_CERTIFICATE',
    )
  })
  it('[REJECT] commit containing a refusal', () => {
    const r = reservation(a)
    const commit = commitOf(a, r, [ack(a, r), ack(b, r, false), ack(c, r)])
    expectCode(() => validateEventBytes(ctx(), commit.bytes, 16384), 'ERR_BAD_QUORUM_CERTIFICATE')
  })
  it('[REJECT] commit of another terminal’s reservation', () => {
    const r = reservation(b)
    const commit = commitOf(a, r, [ack(a, r), ack(b, r)])
    expectCode(() => validateEventBytes(ctx(), commit.bytes, 16384), 'ERR_BAD_QUORUM_CERTIFICATE')
  })
  it('[REJECT] commit embedding a reservation with a bad signature', () => {
    const forged = signEvent(b, { ...reservation(a).event }) as SignedEvent<Reservation>
    const commit = commitOf(a, forged, [], 'isolated')
    expectCode(() => validateEventBytes(ctx(), commit.bytes, 16384), 'ERR_BAD_SIGNATURE')
  })
  it('[REJECT] isolated commit above the isolated floor limit (one 99,999.99 commit would use up the venue cap)', () => {
    const r = reservation(a, { amountMinor: 9_999_999 })
    const commit = commitOf(a, r, [], 'isolated')
    expectCode(() => validateEventBytes(ctx(), commit.bytes, 16384), 'ERR_POLICY_VIOLATION')
    // within the limit it is accepted
    const small = reservation(a, { amountMinor: 2_500 })
    expect(validateEventBytes(ctx(), commitOf(a, small, [], 'isolated').bytes, 16384).event.type).toBe(
      'commit',
    )
  })
  it('[REJECT] offline commit of a method not allowed offline or a currency not supported', () => {
    const swipe = reservation(a, { method: 'swipe' })
    expectCode(
      () => validateEventBytes(ctx(), commitOf(a, swipe, [ack(a, swipe), ack(b, swipe)]).bytes, 16384),
      'ERR_POLICY_VIOLATION',
    )
    const xxx = reservation(a, { currency: 'XXX' })
    expectCode(
      () => validateEventBytes(ctx(), commitOf(a, xxx, [], 'isolated').bytes, 16384),
      'ERR_POLICY_VIOLATION',
    )
  })
  it('[REJECT] isolated commit while the policy disables isolated mode', () => {
    const r = reservation(a)
    const off = ctx({ policy: defaultPolicy(venue, { isolated: { enabled: false } }) })
    expectCode(
      () => validateEventBytes(off, commitOf(a, r, [], 'isolated').bytes, 16384),
      'ERR_POLICY_VIOLATION',
    )
  })
  it('[REJECT] release of another terminal’s reservation', () => {
    const r = reservation(b)
    const release = signEvent(a, {
      type: 'release',
      venue,
      origin: a.publicKey,
      seq: 3,
      ts: NOW,
      reservationId: r.id,
      reason: 'x',
    })
    expectCode(
      () => validateEventBytes(ctx({ reservationOrigin: () => toHex(b.publicKey) }), release.bytes, 16384),
      'ERR_FOREIGN_RELEASE',
    )
  })
  it('[IGNORE] release of a reservation not known here (could be another terminal’s)', () => {
    const r = reservation(b)
    const release = signEvent(a, {
      type: 'release',
      venue,
      origin: a.publicKey,
      seq: 3,
      ts: NOW,
      reservationId: r.id,
      reason: 'x',
    })
    expectCode(() => validateEventBytes(ctx(), release.bytes, 16384), 'ERR_UNKNOWN_RESERVATION')
  })
  describe('escrow transfers', () => {
    const transfer = (over: Record<string, unknown> = {}) =>
      signEvent(a, {
        type: 'transfer',
        venue,
        origin: a.publicKey,
        seq: 4,
        ts: NOW,
        to: b.publicKey,
        amountMinor: 5000,
        currency: 'EUR',
        ...over,
      } as Parameters<typeof signEvent>[1])
    it('accepts a transfer of unused share to another terminal (canonical round trip)', () => {
      const t = transfer()
      const v = validateEventBytes(ctx({ escrowShare: () => 400_000 }), t.bytes, 16384)
      expect(v.idHex).toBe(t.idHex)
      expect(v.event).toMatchObject({ type: 'transfer', amountMinor: 5000, currency: 'EUR' })
    })
    it('[REJECT] a transfer to itself, to a non-member, in a currency without a cap, or of nothing', () => {
      expectCode(
        () => validateEventBytes(ctx(), transfer({ to: a.publicKey }).bytes, 16384),
        'ERR_BAD_TRANSFER',
      )
      expectCode(
        () => validateEventBytes(ctx(), transfer({ to: stranger.publicKey }).bytes, 16384),
        'ERR_BAD_TRANSFER',
      )
      expectCode(
        () => validateEventBytes(ctx(), transfer({ currency: 'JPY' }).bytes, 16384),
        'ERR_BAD_TRANSFER',
      )
      expectCode(
        () => validateEventBytes(ctx(), transfer({ amountMinor: 0 }).bytes, 16384),
        'ERR_BAD_TRANSFER',
      )
    })
    it('[REJECT] a forged transfer (signed by another key)', () => {
      const forged = signEvent(b, { ...transfer().event })
      expectCode(() => validateEventBytes(ctx(), forged.bytes, 16384), 'ERR_BAD_SIGNATURE')
    })
    it('[IGNORE] a transfer above the origin’s share as known here (a credit may still be on its way)', () => {
      expectCode(
        () => validateEventBytes(ctx({ escrowShare: () => 4999 }), transfer().bytes, 16384),
        'ERR_UNKNOWN_SHARE',
      )
    })
  })

  it('maps outcomes to gossipsub verdicts in one place', () => {
    expect(toGossipVerdict(undefined)).toBe(TopicValidatorResult.Accept)
    expect(toGossipVerdict(new EventValidationError('ERR_ALREADY_KNOWN', ''))).toBe(
      TopicValidatorResult.Ignore,
    )
    expect(toGossipVerdict(new EventValidationError('ERR_BAD_SIGNATURE', ''))).toBe(
      TopicValidatorResult.Reject,
    )
    expect(toGossipVerdict(new Error('internal'))).toBe(TopicValidatorResult.Ignore)
  })
})

describe('catch-up request validation [catch-up held ranges]', () => {
  const a = 'aa'.repeat(32)
  const b = 'bb'.repeat(32)
  const check = (frame: unknown, max = 8) => validateCatchupRequest(frame, max)
  const rejected = (frame: unknown, max = 8) => {
    try {
      check(frame, max)
    } catch (err: unknown) {
      expect(err).toBeInstanceOf(EventValidationError)
      return [(err as EventValidationError).code, (err as EventValidationError).action]
    }
    return 'accepted'
  }

  it('reads marks and held ranges; a request of the code before them (marks only) holds nothing past its marks', () => {
    expect(
      check([
        [
          [a, 2],
          [b, 0],
        ],
        [[b, [2, 4, 7, 7]]],
      ]),
    ).toEqual({
      marks: { [a]: 2, [b]: 0 },
      held: { [b]: [2, 4, 7, 7] },
    })
    expect(check([[[a, 2]]])).toEqual({ marks: { [a]: 2 }, held: {} })
    expect(check([[], []])).toEqual({ marks: {}, held: {} })
  })

  it('[REJECT]s a malformed request', () => {
    const bad = ['ERR_BAD_CATCHUP_REQUEST', 'REJECT']
    expect(rejected(undefined)).toEqual(bad)
    expect(rejected({ marks: [] })).toEqual(bad)
    expect(rejected([[[a, 1]], [], 'extra'])).toEqual(bad)
    expect(rejected([[[a, -1]]])).toEqual(bad)
    expect(rejected([[[a, 1.5]]])).toEqual(bad)
    expect(rejected([[['AA', 1]]])).toEqual(bad)
    expect(rejected([[['__proto__', 1]]])).toEqual(bad)
    expect(rejected([[], { [a]: [2, 3] }])).toEqual(bad)
    expect(rejected([[], [[a, [2]]]])).toEqual(bad) // odd count
    expect(rejected([[], [[a, [0, 3]]]])).toEqual(bad) // seq 0
    expect(rejected([[], [[a, [5, 3]]]])).toEqual(bad) // to < from
    expect(rejected([[], [[a, [2, 5, 5, 8]]]])).toEqual(bad) // overlapping
    expect(rejected([[], [[a, [6, 8, 2, 3]]]])).toEqual(bad) // not ascending
    expect(rejected([[], [[a, [2, 2 ** 41]]]])).toEqual(bad) // past the largest seq
    expect(
      rejected([
        [],
        [
          [a, [2, 3]],
          [a, [5, 6]],
        ],
      ]),
    ).toEqual(bad) // an origin twice
    // more ranges than a request may carry: a bounded answer to compute
    expect(
      rejected(
        [
          [],
          [
            [a, [2, 2, 4, 4]],
            [b, [2, 2]],
          ],
        ],
        2,
      ),
    ).toEqual(bad)
    expect(
      rejected(
        [
          [],
          [
            [a, [2, 2, 4, 4]],
            [b, [2, 2]],
          ],
        ],
        3,
      ),
    ).toBe('accepted')
  })
})
