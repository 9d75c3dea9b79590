import {
  cardBin,
  computeCardKey,
  computeNullifier,
  generateKeyPair,
  signEvent,
  toBase64url,
  toHex,
} from '@nullmesh/protocol'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ack, alice, commit, HASHING_KEY, PAN, release, reservation, VENUE } from './fixtures.js'

const use = (credentialCounter: number | undefined, idempotencyKey = 'idem') => ({
  credentialCounter,
  idempotencyKey,
})

describe('nullifier', () => {
  it('same token and ATC give the same nullifier, whatever the idempotency key', () => {
    const a = computeNullifier(HASHING_KEY, PAN, use(7, 'payment-a'))
    const b = computeNullifier(HASHING_KEY, PAN, use(7, 'payment-b'))
    expect(a.byteLength).toBe(32)
    expect(toHex(a)).toBe(toHex(b))
  })

  it('a different ATC gives a different nullifier', () => {
    fc.assert(
      fc.property(fc.nat(0xffff), fc.nat(0xffff), (x, y) => {
        fc.pre(x !== y)
        const a = computeNullifier(HASHING_KEY, PAN, use(x))
        const b = computeNullifier(HASHING_KEY, PAN, use(y))
        expect(toHex(a)).not.toBe(toHex(b))
      }),
      { numRuns: 200 },
    )
  })

  it('without an ATC the idempotency key decides', () => {
    const a = computeNullifier(HASHING_KEY, PAN, use(undefined, 'k1'))
    const a2 = computeNullifier(HASHING_KEY, PAN, use(undefined, 'k1'))
    const b = computeNullifier(HASHING_KEY, PAN, use(undefined, 'k2'))
    expect(toHex(a)).toBe(toHex(a2))
    expect(toHex(a)).not.toBe(toHex(b))
  })

  it('an ATC use and an idempotency-key use never collide', () => {
    // "atc:5" as an idempotency key must not equal ATC 5
    const byAtc = computeNullifier(HASHING_KEY, PAN, use(5))
    const byKey = computeNullifier(HASHING_KEY, PAN, use(undefined, '5'))
    expect(toHex(byAtc)).not.toBe(toHex(byKey))
  })

  it('different cards with the same ATC differ', () => {
    const a = computeNullifier(HASHING_KEY, PAN, use(1))
    const b = computeNullifier(HASHING_KEY, '4111111111111112', use(1))
    expect(toHex(a)).not.toBe(toHex(b))
  })

  it('depends on the venue hashing key', () => {
    const other = new Uint8Array(32).fill(8)
    expect(toHex(computeNullifier(HASHING_KEY, PAN, use(1)))).not.toBe(
      toHex(computeNullifier(other, PAN, use(1))),
    )
    expect(toHex(computeCardKey(HASHING_KEY, PAN))).not.toBe(toHex(computeCardKey(other, PAN)))
  })

  it('ignores spaces and dashes in the token', () => {
    expect(toHex(computeNullifier(HASHING_KEY, '4111 1111-1111 1111', use(3)))).toBe(
      toHex(computeNullifier(HASHING_KEY, PAN, use(3))),
    )
  })
})

describe('card key', () => {
  it('is 16 bytes and independent of the ATC and idempotency key', () => {
    const k = computeCardKey(HASHING_KEY, PAN)
    expect(k.byteLength).toBe(16)
    expect(toHex(computeCardKey(HASHING_KEY, '4111-1111-1111-1111'))).toBe(toHex(k))
    // a nullifier is not a card key (domain separation), whatever the use
    for (const u of [use(1), use(2), use(undefined, 'x')]) {
      expect(toHex(computeNullifier(HASHING_KEY, PAN, u)).startsWith(toHex(k))).toBe(false)
    }
  })

  it('differs between cards', () => {
    expect(toHex(computeCardKey(HASHING_KEY, PAN))).not.toBe(
      toHex(computeCardKey(HASHING_KEY, '5500000000000004')),
    )
  })
})

describe('cardBin', () => {
  it('returns the BIN of PAN-shaped tokens only', () => {
    expect(cardBin(PAN)).toBe('41111111')
    expect(cardBin(PAN, 6)).toBe('411111')
    expect(cardBin('4111 1111 1111 1111')).toBe('41111111')
    expect(cardBin('tok_abc')).toBeUndefined()
    expect(cardBin('12345')).toBeUndefined()
  })
})

describe('no card number in encoded events', () => {
  const pans = [PAN, '5500000000000004', '340000000000009', '6011000000000004']

  function leaks(bytes: Uint8Array, pan: string): string[] {
    const found: string[] = []
    const hex = toHex(bytes)
    const b64 = toBase64url(bytes)
    const latin = Buffer.from(bytes).toString('latin1')
    // the digits as text, as packed BCD (which reads as the digits in hex), and the last 4+ digit runs
    for (const needle of [pan, pan.slice(0, 8), pan.slice(-8)]) {
      if (latin.includes(needle)) found.push(`ascii ${needle}`)
      if (hex.includes(needle)) found.push(`bcd/hex ${needle}`)
      if (b64.includes(needle)) found.push(`base64 ${needle}`)
    }
    const asNumber = BigInt(pan).toString(16)
    if (hex.includes(asNumber.length % 2 ? `0${asNumber}` : asNumber)) found.push('binary integer')
    return found
  }

  it.each(pans)('%s does not appear in any event or ack', (pan) => {
    const key = generateKeyPair()
    const res = reservation(key, {
      nullifier: computeNullifier(HASHING_KEY, pan, use(9)),
      cardKey: computeCardKey(HASHING_KEY, pan),
    })
    const c = commit(res, 'quorum', [ack(alice, res.id)], key)
    const rel = release(res.id, key)
    const isolated = signEvent(key, { ...c.event, mode: 'isolated', acks: [] })
    for (const e of [res, c, rel, isolated]) {
      expect(leaks(e.bytes, pan)).toEqual([])
      expect(leaks(e.id, pan)).toEqual([])
    }
    expect(VENUE).not.toContain(pan)
  })
})
