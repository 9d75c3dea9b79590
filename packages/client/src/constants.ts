/** Per-request timeout of every call except the `events()` stream. */
export const DEFAULT_TIMEOUT_MS = 10_000
/** How long `events()` may take to receive the response headers. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000
