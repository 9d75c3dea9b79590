import createDebug from 'debug'

/** A debug logger with an error channel (`<namespace>:error`), in the style of libp2p's. */
export interface Logger {
  (formatter: string, ...args: unknown[]): void
  error(formatter: string, ...args: unknown[]): void
  extend(name: string): Logger
}

export function createLogger(namespace: string): Logger {
  const log = createDebug(namespace) as unknown as Logger
  const error = createDebug(`${namespace}:error`)
  log.error = (formatter: string, ...args: unknown[]) => error(formatter, ...args)
  log.extend = (name: string) => createLogger(`${namespace}:${name}`)
  return log
}
