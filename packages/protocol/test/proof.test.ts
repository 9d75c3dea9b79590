import {
  computeNullifier,
  createProof,
  DECLINE_CODES,
  decodeProof,
  generateKeyPair,
  PROOF_BYTES,
  PROOF_DECISIONS,
  type ProofClaims,
  verifyProof,
} from '@nullmesh/protocol'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { flipBit, HASHING_KEY, PAN } from './fixtures.js'

const key = generateKeyPair()
const other = generateKeyPair()
const nullifier = computeNullifier(HASHING_KEY, PAN, { credentialCounter: 1, idempotencyKey: 'x' })
const otherNullifier = computeNullifier(HASHING_KEY, PAN, { credentialCounter: 2, idempotencyKey: 'x' })

const base: ProofClaims = {
  nullifier,
  amountMinor: 1250,
  currency: 'EUR',
  decision: 'approved_offline',
  ts: 1_700_000_000_000,
  seq: 17,
  policyVersion: 3,
}

describe('proofs', () => {
  const cases = PROOF_DECISIONS.flatMap((decision) =>
    [undefined, 'floor_limit_exceeded', 'other'].map((declineCode) => ({ decision, declineCode })),
  )

  it.each(cases)(
    '$decision / $declineCode: fits in 90 bytes, verifies, binds key and nullifier',
    ({ decision, declineCode }) => {
      const claims = { ...base, decision, declineCode } as ProofClaims
      const proof = createProof(key, claims)
      expect(proof.byteLength).toBeLessThanOrEqual(90)
      expect(proof.byteLength).toBe(PROOF_BYTES)
      const r = verifyProof(proof, nullifier, key.publicKey)
      expect(r.ok).toBe(true)
      if (!r.ok) return
      const { nullifier: _n, ...rest } = claims
      expect(r.value).toMatchObject(rest)
      expect(r.value.declineCode).toBe(declineCode)
      const wrongKey = verifyProof(proof, nullifier, other.publicKey)
      expect(wrongKey.ok || wrongKey.error.code).toBe('ERR_BAD_SIGNATURE')
      const wrongNullifier = verifyProof(proof, otherNullifier, key.publicKey)
      expect(wrongNullifier.ok || wrongNullifier.error.code).toBe('ERR_BAD_SIGNATURE')
    },
  )

  it('round-trips every decline code', () => {
    for (const declineCode of DECLINE_CODES) {
      const proof = createProof(key, { ...base, decision: 'declined_offline', declineCode })
      const r = verifyProof(proof, nullifier, key.publicKey)
      expect(r.ok && r.value.declineCode).toBe(declineCode)
    }
  })

  it('round-trips random claims', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...PROOF_DECISIONS),
        fc.option(fc.constantFrom(...DECLINE_CODES), { nil: undefined }),
        fc.integer({ min: 0, max: 2 ** 48 - 1 }),
        fc.stringMatching(/^[A-Z]{3}$/),
        fc.integer({ min: 0, max: 2 ** 48 - 1 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.integer({ min: 0, max: 0xffff }),
        (decision, declineCode, amountMinor, currency, ts, seq, policyVersion) => {
          const claims: ProofClaims = {
            nullifier,
            decision,
            declineCode,
            amountMinor,
            currency,
            ts,
            seq,
            policyVersion,
          }
          const proof = createProof(key, claims)
          expect(proof.byteLength).toBeLessThanOrEqual(90)
          const d = decodeProof(proof)
          expect(d.ok).toBe(true)
          if (!d.ok) return
          expect(d.value).toMatchObject({
            decision,
            declineCode,
            amountMinor,
            currency,
            ts,
            seq,
            policyVersion,
          })
        },
      ),
      { numRuns: 200 },
    )
  })

  it('every single-bit change invalidates the proof', () => {
    const proof = createProof(key, base)
    for (let i = 0; i < proof.byteLength; i++) {
      expect(verifyProof(flipBit(proof, i), nullifier, key.publicKey).ok, `byte ${i}`).toBe(false)
    }
  })

  it('rejects invalid claims at creation', () => {
    expect(() => createProof(key, { ...base, currency: 'eu' })).toThrow(TypeError)
    expect(() => createProof(key, { ...base, amountMinor: -1 })).toThrow(TypeError)
    expect(() => createProof(key, { ...base, amountMinor: 2 ** 48 })).toThrow(TypeError)
    expect(() => createProof(key, { ...base, nullifier: new Uint8Array(31) })).toThrow(TypeError)
  })

  it('verifyProof never throws on a bad nullifier or key', () => {
    const proof = createProof(key, base)
    expect(verifyProof(proof, new Uint8Array(3), key.publicKey).ok).toBe(false)
    expect(verifyProof(proof, nullifier, new Uint8Array(3)).ok).toBe(false)
  })
})
