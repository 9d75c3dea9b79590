import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** The compiled CLI entry point, run by the sim for each child process. */
export const BIN_PATH = fileURLToPath(new URL('../bin.js', import.meta.url))

export interface ExitInfo {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface ChildOptions {
  name: string
  args: string[]
  /** stderr (and stdout after the ready line) go here */
  logPath: string
  /** how long to wait for the ready line */
  readyTimeoutMs?: number
  env?: NodeJS.ProcessEnv
}

/**
 * A `nullmesh` child process (terminal or central). Its first `{"ready":true,…}` line on stdout
 * resolves `ready`; everything else goes to its log file. stdin stays an open pipe: the child
 * (run with --stop-on-stdin-end) stops by itself if this process dies, so no orphan survives.
 */
export class NodeChild<Ready extends Record<string, unknown> = Record<string, unknown>> {
  readonly name: string
  readonly logPath: string
  readonly process: ChildProcess
  readonly ready: Promise<Ready>
  readonly exited: Promise<ExitInfo>
  /** set when this side asked it to stop: an exit after that is not a crash */
  stopping = false
  exit: ExitInfo | undefined
  /** it exited without being asked to, or with a failure code */
  crashed = false
  /** needed SIGKILL to stop */
  killed = false
  private readonly log: WriteStream

  constructor(opts: ChildOptions, onUnexpectedExit?: (child: NodeChild<Ready>) => void) {
    this.name = opts.name
    this.logPath = opts.logPath
    this.log = createWriteStream(opts.logPath, { flags: 'a' })
    // diagnostics: node flags for every child, e.g. NULLMESH_SIM_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR"
    // (NODE_OPTIONS refuses --cpu-prof)
    const nodeArgs = (process.env.NULLMESH_SIM_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '')
    this.process = spawn(process.execPath, [...nodeArgs, BIN_PATH, ...opts.args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    })
    this.process.stdin?.on('error', () => {})
    this.process.stderr?.pipe(this.log, { end: false })
    this.exited = new Promise<ExitInfo>((resolve) => {
      this.process.once('exit', (code, signal) => {
        this.exit = { code, signal }
        if (
          !this.stopping ||
          (code !== 0 && code !== null && code !== 130) ||
          (signal !== null && signal !== 'SIGTERM' && signal !== 'SIGINT')
        ) {
          this.crashed = true
          if (!this.stopping) onUnexpectedExit?.(this)
        }
        resolve(this.exit)
      })
      this.process.once('error', (err) => {
        this.log.write(`spawn error: ${err.message}\n`)
        if (this.exit === undefined) {
          this.exit = { code: null, signal: null }
          this.crashed = true
          resolve(this.exit)
        }
      })
    })
    this.ready = new Promise<Ready>((resolve, reject) => {
      let done = false
      const lines = createInterface({ input: this.process.stdout! })
      const timer = setTimeout(() => {
        if (done) return
        done = true
        reject(
          new Error(`${this.name} was not ready within ${opts.readyTimeoutMs ?? 30_000} ms${this.tail()}`),
        )
      }, opts.readyTimeoutMs ?? 30_000)
      lines.on('line', (line) => {
        if (!done && line.startsWith('{')) {
          try {
            const parsed = JSON.parse(line) as Ready & { ready?: unknown }
            if (parsed.ready === true) {
              done = true
              clearTimeout(timer)
              resolve(parsed)
              return
            }
          } catch {
            // not the ready line
          }
        }
        this.log.write(`[stdout] ${line}\n`)
      })
      void this.exited.then((exit) => {
        clearTimeout(timer)
        if (done) return
        done = true
        reject(new Error(`${this.name} exited before it was ready (${describeExit(exit)})${this.tail()}`))
      })
    })
    this.ready.catch(() => {})
  }

  get pid(): number | undefined {
    return this.process.pid
  }

  get running(): boolean {
    return this.exit === undefined
  }

  signal(sig: NodeJS.Signals): boolean {
    if (!this.running) return false
    try {
      return this.process.kill(sig)
    } catch {
      return false
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Resolves when it has exited. */
  async stop(graceMs = 12_000): Promise<ExitInfo> {
    this.stopping = true
    if (!this.running) return this.exit!
    this.signal('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs)
      }),
    ])
    clearTimeout(timer)
    if (timedOut) {
      this.killed = true
      this.crashed = true
      this.log.write(`[sim] no exit ${graceMs} ms after SIGTERM: SIGKILL\n`)
      this.signal('SIGKILL')
    }
    const exit = await this.exited
    await new Promise<void>((resolve) => this.log.end(resolve))
    return exit
  }

  /** immediate SIGKILL (second Ctrl-C) */
  kill(): void {
    this.stopping = true
    this.signal('SIGKILL')
  }

  /** the last lines of the log, for error messages */
  tail(lines = 8): string {
    try {
      const text = readFileSync(this.logPath, 'utf8').trimEnd()
      if (text === '') return ''
      return `\n  last log lines (${this.logPath}):\n    ${text.split('\n').slice(-lines).join('\n    ')}`
    } catch {
      return ''
    }
  }
}

export function describeExit(exit: ExitInfo): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `exit code ${exit.code}`
}
