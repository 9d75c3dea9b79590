import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { loadVenueBundle } from '@nullmesh/policy'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// The CLI as a user runs it: the built bin in child processes, nothing in-process.
const BIN = resolve(import.meta.dirname, '../packages/cli/dist/bin.js')

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function run(args: string[], timeoutMs = 90_000): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
        done({ code, stdout, stderr })
      },
    )
  })
}

function lastJsonLine(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n')
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** every process whose parent is `pid` (Linux `ps`), recursively */
function descendants(pid: number): number[] {
  let out: string
  try {
    out = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' })
  } catch {
    return []
  }
  const pairs = out
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number])
  const found: number[] = []
  const walk = (p: number): void => {
    for (const [child, parent] of pairs) {
      if (parent === p) {
        found.push(child)
        walk(child)
      }
    }
  }
  walk(pid)
  return found
}

let work: string
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nullmesh-cli-test-'))
})
afterAll(async () => {
  await rm(work, { recursive: true, force: true })
})

describe('nullmesh sim', () => {
  for (const scenario of ['normal', 'double-tap'] as const) {
    // normal keeps its directories (--keep) so the ledger commands can be run on real ledgers below
    const keep = scenario === 'normal'
    it(`--scenario ${scenario}: invariants hold, every process stopped${keep ? '' : ', temp dir removed'}`, async () => {
      const dir = join(work, `sim-${scenario}`)
      const r = await run([
        'sim',
        '--terminals',
        '3',
        '--payments',
        '100',
        '--rate',
        '50',
        '--scenario',
        scenario,
        '--seed',
        '42',
        '--settle-timeout',
        '20000',
        '--dir',
        dir,
        '--json',
        ...(keep ? ['--keep'] : []),
      ])
      let s: Record<string, unknown>
      try {
        s = lastJsonLine(r.stdout)
      } catch {
        throw new Error(`no JSON summary (exit ${r.code}):\n${r.stderr.slice(-3000)}`)
      }
      expect(s.error, r.stderr.slice(-3000)).toBeUndefined()
      const failure = `exit ${r.code}; violations ${JSON.stringify(s.violations)}; crashed ${JSON.stringify(s.crashed)}\n${r.stderr.slice(-3000)}`
      expect(s.terminals, failure).toBe(3)
      expect(s.payments, failure).toBe(100)
      expect(s.approved as number, failure).toBeGreaterThan(0)
      expect((s.approved as number) + (s.declined as number) + (s.errors as number), failure).toBe(100)
      expect(s.overCapCards, failure).toBe(0)
      expect(s.duplicateApprovals, failure).toBe(0)
      expect(s.proofBytesMax as number, failure).toBeLessThanOrEqual(90)
      expect(s.proofsInvalid, failure).toBe(0)
      expect(s.lost, failure).toBe(0)
      expect(s.crashed, failure).toEqual([])
      expect(s.seed).toBe(42)
      expect(s.barrierMs).toMatchObject({ p50: expect.any(Number), p99: expect.any(Number) })
      expect(s.settled).toMatchObject({ completed: expect.any(Number), failed: expect.any(Number) })
      if (scenario === 'double-tap') {
        const taps = s.doubleTaps as { groups: number; maxApprovalsPerGroup: number }
        expect(taps.groups).toBeGreaterThan(0)
        expect(taps.maxApprovalsPerGroup, failure).toBeLessThanOrEqual(1)
      }
      expect(r.code, failure).toBe(0)
      // no orphans: central and every terminal are gone
      const pids = Object.values(s.pids as Record<string, number>)
      expect(pids).toHaveLength(4)
      for (const pid of pids) expect(alive(pid), `pid ${pid} still running`).toBe(false)
      if (!keep) {
        expect(await readdir(dir)).toEqual([])
        return
      }

      // ── the ledger commands on what the sim left behind ──
      const root = s.dataDir as string
      expect(root.startsWith(dir)).toBe(true)
      const perTerminal = (s.ledgers as { perTerminal: Record<string, number> }).perTerminal
      const inspect = await run([
        'ledger',
        'inspect',
        '--data',
        join(root, 'T1'),
        '--venue',
        join(root, 'venue'),
        '--json',
      ])
      expect(inspect.code, inspect.stderr).toBe(0)
      const ledger = JSON.parse(inspect.stdout) as {
        events: number
        byOrigin: Record<string, unknown>
        payments: number
      }
      expect(ledger.events).toBe(perTerminal.T1)
      expect(Object.keys(ledger.byOrigin).sort()).toEqual(['T1', 'T2', 'T3'])
      expect(ledger.payments).toBeGreaterThan(0)
      // the cabin-handheld path: export T2's ledger, merge it into a fresh central
      const file = join(root, 'T2.export')
      const exported = await run(['ledger', 'export', '--data', join(root, 'T2'), '--out', file, '--json'])
      expect(exported.code, exported.stderr).toBe(0)
      expect((JSON.parse(exported.stdout) as { events: number }).events).toBe(perTerminal.T2)
      const imported = await run([
        'central',
        'import',
        file,
        '--data',
        join(root, 'central2'),
        '--venues',
        join(root, 'venue'),
        '--json',
      ])
      expect(imported.code, imported.stderr).toBe(0)
      const result = JSON.parse(imported.stdout) as {
        events: number
        byStatus: Record<string, number>
        rejected: Record<string, number>
      }
      expect(result.events).toBe(perTerminal.T2)
      expect(result.rejected).toEqual({})
      expect(result.byStatus.stored).toBe(perTerminal.T2)
      // the operator's report: SQL over the merged store
      const report = await run(['central', 'report', '--data', join(root, 'central2'), '--json'])
      expect(report.code, report.stderr).toBe(0)
      const venues = (JSON.parse(report.stdout) as { venues: Array<{ venueId: string; payments: number }> })
        .venues
      expect(venues.map((v) => v.venueId)).toEqual(['sim-venue'])
      expect(venues[0]!.payments).toBeGreaterThan(0)
      await rm(root, { recursive: true, force: true })
    }, 120_000)
  }

  it('Ctrl-C mid-run: stops every child, removes the temp dir, exits 130', async () => {
    const dir = join(work, 'sim-sigint')
    const child: ChildProcess = spawn(
      process.execPath,
      [BIN, 'sim', '--terminals', '3', '--payments', '2000', '--rate', '50', '--dir', dir, '--no-progress'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)))
    // wait until the load runs (all terminals up and meshed)
    const deadline = Date.now() + 45_000
    while (!/load starts/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    const kids = descendants(child.pid!)
    expect(kids.length, stderr).toBeGreaterThanOrEqual(4)
    child.kill('SIGINT')
    const code = await exited
    expect(code, stderr).toBe(130)
    for (const pid of kids) expect(alive(pid), `pid ${pid} still running`).toBe(false)
    expect(await readdir(dir)).toEqual([])
  }, 90_000)
})

describe('nullmesh venue init', () => {
  it('writes a venue that loads and verifies', async () => {
    const out = join(work, 'venue')
    const r = await run([
      'venue',
      'init',
      '--terminals',
      '4',
      '--out',
      out,
      '--venue',
      'test-venue',
      '--json',
    ])
    expect(r.code, r.stderr).toBe(0)
    const printed = JSON.parse(r.stdout) as { venueId: string; roster: { id: string; peerId: string }[] }
    expect(printed.venueId).toBe('test-venue')
    const bundle = await loadVenueBundle(out)
    expect(bundle.venueId).toBe('test-venue')
    expect(bundle.roster.map((t) => t.id)).toEqual(['T1', 'T2', 'T3', 'T4'])
    expect(printed.roster.every((t) => t.peerId.startsWith('12D3KooW'))).toBe(true)
    // a second init refuses to overwrite the keys
    const again = await run(['venue', 'init', '--terminals', '2', '--out', out])
    expect(again.code).not.toBe(0)
    expect(again.stderr).toMatch(/already holds a venue.*--force/)
    const keys = await run(['keys', '--venue', out, '--json'])
    expect(keys.code, keys.stderr).toBe(0)
    expect((JSON.parse(keys.stdout) as { terminals: unknown[] }).terminals).toHaveLength(4)
  })
})

describe('user errors: one clear line, non-zero exit, no stack trace', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['unknown option', ['sim', '--terminalz', '3'], /unknown option '--terminalz'/],
    ['bad integer', ['sim', '--terminals', 'three'], /--terminals.*expected an integer/],
    [
      'out of range',
      ['venue', 'init', '--terminals', '0', '--out', '/tmp/x'],
      /expected an integer from 1 to 64/,
    ],
    ['bad choice', ['sim', '--scenario', 'meltdown'], /Allowed choices are normal, double-tap, partition/],
    [
      'missing option',
      ['venue', 'init', '--terminals', '2'],
      /required option '-o, --out <dir>' not specified/,
    ],
    [
      'missing venue dir',
      ['terminal', '--venue', '/nonexistent/venue', '--id', 'T1'],
      /--venue \/nonexistent\/venue does not exist/,
    ],
    ['not a ledger', ['ledger', 'inspect', '--data', '/'], /no ledger in \//],
    [
      'bad address',
      ['terminal', '--venue', '.', '--id', 'T1', '--api', 'localhost:http'],
      /expected HOST:PORT/,
    ],
    ['no token', ['status', '--api', 'http://127.0.0.1:9'], /token is required/],
  ]
  for (const [name, args, message] of cases) {
    it(name, async () => {
      const r = await run(args, 20_000)
      expect(r.code).not.toBe(0)
      expect(r.code).not.toBeNull()
      expect(r.stderr).toMatch(message)
      expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/)
    })
  }

  it('--help works on every command', async () => {
    for (const args of [
      ['--help'],
      ['sim', '--help'],
      ['terminal', '--help'],
      ['central', 'import', '--help'],
      ['ledger', 'export', '--help'],
    ]) {
      const r = await run(args, 20_000)
      expect(r.code, args.join(' ')).toBe(0)
      expect(r.stdout).toMatch(/Usage: nullmesh/)
    }
  })
})
