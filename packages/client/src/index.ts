/**
 * @packageDocumentation
 *
 * TypeScript SDK for point-of-sale apps talking to a nullmesh terminal's local HTTP API. No
 * dependencies (global fetch). See the README for an example.
 */

export type { CallOptions, EventsOptions, PayOptions, TerminalClientInit } from './client.js'
export { TerminalClient } from './client.js'
export { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, TAP_AT_HEADER } from './constants.js'
export { TerminalApiError } from './errors.js'
export type { SseMessage } from './sse.js'
export { SseParser } from './sse.js'
export type {
  ApiErrorBody,
  BarrierInfo,
  ConnectivityEventData,
  DecisionMode,
  MeshModeEventData,
  OfflineBehavior,
  Payment,
  PaymentContext,
  PaymentEventData,
  PaymentMethod,
  PaymentRequest,
  PaymentResponse,
  PaymentStatus,
  Settlement,
  SettlementStatus,
  TerminalEvent,
  TerminalEventMap,
  TerminalEventType,
  TerminalStatus,
} from './types.js'
export { TERMINAL_EVENT_TYPES } from './types.js'
export type {
  CentralPaymentStatus,
  ConstructEventOptions,
  WebhookEvent,
  WebhookEventType,
  WebhookPayment,
  WebhookVerificationCode,
} from './webhooks.js'
export {
  constructEvent,
  DEFAULT_WEBHOOK_TOLERANCE_MS,
  WEBHOOK_EVENT_TYPES,
  WEBHOOK_SIGNATURE_HEADER,
  WebhookVerificationError,
} from './webhooks.js'
