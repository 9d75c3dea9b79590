import { effectiveGroupSize } from '@nullmesh/policy'
import { EPOCH, simPolicy, VENUE } from './config.js'
import { CustodianGroups, issueCertificate, type KeyPair, keyPairFromSeed, toHex } from './deps.js'
import { simSignatures } from './signatures.js'

export interface Venue {
  operator: KeyPair
  keys: KeyPair[]
  hex: string[]
  hexSorted: string[]
  index: Map<string, number>
  certs: Map<string, { notBefore: number; notAfter: number }>
  /** the roster's custodian groups, shared by every core (each would compute the same) */
  groups: CustodianGroups
}

export const venues = new Map<number, Venue>()

/** keys and certificates depend on the terminal count only (cached across seeds) */
export function venueOf(n: number): Venue {
  const cached = venues.get(n)
  if (cached !== undefined) return cached
  const seedBytes = (tag: number, i: number) => {
    const b = new Uint8Array(32)
    b[0] = tag
    b[1] = i & 0xff
    b[2] = (i >> 8) & 0xff
    return b
  }
  const operator = keyPairFromSeed(seedBytes(1, 0))
  simSignatures.register(operator)
  const keys: KeyPair[] = []
  const hex: string[] = []
  const index = new Map<string, number>()
  const certs = new Map<string, { notBefore: number; notAfter: number }>()
  for (let i = 0; i < n; i++) {
    const k = keyPairFromSeed(seedBytes(2, i))
    simSignatures.register(k)
    keys.push(k)
    const h = toHex(k.publicKey)
    hex.push(h)
    index.set(h, i)
    const c = issueCertificate(operator, {
      venue: VENUE,
      subject: k.publicKey,
      role: 'terminal',
      notBefore: EPOCH - 86_400_000,
      notAfter: EPOCH + 10 * 365 * 86_400_000,
    })
    certs.set(h, { notBefore: c.certificate.notBefore, notAfter: c.certificate.notAfter })
  }
  const groups = new CustodianGroups(hex, effectiveGroupSize(simPolicy(n), n))
  const v = { operator, keys, hex, hexSorted: [...hex].sort(), index, certs, groups }
  venues.set(n, v)
  return v
}
