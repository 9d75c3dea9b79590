// docker/compose.yaml is the Docker counterpart of scripts/netns-mesh.sh. There is no Docker engine
// on these machines, so this checks that the compose file stays consistent with the CLI: every
// `nullmesh` invocation in it (service commands, shell scripts, healthchecks) names a real command
// and only options that command has, with its required options; each terminal listens on its own
// fixed LAN address, has a healthcheck, a volume and a roster id the venue-init service enrolls.
// `docker compose config` / `docker-compose config` validate the file too when they are installed.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildProgram } from '@nullmesh/cli'
import type { Command } from 'commander'
import { describe, expect, it } from 'vitest'
import { REPO, run } from './netns-helpers.js'

const COMPOSE = join(REPO, 'docker/compose.yaml')
const DOCKERFILE = join(REPO, 'docker/Dockerfile')
const text = readFileSync(COMPOSE, 'utf8')

/** Top-level services and their raw text blocks (2-space indented keys under `services:`). */
function services(): Map<string, string> {
  const lines = text.split('\n')
  const start = lines.indexOf('services:')
  const out = new Map<string, string>()
  let name: string | undefined
  let block: string[] = []
  for (const line of lines.slice(start + 1)) {
    if (/^\S/.test(line)) break // the next top-level key
    const m = /^ {2}([a-zA-Z0-9_-]+):\s*$/.exec(line)
    if (m !== null) {
      if (name !== undefined) out.set(name, block.join('\n'))
      name = m[1]!
      block = []
    } else if (name !== undefined) block.push(line)
  }
  if (name !== undefined) out.set(name, block.join('\n'))
  return out
}

/** `key: [ ...JSON... ]` flow sequences (the file writes every command and test this way). */
function flowList(block: string, key: string): string[] | undefined {
  const m = new RegExp(`^\\s+${key}: (\\[.*\\])\\s*$`, 'm').exec(block)
  return m === null ? undefined : (JSON.parse(m[1]!) as string[])
}

/** Every `nullmesh ...` invocation as argv (without `nullmesh`) in a service. */
function invocations(block: string): string[][] {
  const out: string[][] = []
  const entrypoint = flowList(block, 'entrypoint')
  const command = flowList(block, 'command')
  const test = flowList(block, 'test')
  if (entrypoint === undefined && command !== undefined) out.push(command) // the image's entrypoint is nullmesh
  if (test?.[0] === 'CMD' && test[1] === 'nullmesh') out.push(test.slice(2))
  if (entrypoint?.[0] === 'bash' && command !== undefined) {
    // a shell script: the words after each `nullmesh` up to the end of that simple command
    for (const segment of command.join(' ').split(/;|&&|\|\||\||\bthen\b|\bdo\b|\belse\b/)) {
      const words = segment.trim().split(/\s+/)
      const at = words.indexOf('nullmesh')
      if (at >= 0) out.push(words.slice(at + 1))
    }
  }
  return out
}

function findCommand(argv: string[]): { cmd: Command; rest: string[] } {
  let cmd: Command = buildProgram()
  let rest = argv
  while (rest.length > 0 && !rest[0]!.startsWith('-')) {
    const sub = cmd.commands.find((c) => c.name() === rest[0])
    if (sub === undefined) break
    cmd = sub
    rest = rest.slice(1)
  }
  return { cmd, rest }
}

describe('docker/compose.yaml stays consistent with the CLI', () => {
  const svc = services()

  it('has central, terminals, venue-init and a load generator on one user-defined bridge', () => {
    expect([...svc.keys()]).toEqual(expect.arrayContaining(['venue-init', 'central', 'load']))
    expect([...svc.keys()].filter((s) => /^terminal\d+$/.test(s)).length).toBeGreaterThanOrEqual(3)
    expect(text).toMatch(/^networks:\n {2}venue-lan:\n {4}driver: bridge$/m)
    expect(text).toContain('docker network disconnect')
  })

  it('every nullmesh invocation names a real command and only options it has', () => {
    let checked = 0
    for (const [name, block] of svc) {
      for (const argv of invocations(block)) {
        const { cmd, rest } = findCommand(argv)
        const where = `${name}: nullmesh ${argv.join(' ')}`
        expect(cmd.name(), where).not.toBe('nullmesh')
        // a command that runs something (not only a group like `venue` or `ledger`)
        const runs = (cmd as unknown as { _actionHandler?: unknown })._actionHandler
        expect(runs, `${where}: names a command group, not a command`).toBeTypeOf('function')
        const longs = new Set(cmd.options.map((o) => o.long))
        const given = rest.filter((w) => w.startsWith('--')).map((w) => w.split('=')[0]!)
        for (const flag of given)
          expect(longs.has(flag), `${where}: ${flag} is not an option of ${cmd.name()}`).toBe(true)
        for (const o of cmd.options.filter((o) => o.mandatory))
          expect(given, `${where}: required ${o.long} missing`).toContain(o.long)
        for (const o of cmd.options.filter((o) => o.argChoices !== undefined)) {
          const at = rest.indexOf(o.long!)
          if (at >= 0 && !rest[at + 1]!.includes('$')) expect(o.argChoices, where).toContain(rest[at + 1])
        }
        checked++
      }
    }
    // venue-init, central, 3 terminals, the load generator
    expect(checked).toBeGreaterThanOrEqual(6)
    // the terminals' shared healthcheck (in the x-terminal template)
    const tpl = /^x-terminal: &terminal\n((?: .*\n)+)/m.exec(text)?.[1] ?? ''
    const health = flowList(tpl, 'test')!
    expect(health.slice(0, 2)).toEqual(['CMD', 'nullmesh'])
    const { cmd, rest } = findCommand(health.slice(2))
    expect(cmd.name()).toBe('status')
    for (const w of rest.filter((x) => x.startsWith('--')))
      expect(cmd.options.map((o) => o.long)).toContain(w)
  })

  it('terminals: roster ids, fixed addresses, mDNS, healthchecks and volumes', () => {
    const init = invocations(svc.get('venue-init')!)[0]!
    const enrolled = Number(init[init.indexOf('--terminals') + 1])
    const terminals = [...svc.entries()].filter(([s]) => /^terminal\d+$/.test(s))
    expect(terminals.length).toBe(enrolled)
    const ids = new Set<string>()
    for (const [name, block] of terminals) {
      const argv = flowList(block, 'command')!
      const arg = (flag: string): string => argv[argv.indexOf(flag) + 1]!
      ids.add(arg('--id'))
      const ip = /ipv4_address: (\S+)/.exec(block)?.[1]
      expect(arg('--listen'), name).toBe(`/ip4/${ip}/tcp/4001`)
      expect(arg('--discovery'), name).toBe('mdns')
      expect(argv, name).not.toContain('--peers')
      expect(arg('--central'), name).toBe('http://central:7070')
      expect(text).toContain(`  ${name}-data:`)
      expect(block, name).toContain(`${name}-data:/data`)
    }
    expect([...ids].sort()).toEqual(Array.from({ length: enrolled }, (_, i) => `T${i + 1}`))
    // the shared terminal template carries the healthcheck
    expect(text).toMatch(
      /x-terminal: &terminal[\s\S]*?healthcheck:\n\s+test: \["CMD", "nullmesh", "status", "--json"\]/,
    )
    expect(svc.get('central')).toContain('healthcheck:')
  })

  it('the Dockerfile is multi-stage and runs as a non-root user', () => {
    const df = readFileSync(DOCKERFILE, 'utf8')
    expect(df.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2)
    expect(df).toMatch(/^FROM .* AS build$/m)
    expect(df).toMatch(/^COPY --from=build /m)
    const user = /^USER (\S+)$/gm.exec(df.split(/^FROM .* AS runtime$/m)[1] ?? '')?.[1]
    expect(user).toBeDefined()
    expect(['root', '0']).not.toContain(user)
    expect(df).toMatch(/ENTRYPOINT \["nullmesh"\]/)
  })

  const composeCli = ((): string[] | undefined => {
    for (const c of [['docker-compose'], ['docker', 'compose']]) {
      try {
        execFileSync(c[0]!, [...c.slice(1), 'version'], { stdio: 'pipe' })
        return c
      } catch {
        // not installed
      }
    }
    return undefined
  })()
  if (composeCli === undefined)
    console.warn('[netns-compose] docker compose not installed: `config` validation skipped')
  it.skipIf(composeCli === undefined)('docker compose config accepts the file', async () => {
    const r = await run(composeCli![0]!, [...composeCli!.slice(1), '-f', COMPOSE, 'config', '-q'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  })
})
