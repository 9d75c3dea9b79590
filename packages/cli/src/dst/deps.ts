export type { OfflineDecision as OfflineDecisionLike } from '@nullmesh/mesh/core'
export {
  type Commit,
  CustodianGroups,
  decodeAck,
  issueCertificate,
  type KeyPair,
  keyPairFromSeed,
  type Reservation,
  type SignatureScheme,
  type SignedAck,
  type SignedEvent,
  setDecodeMemo,
  setSignatureScheme,
  setVerifyMemo,
  sha256,
  signatureChecks,
  toHex,
} from '@nullmesh/protocol'
