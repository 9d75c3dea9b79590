import type { PolicyIssue } from './types.js'

export type PolicyErrorCode =
  | 'ERR_INVALID_POLICY'
  | 'ERR_BAD_SIGNATURE'
  | 'ERR_WRONG_ISSUER'
  | 'ERR_MALFORMED'

/** A policy that does not validate, or a signed policy that does not verify. */
export class PolicyError extends Error {
  readonly code: PolicyErrorCode
  readonly issues: PolicyIssue[]
  constructor(code: PolicyErrorCode, message: string, issues: PolicyIssue[] = []) {
    super(message)
    this.name = 'PolicyError'
    this.code = code
    this.issues = issues
  }
}

/** A venue bundle directory that cannot be written or read back; `file` names the culprit. */
export class VenueBundleError extends Error {
  readonly code = 'ERR_VENUE_BUNDLE'
  readonly file: string
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options)
    this.name = 'VenueBundleError'
    this.file = file
  }
}
