export type { SignatureChecks, VerifyPoolInit } from '@nullmesh/protocol'
export { VerifyPool } from '@nullmesh/protocol'
export {
  DEFAULT_EVENT_RETENTION_MS,
  DEFAULT_WEBHOOK_SCHEDULE_MS,
  DEFAULT_WEBHOOK_TOLERANCE_MS,
  LEDGER_EXPORT_FORMAT,
  LEDGER_EXPORT_VERSION,
  MAX_ORIGIN_EVENTS_PAGE,
  MAX_STATUS_IDS,
  MAX_SYNC_EVENTS,
  OFFLINE_SYNC_FAILURE,
  WEBHOOK_SIGNATURE_HEADER,
} from './constants.js'
export type { EventResult, IngestResult, OnlineAuthorization, VoidResult } from './engine.js'
export type { CentralErrorCode, RejectCode } from './errors.js'
export { CentralError } from './errors.js'
export type {
  AuthorizeRequest,
  AuthorizeResult,
  IssuerAdapter,
  SimulatedCharge,
  SimulatedIssuer,
  SimulatedIssuerInit,
} from './issuer.js'
export { createSimulatedIssuer } from './issuer.js'
export type { LedgerExport, LedgerExportHeader, LedgerExportMeta } from './ledger-export.js'
export { readLedgerExport, writeLedgerExport } from './ledger-export.js'
export { summarize } from './report.js'
export type {
  CentralService,
  CentralServiceInit,
  DenylistPayload,
  DenylistUpdate,
  ImportResult,
  VenueSummary,
} from './service.js'
export { createCentralService } from './service.js'
export type { SettleSummary } from './settlement.js'
export type { PgliteInit, PostgresInit, Sql, SqlDb, SqlResult } from './sql/db.js'
export { openPglite, openPostgres } from './sql/db.js'
export { MIGRATIONS, migrate, SCHEMA_VERSION } from './sql/schema.js'
export type { SqlStoreInit } from './sql-store.js'
export { createSqlStore, REPORT_SQL } from './sql-store.js'
export type {
  CentralStore,
  EventLogFilter,
  PaymentAggregate,
  PaymentFilter,
  RedeliverRequest,
  StoreOp,
} from './store.js'
export { StoreConflict } from './store.js'
export type {
  AbortOptions,
  DenylistState,
  EventLogEntry,
  OutboxEntry,
  PaymentRecord,
  PaymentStatus,
  PaymentStatusView,
  PaymentView,
  PendingRelease,
  StoredEvent,
  SyncDeclineCode,
  WebhookBacklog,
  WebhookEndpoint,
  WebhookEvent,
  WebhookEventType,
} from './types.js'
export { PAYMENT_STATUSES, WEBHOOK_EVENT_TYPES } from './types.js'
export type {
  EventList,
  EventListQuery,
  TestDelivery,
  WebhookCreate,
  WebhookPatch,
  WebhookRegistration,
  WebhookView,
} from './webhook-admin.js'
export type { VerifyWebhookOptions, WebhookRetryOptions } from './webhooks.js'
export { retrySchedule, signWebhookPayload, verifyWebhookSignature } from './webhooks.js'
