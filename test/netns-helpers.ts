// Helpers for the tests that run a venue in Linux network namespaces via scripts/netns-mesh.sh.
// mDNS runs only inside namespaces the test creates; everything is removed in afterAll (`down`
// kills every process in the namespaces and deletes them), also when a test fails.
import { execFile, execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export const REPO = resolve(import.meta.dirname, '..')
export const SCRIPT = join(REPO, 'scripts/netns-mesh.sh')
export const BIN = join(REPO, 'packages/cli/dist/bin.js')

export interface Run {
  code: number | null
  stdout: string
  stderr: string
}

export function run(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((done) => {
    execFile(
      file,
      args,
      { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 32 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
        done({ code, stdout, stderr })
      },
    )
  })
}

/** Why namespace tests cannot run here (undefined: they can). Probes by creating one namespace. */
export function netnsUnsupported(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux'
  if (process.getuid?.() !== 0) return 'not root (network namespaces need root)'
  const probe = `nmprobe${randomBytes(2).toString('hex')}`
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' })
  } catch (err: unknown) {
    return `\`ip netns add\` failed: ${String((err as { stderr?: unknown }).stderr ?? err).trim()}`
  }
  try {
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' })
  } catch {
    // removed by the next line's check at worst
  }
  return undefined
}

export function hasCurl(): boolean {
  try {
    execFileSync('curl', ['--version'], { stdio: 'pipe' })
    return true
  } catch {
    return false
  }
}

export interface MeshTerminal {
  index: number
  id: string
  ns: string
  lanIp: string
  api: string
  token: string
  data: string
  log: string
}

export interface MeshInfo {
  prefix: string
  n: number
  state: string
  ctlNs: string
  venueDir: string
  central: { ns: string; url: string; lanUrl: string; data: string; log: string }
  terminals: MeshTerminal[]
}

export interface TerminalStatusBody {
  online: boolean
  mesh: { mode: 'quorum' | 'isolated'; peers: number; roster: number; quorum: number }
  queue: { count: number }
  exposureBoundMinor: number
  terminal: string
}

/** A venue in namespaces, driven through scripts/netns-mesh.sh. */
export class NetnsMesh {
  readonly env: NodeJS.ProcessEnv
  readonly curl = hasCurl()
  info?: MeshInfo
  private downDone = false

  private constructor(
    readonly state: string,
    readonly prefix: string,
  ) {
    this.env = { ...process.env, NM_STATE: state, NM_PREFIX: prefix }
  }

  /** Create the namespaces and start central + n terminals. Throws (after tearing down) on failure. */
  static async up(n: number, opts: { wait?: boolean } = {}): Promise<NetnsMesh> {
    const state = await mkdtemp(join(tmpdir(), 'nullmesh-netns-test-'))
    const mesh = new NetnsMesh(state, `nm${randomBytes(2).toString('hex')}`)
    const r = await run(SCRIPT, ['up', String(n)], {
      env: { ...mesh.env, ...(opts.wait === false ? { NM_NO_WAIT: '1' } : {}) },
      timeoutMs: 120_000,
    })
    if (r.code !== 0) {
      await mesh.down()
      throw new Error(`netns-mesh.sh up ${n} failed (${r.code}):\n${r.stderr}\n${r.stdout}`)
    }
    mesh.info = JSON.parse(await readFile(join(state, 'mesh.json'), 'utf8')) as MeshInfo
    return mesh
  }

  async sh(...args: string[]): Promise<Run> {
    const r = await run(SCRIPT, args, { env: this.env })
    if (r.code !== 0) throw new Error(`netns-mesh.sh ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
    return r
  }

  /** HTTP to terminal i's API (1-based) from the control namespace. */
  async api<T = unknown>(i: number, path: string, body?: unknown, timeoutS = 10): Promise<T> {
    const t = this.info!.terminals[i - 1]!
    return this.http<T>(`${t.api}${path}`, t.token, body, timeoutS)
  }

  async central<T = unknown>(path: string): Promise<T> {
    return this.http<T>(`${this.info!.central.url}${path}`, undefined, undefined, 10)
  }

  private async http<T>(url: string, token: string | undefined, body: unknown, timeoutS: number): Promise<T> {
    const ns = this.info!.ctlNs
    let r: Run
    if (this.curl) {
      const args = ['netns', 'exec', ns, 'curl', '-sS', '--max-time', String(timeoutS)]
      if (token !== undefined) args.push('-H', `authorization: Bearer ${token}`)
      if (body !== undefined) args.push('-H', 'content-type: application/json', '-d', JSON.stringify(body))
      args.push(url)
      r = await run('ip', args, { timeoutMs: (timeoutS + 5) * 1000 })
    } else {
      const code = `const [u,t,b]=process.argv.slice(1);fetch(u,{method:b?'POST':'GET',headers:{...(t?{authorization:'Bearer '+t}:{}),...(b?{'content-type':'application/json'}:{})},body:b||undefined,signal:AbortSignal.timeout(${timeoutS * 1000})}).then(r=>r.text()).then(s=>process.stdout.write(s),e=>{console.error(String(e));process.exit(1)})`
      r = await run(
        'ip',
        [
          'netns',
          'exec',
          ns,
          process.execPath,
          '-e',
          code,
          url,
          token ?? '',
          body === undefined ? '' : JSON.stringify(body),
        ],
        { timeoutMs: (timeoutS + 5) * 1000 },
      )
    }
    if (r.code !== 0) throw new Error(`${url}: ${r.stderr.trim() || `exit ${r.code}`}`)
    return JSON.parse(r.stdout) as T
  }

  async status(i: number): Promise<TerminalStatusBody | undefined> {
    try {
      return await this.api<TerminalStatusBody>(i, '/v1/status', undefined, 3)
    } catch {
      return undefined
    }
  }

  /** Poll until pred holds; returns the elapsed ms. Throws with the last value on timeout. */
  async waitFor<T>(
    what: string,
    get: () => Promise<T>,
    pred: (v: T) => boolean,
    timeoutMs: number,
  ): Promise<number> {
    const t0 = Date.now()
    let last: T | undefined
    while (Date.now() - t0 < timeoutMs) {
      last = await get()
      if (pred(last)) return Date.now() - t0
      await sleep(200)
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}`)
  }

  /** Stop everything and delete the namespaces (idempotent). Keeps the state dir unless purge. */
  async down(purge = false): Promise<void> {
    if (!this.downDone) {
      const r = await run(SCRIPT, ['down'], { env: this.env, timeoutMs: 60_000 })
      if (r.code !== 0) console.error(`netns-mesh.sh down: ${r.stderr}`)
      this.downDone = true
    }
    if (purge) await rm(this.state, { recursive: true, force: true, maxRetries: 3 })
  }

  /** Namespaces with this mesh's prefix that still exist (must be none after down). */
  leftoverNamespaces(): string[] {
    const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    return out
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter((n) => n.startsWith(`${this.prefix}-`))
  }
}

/** `nullmesh ledger inspect --json` of a stopped terminal's data directory. */
export async function inspectLedger(
  dataDir: string,
  venueDir: string,
): Promise<{
  events: number
  byType: Record<string, number>
  commitsByMode: Record<string, number>
  byOrigin: Record<string, { events: number; maxSeq: number }>
}> {
  const r = await run(process.execPath, [
    BIN,
    'ledger',
    'inspect',
    '--data',
    dataDir,
    '--venue',
    venueDir,
    '--json',
  ])
  if (r.code !== 0) throw new Error(`ledger inspect ${dataDir}: ${r.stderr}`)
  const lines = r.stdout.trim().split('\n')
  return JSON.parse(lines[lines.length - 1]!)
}
