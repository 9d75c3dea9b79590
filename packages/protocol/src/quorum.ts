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
  /**
   * The custodian group of the commit's card (see groups.ts): every ack must come from a member,
   * and `quorum` is counted within it. Every conflict the barrier catches is between reservations
   * of one card, so intersection within the card's group is what makes a certificate safe; acks
   * from outside it prove nothing about that card.
   */
  group: (cardKey: Uint8Array) => { has(memberHex: string): boolean; readonly members: readonly string[] }
  /** acks needed within the group, the origin's own ack included if it is a member: a majority */
  quorum: number
  /**
   * the ack's signature is valid (default verifyAckSignature): central passes the answer its
   * verification worker threads computed for exactly this ack, so the order of checks is unchanged
   */
  verifyAck?: (signed: SignedAck) => boolean
}

/**
 * Check a Commit's quorum certificate: the embedded reservation is the origin's own, and at least
 * `quorum` distinct enrolled members of the card's custodian group signed a positive ack for
 * exactly that reservation.
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
  const group = opts.group(reservation.cardKey)
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
    if (!group.has(acker))
      return fail(
        'ERR_WRONG_SUBJECT',
        `acker ${acker.slice(0, 16)}… is not in the card's custodian group of ${group.members.length}`,
      )
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
