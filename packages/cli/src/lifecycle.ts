/**
 * Run a long-lived service until SIGINT/SIGTERM (or stdin closing, when asked): then stop it
 * gracefully once; a second signal exits at once.
 */
export function runUntilSignalled(
  name: string,
  stop: () => Promise<void>,
  opts: { stopOnStdinEnd?: boolean; graceMs?: number } = {},
): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false
    const onSignal = (signal: string): void => {
      if (stopping) {
        console.error(`${name}: second ${signal}, exiting now`)
        process.exit(130)
      }
      stopping = true
      const started = Date.now()
      console.error(`${name}: ${signal}, stopping`)
      const timer = setTimeout(() => {
        console.error(`${name}: graceful stop took longer than ${opts.graceMs ?? 10_000} ms, exiting`)
        process.exit(1)
      }, opts.graceMs ?? 10_000)
      timer.unref()
      stop().then(
        () => {
          clearTimeout(timer)
          console.error(`${name}: stopped in ${Date.now() - started} ms`)
          resolve(0)
        },
        (err: unknown) => {
          clearTimeout(timer)
          console.error(`${name}: error while stopping: ${err instanceof Error ? err.message : String(err)}`)
          resolve(1)
        },
      )
    }
    process.on('SIGINT', () => onSignal('SIGINT'))
    process.on('SIGTERM', () => onSignal('SIGTERM'))
    if (opts.stopOnStdinEnd === true) {
      process.stdin.on('end', () => onSignal('stdin closed'))
      process.stdin.on('error', () => onSignal('stdin closed'))
      process.stdin.resume()
    }
  })
}
