/**
 * @packageDocumentation
 *
 * The nullmesh terminal daemon: a venue bundle, the terminal's own key and a data directory
 * become a ledger, a mesh node, the decision engine (online with central when reachable, else
 * policy + nullifier + commit-before-accept barrier), a local HTTP API (Fastify, OpenAPI at
 * /openapi.json, SSE at /v1/events, Prometheus at /metrics) and the sync agent that settles
 * everything exactly once with central.
 *
 * @example
 * ```ts
 * import { createTerminal } from '@nullmesh/terminal'
 *
 * const terminal = createTerminal({ venueDir: './venue', id: 'T1', dataDir: './data/T1', centralUrl: 'http://127.0.0.1:7400' })
 * await terminal.start()
 * const answer = await terminal.pay({ idempotencyKey: 'order-1', cardToken: '4111111111111111', amountMinor: 1250, currency: 'EUR', method: 'contactless' })
 * await terminal.stop()
 * ```
 */

export type {
  CentralAuthorization,
  CentralEventResult,
  CentralLink,
  CentralPaymentStatus,
  CentralSyncResult,
  CentralVoid,
  HttpCentralLinkInit,
} from './central.js'
export { createHttpCentralLink } from './central.js'
export type { BackoffOptions, ConnectivityChange, ConnectivityOptions } from './connectivity.js'
export { backoffDelay, ConnectivityMonitor } from './connectivity.js'
export {
  API_TOKEN_ENV,
  API_TOKEN_FILE,
  CONNECTIVITY_DEFAULTS,
  DEFAULT_API_HOST,
  DEFAULT_API_PORT,
  DEFAULT_ONLINE_TIMEOUT_MS,
  LEDGER_DIR,
  MAX_TAP_AGE_SHARE,
  SYNC_DEFAULTS,
  TAP_AT_HEADER,
} from './constants.js'
export type { TerminalErrorCode } from './errors.js'
export { TERMINAL_ERROR_STATUS, TerminalError } from './errors.js'
export type { CentralRefillInit } from './refill.js'
export { centralRefill } from './refill.js'
export type { PaymentBody, PaymentRequestBody, PaymentResponseBody, StatusBody } from './schemas.js'
export {
  BarrierSchema,
  DECISION_MODES,
  ErrorSchema,
  OFFLINE_BEHAVIORS,
  PAYMENT_STATUSES,
  PaymentContextSchema,
  PaymentRequestSchema,
  PaymentResponseSchema,
  PaymentSchema,
  parsePaymentRequest,
  SETTLEMENT_STATUSES,
  SettlementSchema,
  StatusSchema,
} from './schemas.js'
export type { Denylist, SyncOptions, SyncRoundResult } from './sync.js'
export { tapTime } from './tap-time.js'
export type {
  AbortOptions,
  DecisionMode,
  SettlementStatus,
  Terminal,
  TerminalEvent,
  TerminalEventType,
  TerminalInit,
} from './terminal.js'
export { createTerminal } from './terminal.js'
