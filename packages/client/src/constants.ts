/** Per-request timeout of every call except the `events()` stream. */
export const DEFAULT_TIMEOUT_MS = 10_000
/** How long `events()` may take to receive the response headers. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000
/**
 * Header `pay()` sends: when the card was tapped (ms since the epoch). The terminal counts its tap
 * budget from then when that is earlier than the request's arrival (it waited in a socket).
 */
export const TAP_AT_HEADER = 'nullmesh-tap-at'
