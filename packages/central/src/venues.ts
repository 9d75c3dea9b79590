import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { effectiveGroupSize, groupQuorum, type VenueBundle, type VenuePolicy } from '@nullmesh/policy'
import {
  CustodianGroups,
  decodeCertificate,
  type KeyPair,
  keyPairFromFile,
  RevocationSet,
  type SignedRevocation,
  verifyCertificate,
} from '@nullmesh/protocol'

export interface VenueContext {
  id: string
  bundle: VenueBundle
  policy: VenuePolicy
  /** acks a quorum Commit needs within its card's custodian group, the origin's own included if a member */
  quorum: number
  /** the custodian group of each card, over the bundle's roster (the one every terminal uses) */
  groups: CustodianGroups
}

interface Enrollment {
  notBefore: number
  notAfter: number
}

/** Was the enrollment in force at `signedAt`? (A revocation is judged apart: isRevoked.) */
function covers(e: Enrollment, signedAt: number): boolean {
  return signedAt >= e.notBefore && signedAt <= e.notAfter
}

/** The venues central serves, with their rosters' certificates checked once and cached. */
export class VenueRegistry {
  private readonly venues = new Map<string, VenueContext>()
  /** venue → terminal public key hex → validity window of its (verified) certificate, null if invalid */
  private readonly enrollments = new Map<string, Map<string, Enrollment | null>>()
  private readonly operatorKeys = new Map<string, Promise<KeyPair>>()
  /** venue → the operator revocations this process knows (issue 17; revocations.ts keeps it fresh) */
  private readonly revocations = new Map<string, RevocationSet>()

  constructor(bundles: VenueBundle[]) {
    for (const bundle of bundles) {
      if (this.venues.has(bundle.venueId)) throw new TypeError(`venue ${bundle.venueId} given twice`)
      this.venues.set(bundle.venueId, {
        id: bundle.venueId,
        bundle,
        policy: bundle.policy,
        quorum: groupQuorum(bundle.policy, bundle.roster.length),
        groups: new CustodianGroups(
          bundle.roster.map((r) => r.publicKeyHex),
          effectiveGroupSize(bundle.policy, bundle.roster.length),
        ),
      })
    }
  }

  get(venueId: string): VenueContext | undefined {
    return this.venues.get(venueId)
  }

  ids(): string[] {
    return [...this.venues.keys()]
  }

  /**
   * Did this key hold a valid enrollment certificate of the venue, issued by its operator, at
   * `signedAt`: the time the event or ack was signed, not the time central sees it (a terminal may
   * sync long after its certificate expired; what it signed while enrolled stands). Callers bound
   * `signedAt` against their own clock first (a signature dated in the future is refused).
   */
  isEnrolled(venue: VenueContext, publicKeyHex: string, signedAt: number): boolean {
    let cache = this.enrollments.get(venue.id)
    if (cache === undefined) {
      cache = new Map()
      this.enrollments.set(venue.id, cache)
    }
    let enrollment = cache.get(publicKeyHex)
    if (enrollment === undefined) {
      enrollment = this.checkCertificate(venue, publicKeyHex)
      cache.set(publicKeyHex, enrollment)
    }
    return enrollment !== null && covers(enrollment, signedAt)
  }

  /** Add verified revocations of the venue; the keys whose revocation is new or earlier. */
  revoke(venueId: string, docs: SignedRevocation[]): string[] {
    let set = this.revocations.get(venueId)
    if (set === undefined) {
      set = new RevocationSet()
      this.revocations.set(venueId, set)
    }
    return docs.filter((d) => set.add(d)).map((d) => d.payload.terminal)
  }

  /** Did the operator revoke this key for what it signed at `signedAt`? */
  isRevoked(venue: VenueContext, publicKeyHex: string, signedAt: number): boolean {
    return this.revocations.get(venue.id)?.isRevoked(publicKeyHex, signedAt) ?? false
  }

  /** Signature, issuer, venue, subject and role do not change with time: check them once, keep the window. */
  private checkCertificate(venue: VenueContext, publicKeyHex: string): Enrollment | null {
    const entry = venue.bundle.roster.find((r) => r.publicKeyHex === publicKeyHex)
    if (entry === undefined) return null
    const decoded = decodeCertificate(entry.certificate)
    if (!decoded.ok) return null
    const window = {
      notBefore: decoded.value.certificate.notBefore,
      notAfter: decoded.value.certificate.notAfter,
    }
    const r = verifyCertificate(decoded.value, {
      operatorPublicKey: venue.bundle.operatorPublicKey,
      venue: venue.id,
      subject: entry.publicKey,
      role: 'terminal',
      now: window.notBefore,
    })
    return r.ok ? window : null
  }

  /** The venue operator's signing key, from `<bundle.dir>/operator.key.json`. */
  operatorKey(venue: VenueContext): Promise<KeyPair> {
    let key = this.operatorKeys.get(venue.id)
    if (key === undefined) {
      key = readFile(join(venue.bundle.dir, 'operator.key.json'), 'utf8').then((text) =>
        keyPairFromFile(JSON.parse(text)),
      )
      key.catch(() => this.operatorKeys.delete(venue.id))
      this.operatorKeys.set(venue.id, key)
    }
    return key
  }
}
