import {
  type Commit,
  type CommitMode,
  decodeAck,
  decodeEvent,
  type NullmeshEvent,
  type Release,
  type Reservation,
  type SignedEvent,
  signEvent,
  toHex,
  verifyAckSignature,
  verifyEventSignature,
} from '@nullmesh/protocol'
import { describe, expect, it } from 'vitest'
import { ack, alice, bob, carol, commit, flipBit, release, reservation } from './fixtures.js'

const MODES: CommitMode[] = ['quorum', 'isolated', 'online']

function roundTrip<T extends NullmeshEvent>(signed: SignedEvent<T>): SignedEvent {
  const decoded = decodeEvent(signed.bytes)
  if (!decoded.ok) throw new Error(`decode failed: ${decoded.error.code} ${decoded.error.message}`)
  expect(decoded.value.idHex).toBe(signed.idHex)
  expect(decoded.value.signature).toEqual(signed.signature)
  expect(verifyEventSignature(decoded.value)).toBe(true)
  expect(verifyEventSignature(signed as SignedEvent)).toBe(true)
  return decoded.value
}

describe('events: sign / decode / verify', () => {
  it('round-trips a reservation field by field', () => {
    const res = reservation()
    const back = roundTrip(res).event as Reservation
    expect(back).toEqual(res.event)
    expect(back.method).toBe('contactless')
    expect(back.amountMinor).toBe(1250)
  })

  it('round-trips every payment method and edge amounts', () => {
    for (const method of ['chip', 'contactless', 'nfc', 'qr', 'swipe'] as const) {
      for (const amountMinor of [0, 1, 2 ** 48 - 1]) {
        const res = reservation(alice, {
          method,
          amountMinor,
          seq: 2 ** 40,
          ts: 2 ** 48 - 1,
          policyVersion: 0xffff,
        })
        expect(roundTrip(res).event).toEqual(res.event)
      }
    }
  })

  it.each(MODES)('round-trips a %s commit with its quorum certificate', (mode) => {
    const res = reservation()
    const c = commit(res, mode)
    const back = roundTrip(c).event as Commit
    expect(back.mode).toBe(mode)
    expect(back.reservation.idHex).toBe(res.idHex)
    expect(back.reservation.event).toEqual(res.event)
    expect(verifyEventSignature(back.reservation)).toBe(true)
    expect(back.acks).toHaveLength(2)
    for (const a of back.acks) expect(verifyAckSignature(a)).toBe(true)
    expect(toHex(back.acks[0]!.ack.reservationId)).toBe(res.idHex)
  })

  it('round-trips a commit without acks (isolated mode)', () => {
    const c = commit(reservation(), 'isolated', [])
    expect((roundTrip(c).event as Commit).acks).toEqual([])
  })

  it('round-trips a release', () => {
    const res = reservation()
    const rel = release(res.id)
    const back = roundTrip(rel).event as Release
    expect(back).toEqual(rel.event)
    expect(toHex(back.reservationId)).toBe(res.idHex)
  })

  it('round-trips ok and refusal acks', () => {
    const res = reservation()
    for (const a of [ack(bob, res.id), ack(carol, res.id, { ok: false, reason: 'nullifier_seen' })]) {
      const back = decodeAck(a.bytes)
      if (!back.ok) throw new Error(back.error.message)
      expect(back.value.ack).toEqual(a.ack)
      expect(verifyAckSignature(back.value)).toBe(true)
    }
  })

  it('is deterministic: the same event signs to the same bytes and id', () => {
    expect(reservation().bytes).toEqual(reservation().bytes)
    expect(reservation().idHex).toBe(reservation().idHex)
    expect(reservation(alice, { seq: 2 }).idHex).not.toBe(reservation().idHex)
  })
})

describe('events: tampering', () => {
  const cases: Array<[string, () => SignedEvent]> = [
    ['reservation', () => reservation()],
    ['commit', () => commit(reservation())],
    ['release', () => release(reservation().id)],
  ]

  it.each(cases)('every single-bit change of a %s is rejected or fails verification', (_name, make) => {
    const signed = make()
    for (let i = 0; i < signed.bytes.byteLength; i++) {
      for (const bit of [0, 7]) {
        const tampered = flipBit(signed.bytes, i, bit)
        const decoded = decodeEvent(tampered)
        if (decoded.ok) {
          expect(verifyEventSignature(decoded.value), `byte ${i} bit ${bit}`).toBe(false)
        } else {
          expect(decoded.error.code).toMatch(/^ERR_/)
        }
      }
    }
  })

  it('a changed field with the old signature does not verify', () => {
    const res = reservation()
    const forged: SignedEvent = { ...res, event: { ...res.event, amountMinor: 1 } }
    expect(verifyEventSignature(forged)).toBe(false)
  })

  it('an event re-signed by another key does not verify as the origin', () => {
    // bob signs an event claiming alice as origin
    const forged = signEvent(bob, { ...reservation().event, origin: alice.publicKey })
    expect(verifyEventSignature(forged)).toBe(false)
  })

  it('a commit whose embedded ack was altered is rejected or fails verification', () => {
    const c = commit(reservation())
    const ackBytes = c.event.acks[0]!.bytes
    const start = Buffer.from(c.bytes).indexOf(Buffer.from(ackBytes))
    expect(start).toBeGreaterThan(0)
    const tampered = flipBit(c.bytes, start + ackBytes.byteLength - 1)
    const decoded = decodeEvent(tampered)
    expect(decoded.ok).toBe(true)
    if (!decoded.ok) return
    expect(verifyEventSignature(decoded.value)).toBe(false)
    const inner = (decoded.value.event as Commit).acks[0]!
    expect(verifyAckSignature(inner)).toBe(false)
  })

  it('every single-bit change of an ack is rejected or fails verification', () => {
    const a = ack(bob, reservation().id)
    for (let i = 0; i < a.bytes.byteLength; i++) {
      const decoded = decodeAck(flipBit(a.bytes, i))
      if (decoded.ok) expect(verifyAckSignature(decoded.value), `byte ${i}`).toBe(false)
      else expect(decoded.error.code).toMatch(/^ERR_/)
    }
  })

  it('an ack with a changed verdict does not verify', () => {
    const a = ack(bob, reservation().id)
    expect(verifyAckSignature({ ...a, ack: { ...a.ack, ok: false } })).toBe(false)
    expect(verifyAckSignature({ ...a, ack: { ...a.ack, acker: carol.publicKey } })).toBe(false)
  })
})

describe('events: content address', () => {
  it('the id changes when the signature bytes change', () => {
    const res = reservation()
    // the signature is the last 64 bytes of the encoding
    const tampered = flipBit(res.bytes, res.bytes.byteLength - 1)
    const decoded = decodeEvent(tampered)
    expect(decoded.ok).toBe(true)
    if (!decoded.ok) return
    expect(decoded.value.idHex).not.toBe(res.idHex)
    expect(verifyEventSignature(decoded.value)).toBe(false)
    // the body is unchanged: same claims, different identity
    expect(decoded.value.event).toEqual(res.event)
  })

  it('the same body signed by another key has another id', () => {
    const body = reservation().event
    const other = signEvent(bob, body)
    expect(other.idHex).not.toBe(reservation().idHex)
  })

  it('a commit references its reservation by id and the commit id differs', () => {
    const res = reservation()
    const c = commit(res)
    expect(c.idHex).not.toBe(res.idHex)
    expect(c.event.reservation.idHex).toBe(res.idHex)
  })
})

describe('events: programmer errors', () => {
  it('signEvent throws on fields that cannot be encoded', () => {
    expect(() => reservation(alice, { currency: 'eur' })).toThrow(TypeError)
    expect(() => reservation(alice, { amountMinor: -1 })).toThrow(TypeError)
    expect(() => reservation(alice, { nullifier: new Uint8Array(31) })).toThrow(TypeError)
    expect(() => reservation(alice, { venue: 'bad venue' })).toThrow(TypeError)
  })

  it('a commit with more than MAX_ACKS acks cannot be signed', () => {
    const res = reservation()
    const a = ack(bob, res.id)
    expect(() =>
      commit(
        res,
        'quorum',
        Array.from({ length: 65 }, () => a),
      ),
    ).toThrow(TypeError)
  })
})
