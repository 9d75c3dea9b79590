export type { OfflineDecision as OfflineDecisionLike } from '@nullmesh/mesh/core'
export {
  CustodianGroups,
  decodeAck,
  issueCertificate,
  type KeyPair,
  keyPairFromSeed,
  type Reservation,
  type SignedAck,
  type SignedEvent,
  setDecodeMemo,
  setSimulatedSignatures,
  setVerifyMemo,
  signatureChecks,
  toHex,
} from '@nullmesh/protocol'
