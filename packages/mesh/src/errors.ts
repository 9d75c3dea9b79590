/**
 * Stable validation codes. Each carries the gossipsub outcome it maps to: REJECT (the sender
 * relayed something invalid and is penalised by peer scoring) or IGNORE (harmless: duplicate,
 * not for us now).
 */
export const VALIDATION_CODES = {
  ERR_TOO_LARGE: 'REJECT',
  ERR_DECODE: 'REJECT',
  ERR_WRONG_VENUE: 'REJECT',
  ERR_NOT_ENROLLED: 'REJECT',
  ERR_BAD_SIGNATURE: 'REJECT',
  ERR_FUTURE_TIMESTAMP: 'REJECT',
  ERR_BAD_QUORUM_CERTIFICATE: 'REJECT',
  ERR_FOREIGN_RELEASE: 'REJECT',
  ERR_EQUIVOCATION: 'REJECT',
  ERR_UNEXPECTED_TYPE: 'REJECT',
  /** an offline Commit outside the policy's stateless limits (issue 17): its origin broke the policy */
  ERR_POLICY_VIOLATION: 'REJECT',
  /** signed by a terminal at or after the operator revoked it (issue 17, item 2) */
  ERR_REVOKED: 'REJECT',
  /** an escrow transfer to itself, to a non-member, in a currency without a cap, or of no amount */
  ERR_BAD_TRANSFER: 'REJECT',
  /** a catch-up request that is not [marks, held ranges?] as docs/protocol.md describes it */
  ERR_BAD_CATCHUP_REQUEST: 'REJECT',
  ERR_ALREADY_KNOWN: 'IGNORE',
  ERR_UNKNOWN_RESERVATION: 'IGNORE',
  /** an escrow transfer above the origin's share as known here (a credit may still be on its way) */
  ERR_UNKNOWN_SHARE: 'IGNORE',
} as const

export type ValidationCode = keyof typeof VALIDATION_CODES
export type ValidationAction = (typeof VALIDATION_CODES)[ValidationCode]

export class EventValidationError extends Error {
  readonly code: ValidationCode
  readonly action: ValidationAction
  constructor(code: ValidationCode, message: string) {
    super(message)
    this.name = 'EventValidationError'
    this.code = code
    this.action = VALIDATION_CODES[code]
  }
}

export type MeshErrorCode =
  | 'ERR_NOT_STARTED'
  | 'ERR_ABORTED'
  | 'ERR_NOT_ENROLLED'
  | 'ERR_BAD_CONFIG'
  | 'ERR_REFUSED'
  | 'ERR_UNRESOLVED'

export class MeshError extends Error {
  readonly code: MeshErrorCode
  constructor(code: MeshErrorCode, message: string) {
    super(message)
    this.name = 'MeshError'
    this.code = code
  }
}
