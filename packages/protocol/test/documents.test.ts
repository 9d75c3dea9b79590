import { DOMAIN, generateKeyPair, signDocument, verifyDocument } from '@nullmesh/protocol'
import { describe, expect, it } from 'vitest'

const key = generateKeyPair()
const payload = {
  venueId: 'venue-1',
  version: 3,
  limits: { EUR: { floor: 5000 } },
  methods: ['chip', 'nfc'],
  on: true,
}

function code(r: ReturnType<typeof verifyDocument>): string | undefined {
  return r.ok ? undefined : r.error.code
}

describe('signed documents', () => {
  const doc = signDocument(DOMAIN.policy, key, payload)

  it('verifies, also after a JSON round trip with other key order and whitespace', () => {
    expect(verifyDocument(DOMAIN.policy, doc, key.publicKey).ok).toBe(true)
    const text = JSON.stringify(doc, null, 2)
    expect(verifyDocument(DOMAIN.policy, JSON.parse(text), key.publicKey).ok).toBe(true)
    const reordered = {
      signature: doc.signature,
      payload: {
        on: true,
        methods: ['chip', 'nfc'],
        limits: { EUR: { floor: 5000 } },
        version: 3,
        venueId: 'venue-1',
      },
      signer: doc.signer,
    }
    expect(verifyDocument(DOMAIN.policy, reordered, key.publicKey).ok).toBe(true)
  })

  it('fails when the payload is tampered', () => {
    const tampered = [
      { ...doc, payload: { ...payload, version: 4 } },
      { ...doc, payload: { ...payload, limits: { EUR: { floor: 500000 } } } },
      { ...doc, payload: { ...payload, methods: ['chip', 'nfc', 'swipe'] } },
      { ...doc, payload: { ...payload, extra: 1 } },
    ]
    for (const t of tampered)
      expect(code(verifyDocument(DOMAIN.policy, t, key.publicKey))).toBe('ERR_BAD_SIGNATURE')
  })

  it('fails for another domain (a policy signature is not a deny-list signature)', () => {
    expect(code(verifyDocument(DOMAIN.denylist, doc, key.publicKey))).toBe('ERR_BAD_SIGNATURE')
  })

  it('fails for another signer', () => {
    const other = generateKeyPair()
    expect(code(verifyDocument(DOMAIN.policy, doc, other.publicKey))).toBe('ERR_WRONG_ISSUER')
    // re-signed by another key but claiming the original signer
    const forged = { ...signDocument(DOMAIN.policy, other, payload), signer: doc.signer }
    expect(code(verifyDocument(DOMAIN.policy, forged, key.publicKey))).toBe('ERR_BAD_SIGNATURE')
  })

  it('fails on a tampered or malformed signature without throwing', () => {
    const sig = doc.signature
    const flipped = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1)
    expect(code(verifyDocument(DOMAIN.policy, { ...doc, signature: flipped }, key.publicKey))).toBe(
      'ERR_BAD_SIGNATURE',
    )
    expect(code(verifyDocument(DOMAIN.policy, { ...doc, signature: '' }, key.publicKey))).toBe(
      'ERR_BAD_SIGNATURE',
    )
    expect(code(verifyDocument(DOMAIN.policy, { ...doc, signature: '!!!' }, key.publicKey))).toBe(
      'ERR_BAD_SIGNATURE',
    )
  })

  it('rejects things that are not signed documents', () => {
    for (const bad of [
      null,
      undefined,
      42,
      'doc',
      [],
      { payload },
      { payload, signer: doc.signer },
      { signer: doc.signer, signature: doc.signature },
    ]) {
      expect(code(verifyDocument(DOMAIN.policy, bad, key.publicKey))).toBe('ERR_MALFORMED')
    }
  })

  it('a payload that cannot be encoded fails without throwing', () => {
    const weird = { ...doc, payload: { f: () => 1 } }
    expect(verifyDocument(DOMAIN.policy, weird, key.publicKey).ok).toBe(false)
  })
})
