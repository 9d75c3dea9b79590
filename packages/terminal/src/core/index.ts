/**
 * The terminal's sans-I/O core: the online path (reserve, durable pending mark, central, fallback
 * under the same reservation, void before release). The daemon and the deterministic simulator
 * (packages/cli/src/dst) drive the same code.
 */
export {
  FALLBACK_RESERVE_MS,
  ONLINE_MUTATIONS,
  OnlineCore,
  type OnlineCoreInit,
  type OnlineEffect,
  type OnlineMutationName,
  VOID_RETRY_MS,
} from './online.js'
