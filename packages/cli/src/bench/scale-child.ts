// One process of the `scale` bench figure: it hosts several real terminals (each its own libp2p
// node, LevelDB ledger and key, no HTTP API, no central), driven by the parent (scale.ts) over IPC.
// Node 20 lacks Promise.withResolvers, which libp2p uses: the shim must load before libp2p.
import '@nullmesh/protocol/shim'
import { mkdir, writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { join } from 'node:path'
import { type MeshCounters, newCounters } from '@nullmesh/mesh'
import type { Terminal } from '@nullmesh/terminal'

/** The parent's requests; every one is answered with `{ id, result }` or `{ id, error }`. */
export type ScaleRequest =
  | {
      id: number
      cmd: 'start'
      venueDir: string
      dataRoot: string
      ids: string[]
      /** each terminal's own loopback address (one host per terminal), in the order of ids */
      hosts: string[]
      /** the port every terminal listens on (at its own address) */
      port: number
      /** every terminal's address (ours are left out of each terminal's static peers) */
      peers: string[]
    }
  | { id: number; cmd: 'status' }
  | { id: number; cmd: 'sample' }
  | { id: number; cmd: 'pay'; terminal: string; body: Record<string, unknown> }
  | { id: number; cmd: 'stop' }
  /** the idle figure (idle.ts): a V8 CPU profile of this process over a window, written to `path` */
  | { id: number; cmd: 'profileStart' }
  | { id: number; cmd: 'profileStop'; path: string }

export interface ScaleStarted {
  /** one dialable multiaddr (with /p2p/) per terminal, in the order started */
  addrs: string[]
}

export interface ScaleTerminalStatus {
  id: string
  mode: string
  peers: number
  /** enrolled peers connected (verified or not) */
  connections: number
  /** the terminal knows its own history (learned from N − q + 1 peers at a fresh start): it may sign */
  historyKnown: boolean
}

export interface ScaleSample {
  /** this process's user + system CPU time since it started (process.cpuUsage) */
  cpuMs: number
  /** the sum of the mesh counters of the terminals in this process */
  counters: MeshCounters
  /** peers that became ready or were lost, summed over this process's terminals (connection churn) */
  peerEvents: number
}

export interface ScalePaid {
  /** terminal.pay() timed in this process: tap → decision */
  ms: number
  status: string
  declineCode?: string | undefined
}

const terminals = new Map<string, Terminal>()
let peerEvents = 0

async function start(req: Extract<ScaleRequest, { cmd: 'start' }>): Promise<ScaleStarted> {
  const { createTerminal } = await import('@nullmesh/terminal')
  const addrs: string[] = []
  // one after the other, each on its own loopback address and given every other terminal's
  // address (the ones not started yet answer nothing until they do)
  for (const [i, id] of req.ids.entries()) {
    const host = req.hosts[i]!
    const dataDir = join(req.dataRoot, id)
    await mkdir(dataDir, { recursive: true })
    const t = createTerminal({
      venueDir: req.venueDir,
      id,
      dataDir,
      listen: [`/ip4/${host}/tcp/${req.port}`],
      api: false,
      token: 'bench-scale-token-0123456789',
      discovery: { mdns: false, peers: req.peers.filter((p) => !p.startsWith(`/ip4/${host}/`)) },
      mode: 'mesh',
    })
    terminals.set(id, t)
    await t.start()
    t.mesh.addEventListener('peer', () => peerEvents++)
    const a = t.multiaddrs().find((m) => m.startsWith(`/ip4/${host}/`)) ?? t.multiaddrs()[0]
    if (a === undefined) throw new Error(`${id}: no listen address`)
    addrs.push(a.includes('/p2p/') ? a : `${a}/p2p/${t.peerId}`)
  }
  return { addrs }
}

function sample(): ScaleSample {
  const u = process.cpuUsage()
  const counters: MeshCounters = newCounters()
  for (const t of terminals.values()) {
    const c = t.mesh.counters()
    for (const k of Object.keys(counters) as (keyof MeshCounters)[]) counters[k] += c[k]
  }
  return { cpuMs: (u.user + u.system) / 1000, counters, peerEvents }
}

async function pay(req: Extract<ScaleRequest, { cmd: 'pay' }>): Promise<ScalePaid> {
  const t = terminals.get(req.terminal)
  if (t === undefined) throw new Error(`no terminal ${req.terminal} in this process`)
  const t0 = performance.now()
  const response = await t.pay(req.body)
  return { ms: performance.now() - t0, status: response.status, declineCode: response.declineCode }
}

async function stopAll(): Promise<void> {
  await Promise.allSettled([...terminals.values()].map((t) => t.stop()))
  terminals.clear()
}

let profiler: Session | undefined

async function profileStart(): Promise<boolean> {
  profiler ??= new Session()
  profiler.connect()
  await profiler.post('Profiler.enable')
  // 100 µs between samples (V8's default is 1 ms): an idle terminal is busy a few ms a second
  await profiler.post('Profiler.setSamplingInterval', { interval: 100 })
  await profiler.post('Profiler.start')
  return true
}

async function profileStop(path: string): Promise<boolean> {
  if (profiler === undefined) return false
  const { profile } = await profiler.post('Profiler.stop')
  await writeFile(path, JSON.stringify(profile))
  profiler.disconnect()
  return true
}

async function handle(req: ScaleRequest): Promise<unknown> {
  switch (req.cmd) {
    case 'start':
      return start(req)
    case 'status':
      return [...terminals.values()].map((t) => {
        const s = t.mesh.status()
        return {
          id: t.id,
          mode: s.mode,
          peers: s.peers,
          connections: s.connections,
          historyKnown: s.historyKnown,
        } satisfies ScaleTerminalStatus
      })
    case 'sample':
      return sample()
    case 'pay':
      return pay(req)
    case 'profileStart':
      return profileStart()
    case 'profileStop':
      return profileStop(req.path)
    case 'stop':
      await stopAll()
      setTimeout(() => process.exit(0), 20)
      return true
  }
}

process.on('message', (m: ScaleRequest) => {
  handle(m).then(
    (result) => process.send?.({ id: m.id, result }),
    (err: unknown) =>
      process.send?.({ id: m.id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
  )
})
// the parent died or let go of us: stop our terminals and leave, no orphan survives
process.on('disconnect', () => {
  stopAll().finally(() => process.exit(0))
})
process.send?.({ ready: true, pid: process.pid })
