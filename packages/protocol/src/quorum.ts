import { equalBytes, toHex } from './bytes.js'
import { fail, ok, type Result } from './errors.js'
import { type Commit, type SignedAck, verifyAckSignature } from './events.js'

/** `reason` of a positive ack given to a reservation headed for online authorisation. */
export const ONLINE_ACK_REASON = 'online'

export interface QuorumCheckOptions {
  /**
   * is this public key (hex) an enrolled terminal of the commit's venue? `signedAt` is the ack's
   * ts, for callers that judge certificates at signing time (central: a certificate that expired
   * after the ack was given does not undo it); gossip validation judges at its own clock.
   */
  isEnrolled: (publicKeyHex: string, signedAt: number) => boolean
  /** acks needed, the origin's own ack included */
  quorum: number
  /**
   * the ack's signature is valid (default verifyAckSignature): central passes the answer its
   * verification worker threads computed for exactly this ack, so the order of checks is unchanged
   */
  verifyAck?: (signed: SignedAck) => boolean
}

/**
 * Check a Commit's quorum certificate: the embedded reservation is the origin's own, and at least
 * `quorum` distinct enrolled terminals signed a positive ack for exactly that reservation.
 * Isolated and online commits carry no certificate and pass (their limits are checked elsewhere).
 * Never throws. Used by gossip validation and by central ingest alike.
 */
export function verifyQuorumCertificate(
  commit: Commit,
  opts: QuorumCheckOptions,
): Result<{ ackers: string[] }> {
  const reservation = commit.reservation.event
  if (!equalBytes(reservation.origin, commit.origin))
    return fail('ERR_BAD_FIELD', 'commit embeds another origin’s reservation')
  if (reservation.venue !== commit.venue)
    return fail('ERR_WRONG_VENUE', 'commit and reservation venues differ')
  if (commit.mode !== 'quorum') return ok({ ackers: [] })
  const ackers = new Set<string>()
  for (const signed of commit.acks) {
    const a = signed.ack
    if (!equalBytes(a.reservationId, commit.reservation.id))
      return fail('ERR_BAD_FIELD', 'ack for another reservation')
    if (a.venue !== commit.venue) return fail('ERR_WRONG_VENUE', 'ack from another venue')
    if (!a.ok) return fail('ERR_BAD_FIELD', 'quorum certificate contains a refusal')
    // an ack given under the online rules (reason ONLINE_ACK_REASON) holds the nullifier but never
    // checked the offline floor and caps: it cannot certify an offline approval
    if (a.reason !== '') return fail('ERR_BAD_FIELD', `quorum certificate contains a '${a.reason}' ack`)
    const acker = toHex(a.acker)
    if (!opts.isEnrolled(acker, a.ts))
      return fail('ERR_WRONG_SUBJECT', `acker ${acker.slice(0, 16)}… is not enrolled`)
    if (!(opts.verifyAck ?? verifyAckSignature)(signed))
      return fail('ERR_BAD_SIGNATURE', `ack signature of ${acker.slice(0, 16)}… invalid`)
    ackers.add(acker)
  }
  if (ackers.size < opts.quorum)
    return fail('ERR_BAD_FIELD', `quorum certificate has ${ackers.size} distinct acks, needs ${opts.quorum}`)
  return ok({ ackers: [...ackers] })
}
