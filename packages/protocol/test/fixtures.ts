import {
  type Ack,
  type Commit,
  type CommitMode,
  computeCardKey,
  computeNullifier,
  generateKeyPair,
  type KeyPair,
  type Release,
  type Reservation,
  type SignedAck,
  type SignedEvent,
  signAck,
  signEvent,
} from '@nullmesh/protocol'

export const VENUE = 'venue-1'
export const HASHING_KEY = new Uint8Array(32).fill(7)
export const PAN = '4111111111111111'

export const alice = generateKeyPair()
export const bob = generateKeyPair()
export const carol = generateKeyPair()

export function reservation(key: KeyPair = alice, over: Partial<Reservation> = {}): SignedEvent<Reservation> {
  return signEvent(key, {
    type: 'reservation',
    venue: VENUE,
    origin: key.publicKey,
    seq: 1,
    ts: 1_700_000_000_000,
    nullifier: computeNullifier(HASHING_KEY, PAN, { credentialCounter: 42, idempotencyKey: 'idem-1' }),
    cardKey: computeCardKey(HASHING_KEY, PAN),
    amountMinor: 1250,
    currency: 'EUR',
    method: 'contactless',
    policyVersion: 3,
    ...over,
  })
}

export function ack(key: KeyPair, reservationId: Uint8Array, over: Partial<Ack> = {}): SignedAck {
  return signAck(key, {
    venue: VENUE,
    acker: key.publicKey,
    reservationId,
    ok: true,
    reason: '',
    ts: 1_700_000_000_100,
    ...over,
  })
}

export function commit(
  res: SignedEvent<Reservation>,
  mode: CommitMode = 'quorum',
  acks: SignedAck[] = [ack(bob, res.id), ack(carol, res.id)],
  key: KeyPair = alice,
): SignedEvent<Commit> {
  return signEvent(key, {
    type: 'commit',
    venue: VENUE,
    origin: key.publicKey,
    seq: 2,
    ts: 1_700_000_000_200,
    reservation: res,
    mode,
    acks,
  })
}

export function release(reservationId: Uint8Array, key: KeyPair = alice): SignedEvent<Release> {
  return signEvent(key, {
    type: 'release',
    venue: VENUE,
    origin: key.publicKey,
    seq: 3,
    ts: 1_700_000_000_300,
    reservationId,
    reason: 'barrier_timeout',
  })
}

/** A copy of `bytes` with one bit flipped. */
export function flipBit(bytes: Uint8Array, index: number, bit = 0): Uint8Array {
  const copy = new Uint8Array(bytes)
  copy[index] = copy[index]! ^ (1 << bit)
  return copy
}
