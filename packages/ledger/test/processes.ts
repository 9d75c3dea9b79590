import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url))

/** A fixture script run by `node` against the built packages, its stdout split into lines. */
export class Fixture {
  readonly child: ChildProcess
  readonly lines: string[] = []
  stderr = ''
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  #partial = ''
  #waiters: Array<() => void> = []

  constructor(script: string, args: string[]) {
    this.child = spawn(process.execPath, [FIXTURES + script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.#notify()
        resolve({ code, signal })
      })
      this.child.once('error', (err) => {
        this.stderr += String(err)
        this.#notify()
        resolve({ code: null, signal: null })
      })
    })
    this.child.stdout!.setEncoding('utf8')
    this.child.stdout!.on('data', (chunk: string) => {
      const parts = (this.#partial + chunk).split('\n')
      // a line without its newline may be cut short by the kill: keep it aside
      this.#partial = parts.pop()!
      this.lines.push(...parts)
      this.#notify()
    })
    this.child.stderr!.setEncoding('utf8')
    this.child.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk
    })
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  #notify(): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w()
  }

  /** Resolves once `predicate(lines)` holds; rejects if the process exits first or on timeout. */
  async waitFor(predicate: (lines: string[]) => boolean, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!predicate(this.lines)) {
      if (!this.alive) throw new Error(`fixture exited early: ${this.stderr}`)
      if (Date.now() > deadline) throw new Error(`fixture timed out; stderr: ${this.stderr}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100)
        this.#waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** SIGKILL and wait for the exit (the OS then releases its LevelDB lock). */
  async kill(): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL')
    await this.exited
  }
}
