import { type ValidationContext, validateEventBytes } from '@nullmesh/mesh'
import {
  decodeAck,
  type KeyPair,
  MAX_EVENT_BYTES,
  type Reservation,
  type SignedEvent,
  setSignatureScheme,
  signAck,
  signatureScheme,
  signEvent,
  toHex,
  verifyAckSignature,
  verifyEventSignature,
} from '@nullmesh/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { simPolicy, VENUE } from '../src/dst/config.js'
import { simSignatures } from '../src/dst/signatures.js'
import { venueOf } from '../src/dst/venue.js'

/**
 * The simulator's signature scheme stands in for Ed25519 (docs/protocol.md, "Simulated
 * signatures"): it must reject what Ed25519 rejects inside the simulated world — a terminal
 * signing in another's name, a tampered message or signature, an unknown key — so a core that
 * accepted a bad signature or a forged ack would still be caught.
 */
const venue = venueOf(5)
const [t1, t2] = venue.keys as [KeyPair, KeyPair]
const NOW = 1_750_000_000_000

function reservation(signer: KeyPair, origin: KeyPair): SignedEvent<Reservation> {
  return signEvent(signer, {
    type: 'reservation',
    venue: VENUE,
    origin: origin.publicKey,
    seq: 1,
    ts: NOW,
    nullifier: new Uint8Array(32).fill(1),
    cardKey: new Uint8Array(16).fill(2),
    amountMinor: 1000,
    currency: 'EUR',
    method: 'contactless',
    policyVersion: simPolicy(5).version,
  })
}

function ctx(): ValidationContext {
  const enrolled = new Set(venue.hex)
  return {
    venue: VENUE,
    now: NOW,
    maxClockSkewMs: 30_000,
    quorum: 3,
    group: () => ({ members: [...venue.hexSorted], has: (m) => enrolled.has(m) }),
    policy: simPolicy(5),
    isEnrolled: (k) => enrolled.has(k),
    isKnown: () => false,
    idAt: () => undefined,
    reservationOrigin: () => undefined,
  }
}

describe('simulated signatures [dst signatures]', () => {
  beforeEach(() => setSignatureScheme(simSignatures))
  afterEach(() => setSignatureScheme(undefined))

  it('a keyed hash per terminal: binds the key and every byte of the message', () => {
    const m = new TextEncoder().encode('a message of some length, not a multiple of four!')
    const sig = simSignatures.sign(t1.privateKey, m)
    expect(sig.byteLength).toBe(64)
    expect(simSignatures.verify(t1.publicKey, m, sig)).toBe(true)
    // another terminal's key, an unknown key
    expect(simSignatures.verify(t2.publicKey, m, sig)).toBe(false)
    expect(simSignatures.verify(new Uint8Array(32).fill(9), m, sig)).toBe(false)
    // every byte of the message and of the signature counts
    for (let i = 0; i < m.byteLength; i++) {
      const x = m.slice()
      x[i]! ^= 1
      expect(simSignatures.verify(t1.publicKey, x, sig), `message byte ${i}`).toBe(false)
    }
    for (let i = 0; i < 64; i++) {
      const s = sig.slice()
      s[i]! ^= 0x80
      expect(simSignatures.verify(t1.publicKey, m, s), `signature byte ${i}`).toBe(false)
    }
    // a trailing byte more is another message
    expect(simSignatures.verify(t1.publicKey, new Uint8Array([...m, 0]), sig)).toBe(false)
    // a key outside the simulated world cannot sign at all
    expect(() => simSignatures.sign(new Uint8Array(32).fill(3), m)).toThrow(/does not know/)
  })

  it('the protocol uses the injected scheme: a terminal cannot sign an event or an ack in another’s name', () => {
    expect(signatureScheme().name).toBe('dst-keyed-hash')
    const genuine = reservation(t1, t1)
    expect(verifyEventSignature(genuine)).toBe(true)
    const forged = reservation(t2, t1)
    expect(verifyEventSignature(forged)).toBe(false)
    // the core's validation of untrusted bytes refuses it like a bad Ed25519 signature
    expect(validateEventBytes(ctx(), genuine.bytes, MAX_EVENT_BYTES).idHex).toBe(genuine.idHex)
    expect(() => validateEventBytes(ctx(), forged.bytes, MAX_EVENT_BYTES)).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_SIGNATURE' }),
    )
    const ackBody = { venue: VENUE, reservationId: genuine.id, ok: true, reason: '', ts: NOW }
    const ack = signAck(t2, { ...ackBody, acker: t2.publicKey })
    const decoded = decodeAck(ack.bytes)
    expect(decoded.ok && verifyAckSignature(decoded.value)).toBe(true)
    const forgedAck = signAck(t1, { ...ackBody, acker: t2.publicKey })
    expect(verifyAckSignature(forgedAck)).toBe(false)
    expect(toHex(forgedAck.ack.acker)).toBe(venue.hex[1])
  })
})
