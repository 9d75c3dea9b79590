import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import type { VenueBundle } from '@nullmesh/policy'
import {
  decodeCertificate,
  RevocationSet,
  type SignedCertificate,
  type SignedRevocation,
  toHex,
  verifyCertificate,
} from '@nullmesh/protocol'

export interface Member {
  id: string
  publicKeyHex: string
  peerId: string
  certificate: SignedCertificate
}

/**
 * Who may take part: the terminals of the venue roster whose enrollment certificates verify
 * against the operator key. Validity windows are checked at use time, so an expiring certificate
 * stops counting without a restart.
 */
export class Membership {
  readonly byKey = new Map<string, Member>()
  readonly byPeer = new Map<string, Member>()
  readonly rejected: { id: string; reason: string }[] = []
  /** operator revocations (issue 17, item 2), verified by the caller */
  readonly revocations = new RevocationSet()

  constructor(bundle: VenueBundle) {
    for (const entry of bundle.roster) {
      const decoded = decodeCertificate(entry.certificate)
      const verified = decoded.ok
        ? verifyCertificate(decoded.value, {
            operatorPublicKey: bundle.operatorPublicKey,
            venue: bundle.venueId,
            now: decoded.value.certificate.notBefore, // validity window is checked per use
            subject: entry.publicKey,
          })
        : decoded
      if (!verified.ok) {
        this.rejected.push({ id: entry.id, reason: verified.error.message })
        continue
      }
      const peerId = peerIdFromPublicKey(publicKeyFromRaw(entry.publicKey)).toString()
      const member = {
        id: entry.id,
        publicKeyHex: toHex(entry.publicKey),
        peerId,
        certificate: verified.value,
      }
      this.byKey.set(member.publicKeyHex, member)
      this.byPeer.set(peerId, member)
    }
  }

  get size(): number {
    return this.byKey.size
  }

  /** enrolled, and the certificate is valid at `now` */
  isEnrolled(publicKeyHex: string, now: number): boolean {
    const m = this.byKey.get(publicKeyHex)
    if (m === undefined) return false
    const c = m.certificate.certificate
    return now >= c.notBefore && now <= c.notAfter
  }

  /** did the operator revoke this key for what it signs at `at`? */
  isRevoked(publicKeyHex: string, at: number): boolean {
    return this.revocations.isRevoked(publicKeyHex, at)
  }

  /** Add verified revocations; the keys whose revocation is new or earlier. */
  revoke(docs: SignedRevocation[]): string[] {
    return docs.filter((d) => this.revocations.add(d)).map((d) => d.payload.terminal)
  }

  /** an enrolled peer that may hold a connection now: a revoked one may not */
  memberForPeer(peerId: string, now: number): Member | undefined {
    const m = this.byPeer.get(peerId)
    return m !== undefined && this.isEnrolled(m.publicKeyHex, now) && !this.isRevoked(m.publicKeyHex, now)
      ? m
      : undefined
  }
}
