import {
  decodeCertificate,
  type EnrollmentCertificate,
  generateKeyPair,
  issueCertificate,
  verifyCertificate,
} from '@nullmesh/protocol'
import { describe, expect, it } from 'vitest'
import { flipBit, VENUE } from './fixtures.js'

const operator = generateKeyPair()
const terminal = generateKeyPair()
const NOW = 1_700_000_000_000
const fields: Omit<EnrollmentCertificate, 'issuer'> = {
  venue: VENUE,
  subject: terminal.publicKey,
  role: 'terminal',
  notBefore: NOW - 1000,
  notAfter: NOW + 1000,
}
const opts = {
  operatorPublicKey: operator.publicKey,
  venue: VENUE,
  now: NOW,
  subject: terminal.publicKey,
  role: 'terminal' as const,
}

describe('enrollment certificates', () => {
  const cert = issueCertificate(operator, fields)

  it('verifies from bytes and from the decoded form', () => {
    const r = verifyCertificate(cert.bytes, opts)
    expect(r.ok).toBe(true)
    if (!r.ok) return
    expect(r.value.certificate).toEqual({ ...fields, issuer: operator.publicKey })
    expect(verifyCertificate(cert, opts).ok).toBe(true)
    const decoded = decodeCertificate(cert.bytes)
    expect(decoded.ok && decoded.value.certificate.role).toBe('terminal')
    expect(cert.bytes.byteLength).toBeLessThanOrEqual(512)
  })

  it('accepts the validity bounds inclusively', () => {
    expect(verifyCertificate(cert.bytes, { ...opts, now: fields.notBefore }).ok).toBe(true)
    expect(verifyCertificate(cert.bytes, { ...opts, now: fields.notAfter }).ok).toBe(true)
  })

  function code(r: ReturnType<typeof verifyCertificate>): string | undefined {
    return r.ok ? undefined : r.error.code
  }

  it('rejects another operator', () => {
    expect(
      code(verifyCertificate(cert.bytes, { ...opts, operatorPublicKey: generateKeyPair().publicKey })),
    ).toBe('ERR_WRONG_ISSUER')
  })

  it('rejects a certificate self-issued by another key claiming the operator as issuer', () => {
    const rogue = generateKeyPair()
    const forged = issueCertificate(rogue, fields)
    const claimed = { ...forged, certificate: { ...forged.certificate, issuer: operator.publicKey } }
    expect(code(verifyCertificate(claimed, opts))).toBe('ERR_BAD_SIGNATURE')
  })

  it('rejects the wrong venue', () => {
    expect(code(verifyCertificate(cert.bytes, { ...opts, venue: 'other-venue' }))).toBe('ERR_WRONG_VENUE')
  })

  it('rejects an expired certificate', () => {
    expect(code(verifyCertificate(cert.bytes, { ...opts, now: fields.notAfter + 1 }))).toBe('ERR_EXPIRED')
  })

  it('rejects a not-yet-valid certificate', () => {
    expect(code(verifyCertificate(cert.bytes, { ...opts, now: fields.notBefore - 1 }))).toBe(
      'ERR_NOT_YET_VALID',
    )
  })

  it('rejects the wrong subject and the wrong role', () => {
    expect(code(verifyCertificate(cert.bytes, { ...opts, subject: generateKeyPair().publicKey }))).toBe(
      'ERR_WRONG_SUBJECT',
    )
    expect(code(verifyCertificate(cert.bytes, { ...opts, role: 'central' }))).toBe('ERR_WRONG_SUBJECT')
  })

  it('rejects a certificate whose fields were changed after signing', () => {
    const other = generateKeyPair().publicKey
    const changes: Array<Partial<EnrollmentCertificate>> = [
      { subject: other },
      { venue: 'other-venue' },
      { notAfter: NOW + 10_000_000 },
      { notBefore: 0 },
      { role: 'central' },
    ]
    for (const change of changes) {
      const tampered = { ...cert, certificate: { ...cert.certificate, ...change } }
      expect(
        code(
          verifyCertificate(tampered, {
            ...opts,
            subject: undefined,
            role: undefined,
            venue: tampered.certificate.venue,
          }),
        ),
      ).toBe('ERR_BAD_SIGNATURE')
    }
  })

  it('rejects every single-bit change of the encoded certificate', () => {
    for (let i = 0; i < cert.bytes.byteLength; i++) {
      const r = verifyCertificate(flipBit(cert.bytes, i), { ...opts, subject: undefined })
      expect(r.ok, `byte ${i}`).toBe(false)
    }
  })

  it('rejects garbage without throwing', () => {
    for (const bytes of [
      new Uint8Array(0),
      new Uint8Array(10),
      new Uint8Array(600),
      cert.bytes.subarray(0, 50),
    ]) {
      expect(verifyCertificate(bytes, opts).ok).toBe(false)
    }
  })
})
