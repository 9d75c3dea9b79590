/**
 * An error the user can fix (bad flag value, missing directory, unreachable terminal): printed as
 * one line without a stack trace, exit code `exitCode`.
 */
export class UserError extends Error {
  readonly exitCode: number
  constructor(message: string, exitCode = 2) {
    super(message)
    this.name = 'UserError'
    this.exitCode = exitCode
  }
}

/** Error codes of the libraries that mean "the user's input or environment", not "a bug". */
const USER_CODES = new Set([
  'ENOENT',
  'EACCES',
  'EEXIST',
  'ENOTDIR',
  'EADDRINUSE',
  'EADDRNOTAVAIL',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ERR_LEDGER_LOCKED',
  'ERR_LEDGER_OPEN_FAILED',
  'ERR_LEDGER_CORRUPT',
  'ERR_INVALID_URL',
  'ERR_VENUE_BUNDLE',
  'ERR_INVALID_POLICY',
  'ERR_INVALID_EXPORT',
  'UND_ERR_CONNECT_TIMEOUT',
])

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

/** One line for the user: the message, the cause's message if it adds something, no stack. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  let text = err.message
  const cause = err.cause
  if (cause instanceof Error && cause.message !== '' && !text.includes(cause.message))
    text += `: ${cause.message}`
  else if (cause !== undefined && codeOf(cause) !== undefined && !text.includes(codeOf(cause)!))
    text += ` (${codeOf(cause)})`
  return text.replace(/\s*\n\s*/g, ' ')
}

/** Is this an error to report in one line (the user's to fix) rather than a bug with a stack? */
export function isUserFacing(err: unknown): boolean {
  if (err instanceof UserError) return true
  const code = codeOf(err)
  if (code !== undefined && USER_CODES.has(code)) return true
  const cause = (err as { cause?: unknown } | null)?.cause
  const causeCode = codeOf(cause)
  if (causeCode !== undefined && USER_CODES.has(causeCode)) return true
  // fetch() failures ("fetch failed") and client/API errors with an HTTP status are the environment's
  if (err instanceof TypeError && err.message === 'fetch failed') return true
  if (typeof (err as { status?: unknown } | null)?.status === 'number') return true
  if (err instanceof Error && err.name === 'TimeoutError') return true
  return false
}

/** Print an error for the user and give the exit code to use. Stacks only for bugs, or with DEBUG set. */
export function reportError(err: unknown): number {
  const debugOn = typeof process.env.DEBUG === 'string' && process.env.DEBUG !== ''
  if (isUserFacing(err)) {
    console.error(`nullmesh: ${describeError(err)}`)
    if (debugOn && err instanceof Error && err.stack !== undefined) console.error(err.stack)
    return err instanceof UserError ? err.exitCode : 1
  }
  console.error(`nullmesh: internal error: ${describeError(err)}`)
  if (err instanceof Error && err.stack !== undefined)
    console.error(debugOn ? err.stack : err.stack.split('\n').slice(0, 4).join('\n'))
  return 1
}
