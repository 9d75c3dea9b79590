// issue 15: rejoining after a pulled cable
export type { AddressBook, AddressBookEntry, AddressBookInit } from './address-book.js'
export { ADDRESS_BOOK_CURSOR, createAddressBook, normaliseAddr } from './address-book.js'
export {
  BARRIER_REQUEST_BURST,
  BARRIER_REQUESTS_PER_SECOND,
  gossipScoring,
  gossipTopic,
  INBOUND_CONNECTIONS_PER_HOST_PER_SECOND,
  mdnsServiceTag,
  protocolIds,
} from './constants.js'
export { type MeshCounters, newCounters } from './counters.js'
export { loopbackDialSource } from './dialer.js'
export type { MeshErrorCode, ValidationAction, ValidationCode } from './errors.js'
export { EventValidationError, MeshError, VALIDATION_CODES } from './errors.js'
export { toGossipVerdict } from './gossip-adapter.js'
export type { InterfaceChange, InterfaceWatch, InterfaceWatchInit } from './interface-watch.js'
export { createInterfaceWatch, interfaceKeys } from './interface-watch.js'
export { loadFromIndexes } from './load-state.js'
export type {
  BarrierStats,
  MeshEvents,
  MeshInit,
  MeshMode,
  MeshNode,
  MeshStatus,
  OfflineCandidate,
  OfflineDecision,
} from './node.js'
export { createMeshNode } from './node.js'
export type { PreSharedKeyInit } from './pnet.js'
export { decodeSwarmKey, preSharedKey, XSalsa20Stream } from './pnet.js'
export { RateLimiter } from './rate-limit.js'
export type { Rejoin, RejoinInit } from './rejoin.js'
export { startRejoin } from './rejoin.js'
export type { ValidationContext } from './validation.js'
export {
  validateCatchupRequest,
  validateCommit,
  validateEventBytes,
  validateRelease,
  validateReservation,
} from './validation.js'
