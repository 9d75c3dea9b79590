/** Wire format version: the first byte of every encoded event, ack, certificate and proof. */
export const PROTOCOL_VERSION = 1

/** Hard upper bound for one encoded event on the wire (a Commit carries its quorum certificate). */
export const MAX_EVENT_BYTES = 16 * 1024
/** Hard upper bound for an encoded Ack or enrollment certificate. */
export const MAX_ACK_BYTES = 512
export const MAX_CERT_BYTES = 512
/** At most this many acks in one quorum certificate (bounds Commit size). */
export const MAX_ACKS = 64
export const MAX_VENUE_ID_LENGTH = 64
export const MAX_REASON_LENGTH = 64

export const ED25519_PUBLIC_KEY_BYTES = 32
export const ED25519_SIGNATURE_BYTES = 64
export const NULLIFIER_BYTES = 32
export const CARD_KEY_BYTES = 16
export const EVENT_ID_BYTES = 32
/** Fixed size of an approval/decline proof (see proof.ts for the layout). */
export const PROOF_BYTES = 87

/** Domain-separation tags: a signature or hash made for one purpose is never valid for another. */
export const DOMAIN = {
  event: 'nullmesh/event/v1',
  ack: 'nullmesh/ack/v1',
  certificate: 'nullmesh/cert/v1',
  proof: 'nullmesh/proof/v1',
  policy: 'nullmesh/policy/v1',
  denylist: 'nullmesh/denylist/v1',
  nullifier: 'nullmesh/nullifier/v1',
  cardKey: 'nullmesh/card-key/v1',
  group: 'nullmesh/group/v1',
} as const
