export { type CatchupHave, catchupSummary, contiguousMarks, eventsAfter } from './catchup.js'
export { CoreError, MeshCore } from './core.js'
export type { LoadedState, Pending } from './recovery.js'
export type {
  BarrierStats,
  Clock,
  CoreInit,
  Effect,
  EventSource,
  MeshMode,
  MutationName,
  OfflineCandidate,
  OfflineDecision,
  OpResult,
  Roster,
  WireMsg,
  WriteRecord,
} from './types.js'
export { MUTATIONS } from './types.js'
