import { resolve } from 'node:path'
import type { HostPort } from '../args.js'
import { existingDir } from '../args.js'
import { UserError } from '../errors.js'
import { runUntilSignalled } from '../lifecycle.js'
import { openVenue } from '../venue-tools.js'

export interface TerminalOptions {
  venue: string
  id: string
  data?: string
  listen?: string[]
  api?: HostPort
  peers?: string[]
  discovery: 'static' | 'mdns'
  central?: string
  token?: string
  mode: 'mesh' | 'floor-limit-only'
  stopOnStdinEnd?: boolean
}

export async function runTerminal(opts: TerminalOptions): Promise<number> {
  const venueDir = existingDir(opts.venue, '--venue')
  const bundle = await openVenue(venueDir)
  if (!bundle.roster.some((r) => r.id === opts.id)) {
    throw new UserError(
      `terminal ${opts.id} is not in the roster of ${bundle.venueId} (${bundle.roster.map((r) => r.id).join(', ')})`,
    )
  }
  if (opts.token !== undefined && opts.token.length < 8)
    throw new UserError('--token must be at least 8 characters')
  const dataDir = resolve(opts.data ?? `data/${opts.id}`)
  const { createTerminal } = await import('@nullmesh/terminal')
  const terminal = createTerminal({
    venueDir,
    id: opts.id,
    dataDir,
    listen: opts.listen ?? ['/ip4/127.0.0.1/tcp/0'],
    api: opts.api ?? { host: '127.0.0.1', port: 0 },
    discovery: { mdns: opts.discovery === 'mdns', peers: opts.peers ?? [] },
    mode: opts.mode,
    ...(opts.token === undefined ? {} : { token: opts.token }),
    ...(opts.central === undefined ? {} : { centralUrl: opts.central }),
  })

  let partitioned = false
  const setPartitioned = (on: boolean): void => {
    if (partitioned === on) return
    partitioned = on
    console.error(`terminal ${opts.id}: ${on ? 'partitioned (mesh traffic cut)' : 'partition healed'}`)
    terminal.mesh.setPartitioned(on).catch((err: unknown) => {
      console.error(
        `terminal ${opts.id}: setPartitioned(${on}) failed: ${err instanceof Error ? err.message : String(err)}`,
      )
    })
  }
  process.on('SIGUSR1', () => setPartitioned(true))
  process.on('SIGUSR2', () => setPartitioned(false))

  const done = runUntilSignalled(`terminal ${opts.id}`, () => terminal.stop(), {
    stopOnStdinEnd: opts.stopOnStdinEnd === true,
  })
  await terminal.start()
  const ready = {
    ready: true,
    id: opts.id,
    venue: bundle.venueId,
    peerId: terminal.peerId,
    multiaddrs: terminal.multiaddrs(),
    api: terminal.apiUrl,
    token: terminal.token,
    pid: process.pid,
  }
  console.log(JSON.stringify(ready))
  console.error(
    `terminal ${opts.id}: ready — API ${terminal.apiUrl}, peer ${terminal.peerId}, ` +
      `${opts.central === undefined ? 'no central configured' : `central ${opts.central}`}, data ${dataDir}`,
  )
  // libp2p and fastify may leave timers behind: a stopped daemon exits explicitly
  process.exit(await done)
}
