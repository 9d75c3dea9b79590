import { randomBytes, randomInt } from 'node:crypto'
import { rmSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { MAX_STATUS_IDS, PAYMENT_STATUSES } from '@nullmesh/central'
import type { PaymentResponse, TerminalClient } from '@nullmesh/client'
import { createLedger } from '@nullmesh/ledger'
import {
  createVenueBundle,
  partitionExposureBound,
  unheldOnlineExposure,
  type VenueBundle,
} from '@nullmesh/policy'
import { computeCardKey, fromBase64url, fromHex, toHex, verifyProof } from '@nullmesh/protocol'
import hdr from 'hdr-histogram-js'
import { UserError } from '../errors.js'
import { loopbackHost } from '../loopback.js'
import { peerIdFromEd25519 } from '../peer-id.js'
import { updateVenuePolicy } from '../venue-tools.js'
import {
  duplicateApprovals,
  isolatedApprovedMinor,
  LedgerUnion,
  overCapCards,
  overCountCards,
  settledNotApproved,
} from './analyze.js'
import { describeExit, NodeChild } from './children.js'
import { SCENARIOS, type Scenario, type SimOptions } from './options.js'
import { makePlan, type Plan, type PlannedPayment } from './plan.js'
import { createPosLag } from './pos-lag.js'
import { type LiveStats, Progress, type TerminalView } from './progress.js'
import { LinkProxy } from './proxy.js'
import { formatSummary, type SimSummary, violations } from './report.js'

/** ready peers a terminal has once the venue formed: the mesh's connection target (TARGET_CONNECTIONS) */
const SIM_READY_PEERS = 8

/**
 * Every terminal's mesh listens on this port, each on its own loopback address, so that all
 * addresses are known up front: a port in [BASE, BASE + SPAN), drawn per run (below Linux's
 * ephemeral range, 32768–60999)
 */
const SIM_BASE_PORT = 20_000
const SIM_PORT_SPAN = 10_000

/** A BIN the simulated venue blocks in its policy (some pool cards carry it). */
export const SIM_BLOCKED_BIN = '670341'
/** Share of payments the simulated issuer declines at settlement. */
export const SIM_ISSUER_DECLINE_RATE = 0.02
/** Requests in flight at once, across terminals. */
const MAX_IN_FLIGHT = 256
/** central's ready line (its embedded PGlite store starts): over 30 s was seen at load average ~12 */
const CENTRAL_READY_MS = 120_000
/**
 * How long one terminal process may take to print its ready line: a base, plus a share per terminal
 * already running, since on a shared 2-core machine every running terminal slows the next start.
 */
const TERMINAL_READY_BASE_MS = 60_000
const TERMINAL_READY_PER_RUNNING_MS = 5_000
/**
 * How long to wait for every terminal to see the others before the load starts: each of N
 * terminals connects to, greets and catches up with N − 1 others, so the wait grows with N.
 */
const MESH_READY_BASE_MS = 20_000
const MESH_READY_PER_TERMINAL_MS = 4_000
/** while starting and meshing, a progress line this often */
const MESH_PROGRESS_MS = 5_000

interface RawSimOptions {
  terminals: number
  groupSize?: number
  cards: number
  payments: number
  rate: number
  scenario: string
  seed?: string
  offline: number
  settleTimeout: number
  json?: boolean
  keep?: boolean
  dir?: string
  progress?: boolean
  centralStore?: string
  hold?: boolean
}

export async function simCommand(raw: RawSimOptions): Promise<number> {
  if (!(SCENARIOS as readonly string[]).includes(raw.scenario))
    throw new UserError(`unknown --scenario ${raw.scenario}`)
  const opts: SimOptions = {
    terminals: raw.terminals,
    groupSize: raw.groupSize,
    cards: raw.cards,
    payments: raw.payments,
    rate: raw.rate,
    scenario: raw.scenario as Scenario,
    seed: raw.seed ?? String(randomBytes(4).readUInt32BE(0)),
    offline: raw.offline,
    settleTimeoutMs: raw.settleTimeout,
    json: raw.json === true,
    keep: raw.keep === true,
    dir: raw.dir,
    progress: raw.progress !== false,
    ...(raw.centralStore === undefined ? {} : { centralStore: raw.centralStore }),
    hold: raw.hold === true,
  }
  const { summary, exitCode, error } = await runSim(opts)
  if (summary === undefined && opts.json) {
    // scripts parse the last line: say what happened there too
    process.stdout.write(`${JSON.stringify({ error: error ?? 'interrupted', exitCode, seed: opts.seed })}\n`)
  }
  if (summary !== undefined) {
    if (opts.json) {
      process.stderr.write(`${formatSummary(summary)}\n`)
      process.stdout.write(`${JSON.stringify(summary)}\n`)
    } else {
      process.stdout.write(`${formatSummary(summary)}\n`)
    }
  }
  return exitCode
}

interface Outcome {
  p: PlannedPayment
  response?: PaymentResponse
  error?: string
  latencyMs: number
  /** the driver's own loop delay while the tap was outstanding (pos-lag.ts) */
  posLagMs?: number
}

interface TerminalProc {
  id: string
  index: number
  child: NodeChild<TerminalReady>
  proxy: LinkProxy
  client?: TerminalClient
  view: TerminalView
  publicKey: Uint8Array
  dataDir: string
  polling: boolean
  /** its mesh knows its own history (false while a fresh ledger has not learned it from a quorum) */
  historyKnown?: boolean
  /** dashboard URL with its login token */
  dashboard?: string
}

interface TerminalReady extends Record<string, unknown> {
  ready: true
  id: string
  peerId: string
  multiaddrs: string[]
  api: string
  token: string
}

interface CentralReady extends Record<string, unknown> {
  ready: true
  url: string
}

interface CentralPayment {
  paymentId: string
  status: string
  declineCode?: string
  syncDeclineCode?: string
  mode?: string
}

/** Run the whole simulation. Never throws for a failed run: returns what it could gather. */
export async function runSim(
  opts: SimOptions,
): Promise<{ summary?: SimSummary; exitCode: number; error?: string }> {
  const t0 = Date.now()
  const say = (msg: string): void => {
    const line = `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`
    if (progress !== undefined) progress.note(line)
    else process.stderr.write(`${line}\n`)
  }
  const parent = resolve(opts.dir ?? tmpdir())
  await mkdir(parent, { recursive: true })
  const root = await mkdtemp(join(parent, 'nullmesh-sim-'))
  const logs = join(root, 'logs')
  await mkdir(logs)
  const venueDir = join(root, 'venue')
  const children: NodeChild[] = []
  const terminals: TerminalProc[] = []
  const crashes: string[] = []
  let central: NodeChild<CentralReady> | undefined
  let progress: Progress | undefined
  let interrupted = false
  const abort = new AbortController()
  // --hold: the first Ctrl-C ends the hold (a clean stop and the summary), not the run
  let endHold: (() => void) | undefined
  let holdEndedAt = 0

  const onUnexpectedExit = (child: NodeChild): void => {
    crashes.push(`${child.name} (${describeExit(child.exit!)})`)
    if (!interrupted)
      say(`!! ${child.name} exited unexpectedly (${describeExit(child.exit!)})${child.tail(12)}`)
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    if (endHold !== undefined) {
      say(`sim: ${signal}: stopping the venue (again to interrupt)`)
      endHold()
      endHold = undefined
      holdEndedAt = Date.now()
      return
    }
    // one Ctrl-C can arrive twice (a wrapper forwarding it to the process group): not a second press
    if (Date.now() - holdEndedAt < 1_000) return
    if (interrupted) {
      // second Ctrl-C: no more patience
      for (const c of children) c.kill()
      if (!opts.keep) rmSync(root, { recursive: true, force: true })
      process.stderr.write(
        `\nsim: ${signal} again: killed ${children.length} process(es)${opts.keep ? `, kept ${root}` : ''}\n`,
      )
      process.exit(130)
    }
    interrupted = true
    abort.abort()
    for (const c of children) c.stopping = true
    say(`sim: ${signal}: stopping the load and ${children.length} process(es)… (again to kill)`)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  const stopAll = async (): Promise<void> => {
    await Promise.all(terminals.map((t) => t.child.stop()))
    if (central !== undefined) await central.stop()
    await Promise.all(terminals.map((t) => t.proxy.close()))
  }

  let summary: SimSummary | undefined
  let failure: string | undefined
  try {
    say(
      `sim: ${opts.terminals} terminals, ${opts.cards} cards, ${opts.payments} payments at ${opts.rate}/s, scenario ${opts.scenario}, seed ${opts.seed}`,
    )
    say(`sim: working in ${root}`)

    // ── the venue ──
    let bundle: VenueBundle = await createVenueBundle({
      outDir: venueDir,
      terminals: opts.terminals,
      // a shared PostgreSQL store keeps every run: each run is its own venue there
      venueId: opts.centralStore === undefined ? 'sim-venue' : `sim-venue-${randomBytes(4).toString('hex')}`,
      policy: {
        blockedBins: [SIM_BLOCKED_BIN],
        ...(opts.groupSize === undefined ? {} : { barrier: { groupSize: opts.groupSize } }),
      },
    })
    const currency = Object.keys(bundle.policy.currencies)[0]!
    const limits = bundle.policy.currencies[currency]!
    const plan = makePlan({
      seed: opts.seed,
      scenario: opts.scenario,
      terminals: opts.terminals,
      cards: opts.cards,
      payments: opts.payments,
      rate: opts.rate,
      offline: opts.offline,
      currency,
      floorLimitMinor: limits.floorLimitMinor,
      cardCapMinor: limits.cardCapMinor,
      cardCapCount: bundle.policy.cardCapCount,
      blockedBin: SIM_BLOCKED_BIN,
    })
    const cardKey = (token: string): string => toHex(computeCardKey(bundle.hashingKey, token))
    const denied = plan.cards.filter((c) => c.kind === 'denylisted').map((c) => cardKey(c.token))
    if (denied.length > 0) {
      // the operator deny-lists some cards (card keys only: the policy never holds a card number)
      bundle = await updateVenuePolicy(venueDir, (p) => ({ ...p, denylistCardKeys: denied }), {
        bumpVersion: false,
      })
    }
    // one ordinary card the issuer knows as lost or stolen: its offline approvals fail at settlement
    const lostCard = plan.cards.find((c) => c.kind === 'ordinary')
    const issuerArgs = ['--issuer-seed', opts.seed, '--decline-rate', String(SIM_ISSUER_DECLINE_RATE)]
    if (lostCard !== undefined) issuerArgs.push('--lost-or-stolen', cardKey(lostCard.token))

    // ── central ── (the admin token opens its dashboard)
    const adminToken = randomBytes(18).toString('base64url')
    const centralChild = new NodeChild<CentralReady>(
      {
        name: 'central',
        args: [
          'central',
          '--data',
          join(root, 'central'),
          ...(opts.centralStore === undefined ? [] : ['--store', opts.centralStore]),
          '--listen',
          '127.0.0.1:0',
          '--venues',
          venueDir,
          ...issuerArgs,
          '--admin-token',
          adminToken,
          '--stop-on-stdin-end',
        ],
        logPath: join(logs, 'central.log'),
        readyTimeoutMs: CENTRAL_READY_MS,
      },
      onUnexpectedExit,
    )
    central = centralChild
    children.push(centralChild)
    const centralUrl = (await raceAbort(centralChild.ready, abort.signal)).url
    const centralPort = Number(new URL(centralUrl).port)

    // ── terminals, one after the other: each is given the ones before it as static peers ──
    const { TerminalClient } = await import('@nullmesh/client')
    const initialLinks = plan.steps.filter((s) => s.kind === 'link' && s.atMs === 0)
    // each terminal on its own loopback address, all on one port: every terminal is given every
    // other's address before it starts, as mDNS would tell it on a LAN (../loopback.ts)
    const meshPort = SIM_BASE_PORT + randomInt(SIM_PORT_SPAN)
    const everyone = bundle.roster.map(
      (r, i) => `/ip4/${loopbackHost(i)}/tcp/${meshPort}/p2p/${peerIdFromEd25519(r.publicKey)}`,
    )
    for (let i = 0; i < opts.terminals; i++) {
      const entry = bundle.roster[i]!
      const proxy = new LinkProxy('127.0.0.1', centralPort)
      await proxy.listen()
      for (const s of initialLinks) if (s.kind === 'link' && s.terminal === i) proxy.setUp(s.up)
      const dataDir = join(root, entry.id)
      const token = randomBytes(18).toString('base64url')
      const args = [
        'terminal',
        '--venue',
        venueDir,
        '--id',
        entry.id,
        '--data',
        dataDir,
        '--listen',
        // its own loopback address: one host per terminal, as on a LAN (../loopback.ts)
        `/ip4/${loopbackHost(i)}/tcp/${meshPort}`,
        '--api',
        '127.0.0.1:0',
        '--discovery',
        'static',
        '--central',
        `http://127.0.0.1:${proxy.port}`,
        '--token',
        token,
        '--stop-on-stdin-end',
      ]
      if (opts.terminals > 1) args.push('--peers', ...everyone.filter((_, j) => j !== i))
      const child = new NodeChild<TerminalReady>(
        {
          name: entry.id,
          args,
          logPath: join(logs, `${entry.id}.log`),
          readyTimeoutMs: TERMINAL_READY_BASE_MS + TERMINAL_READY_PER_RUNNING_MS * i,
        },
        onUnexpectedExit,
      )
      children.push(child)
      const t: TerminalProc = {
        id: entry.id,
        index: i,
        child,
        proxy,
        view: { id: entry.id, partitioned: false, alive: true },
        publicKey: entry.publicKey,
        dataDir,
        polling: false,
      }
      terminals.push(t)
      const waitingSince = Date.now()
      const waiting = setInterval(
        () =>
          say(
            `sim: waiting for ${entry.id} to start (${Math.round((Date.now() - waitingSince) / 1000)} s, ` +
              `${i} running, load ${loadavg()[0]?.toFixed(1)})`,
          ),
        MESH_PROGRESS_MS * 3,
      )
      waiting.unref()
      const ready = await raceAbort(child.ready, abort.signal).finally(() => clearInterval(waiting))
      t.client = new TerminalClient({ url: ready.api, token: ready.token, timeoutMs: 15_000 })
      t.dashboard = dashboardUrl(ready.api, ready.token)
      if (opts.terminals > 5 && (i + 1) % 5 === 0 && i + 1 < opts.terminals)
        say(`sim: ${i + 1}/${opts.terminals} terminals started (load ${loadavg()[0]?.toFixed(1)})`)
    }

    // ── dashboards: one line each, the URL signs the browser in ──
    const dashboards = (): void => {
      say(`sim: central dashboard ${dashboardUrl(centralUrl, adminToken)}`)
      for (const t of terminals) {
        if (t.dashboard !== undefined)
          say(
            `sim: ${t.id} dashboard ${t.dashboard} (pid ${t.child.pid}: kill -USR1 cuts it from the mesh, -USR2 heals)`,
          )
      }
    }
    dashboards()

    // ── live view ──
    const stats: LiveStats = {
      phase: 'meshing',
      planned: plan.payments.length,
      sent: 0,
      answered: 0,
      approvedOnline: 0,
      approvedOffline: 0,
      declined: 0,
      errors: 0,
      barrier: hdr.build({
        lowestDiscernibleValue: 1,
        highestTrackableValue: 600_000,
        numberOfSignificantValueDigits: 3,
      }),
      terminals: terminals.map((t) => t.view),
      startedAt: Date.now(),
    }
    progress = new Progress(stats, opts.progress)
    const poll = async (): Promise<void> => {
      await Promise.all(
        terminals.map(async (t) => {
          if (t.polling || t.client === undefined) return
          t.view.alive = t.child.running
          if (!t.child.running) return
          t.polling = true
          try {
            const s = await t.client.status({ timeoutMs: 2_000 })
            t.view.mode = s.mesh.mode
            t.view.peers = s.mesh.peers
            t.historyKnown = (s.mesh as { historyKnown?: boolean }).historyKnown !== false
            t.view.online = s.online
            t.view.queue = s.queue.count
            t.view.onlineUnresolved = (s as { onlineUnresolved?: number }).onlineUnresolved ?? 0
            const g = (s.mesh as { groupsWithoutQuorum?: number }).groupsWithoutQuorum ?? 0
            t.view.groupsWithoutQuorum = Math.max(t.view.groupsWithoutQuorum ?? 0, g)
            const d = s.decisions
            if (d !== undefined) {
              // a restart starts the count again
              if (d.overBudget < (t.view.overBudget ?? 0))
                t.view.overBudgetBefore = (t.view.overBudgetBefore ?? 0) + (t.view.overBudget ?? 0)
              t.view.overBudget = d.overBudget
              t.view.maxDecisionMs = Math.max(t.view.maxDecisionMs ?? 0, d.maxMs)
            }
          } catch {
            t.view.mode = '?'
          } finally {
            t.polling = false
          }
        }),
      )
    }
    const poller = setInterval(() => void poll(), 500)
    poller.unref()
    progress.start()

    // ── wait for the mesh to form ──
    const meshTimeoutMs = MESH_READY_BASE_MS + MESH_READY_PER_TERMINAL_MS * opts.terminals
    const meshDeadline = Date.now() + meshTimeoutMs
    let nextProgress = Date.now() + MESH_PROGRESS_MS
    const meshLine = (): string => {
      const peers = terminals.map((t) => t.view.peers ?? 0).sort((a, b) => a - b)
      return (
        `${terminals.filter((t) => t.view.mode === 'quorum').length}/${opts.terminals} in quorum mode, ` +
        `${terminals.filter((t) => t.historyKnown === true).length} know their history, ` +
        `ready peers min ${peers[0]} / median ${peers[Math.floor(peers.length / 2)]} of ${opts.terminals - 1}`
      )
    }
    while (!abort.signal.aborted) {
      await poll()
      // a terminal keeps ~SIM_READY_PEERS connections and dials a card's group on demand (no
      // full mesh past ~15 terminals): formed = all in quorum mode with that many ready peers
      // ...and each knows its own history: a fresh venue's terminals start with empty ledgers and
      // approve nothing until each has caught up with N − q + 1 peers (docs/protocol.md, "Lost disks")
      const formed = terminals.every(
        (t) =>
          t.view.mode === 'quorum' &&
          t.historyKnown === true &&
          (t.view.peers ?? 0) >= Math.min(opts.terminals - 1, SIM_READY_PEERS),
      )
      if (formed) break
      if (Date.now() > meshDeadline) {
        say(
          `sim: the mesh did not fully form within ${meshTimeoutMs / 1000} s (${meshLine()}); starting anyway`,
        )
        break
      }
      if (Date.now() >= nextProgress) {
        nextProgress = Date.now() + MESH_PROGRESS_MS
        say(`sim: forming the mesh: ${meshLine()} (load ${loadavg()[0]?.toFixed(1)})`)
      }
      await sleep(150)
    }
    say(`sim: mesh: ${meshLine()}`)

    // ── the load ──
    say(
      `sim: mesh ready (${terminals.map((t) => `${t.id} ${t.view.mode ?? '?'}`).join(', ')}); load starts` +
        (opts.offline > 0 ? `, without central for the first ${Math.round(opts.offline * 100)} %` : ''),
    )
    stats.phase = 'load'
    stats.startedAt = Date.now()
    const outcomes: Outcome[] = []
    const posLag = createPosLag()
    const byN = new Map<number, Promise<Outcome>>()
    const retries: Array<{ of: number; response?: PaymentResponse; error?: string }> = []
    const inFlight = new Set<Promise<unknown>>()
    const track = <T>(promise: Promise<T>): Promise<T> => {
      inFlight.add(promise)
      void promise.finally(() => inFlight.delete(promise))
      return promise
    }
    posLag.start()
    const send = async (p: PlannedPayment): Promise<Outcome> => {
      const t = terminals[p.terminal]!
      const start = performance.now()
      const lag = posLag.begin()
      stats.sent++
      let outcome: Outcome
      try {
        const response = await t.client!.pay(p.request)
        outcome = { p, response, latencyMs: performance.now() - start, posLagMs: posLag.end(lag) }
        if (response.status === 'approved_online') stats.approvedOnline++
        else if (response.status === 'approved_offline') stats.approvedOffline++
        else stats.declined++
        if (response.barrier !== undefined)
          stats.barrier.recordValue(Math.max(0, Math.round(response.barrier.ms)))
      } catch (err: unknown) {
        stats.errors++
        const e = err as { code?: unknown; message?: unknown }
        outcome = {
          p,
          error: typeof e?.code === 'string' ? e.code : String(e?.message ?? err),
          latencyMs: performance.now() - start,
          posLagMs: posLag.end(lag),
        }
      }
      stats.answered++
      outcomes.push(outcome)
      return outcome
    }
    const retry = async (of: number): Promise<void> => {
      const first = await byN.get(of)
      if (first === undefined) return
      const t = terminals[first.p.terminal]!
      try {
        const response = await t.client!.pay(first.p.request)
        retries.push({ of, response })
      } catch (err: unknown) {
        retries.push({ of, error: String((err as { code?: unknown })?.code ?? err) })
      }
    }
    const partitioned = new Set<number>()
    for (const step of plan.steps) {
      if (abort.signal.aborted) break
      const wait = stats.startedAt + step.atMs - Date.now()
      if (wait > 0) {
        try {
          await sleep(wait, undefined, { signal: abort.signal })
        } catch {
          break
        }
      }
      switch (step.kind) {
        case 'pay':
          while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight)
          for (const p of step.payments) byN.set(p.n, track(send(p)))
          break
        case 'retry':
          track(retry(step.of))
          break
        case 'link': {
          const t = terminals[step.terminal]!
          if (t.proxy.up !== step.up) say(`sim: ${t.id} ${step.up ? 'regains' : 'loses'} its link to central`)
          t.proxy.setUp(step.up)
          break
        }
        case 'partition': {
          const t = terminals[step.terminal]!
          t.child.signal(step.on ? 'SIGUSR1' : 'SIGUSR2')
          t.view.partitioned = step.on
          if (step.on) partitioned.add(step.terminal)
          else partitioned.delete(step.terminal)
          say(
            `sim: ${t.id} ${step.on ? 'cut off from the other terminals (partition)' : 'rejoins the mesh (partition healed)'}`,
          )
          break
        }
      }
    }
    await Promise.allSettled([...inFlight])
    const loadMs = Date.now() - stats.startedAt
    if (!abort.signal.aborted)
      say(
        `sim: load done (${outcomes.length} payments); healing, restoring links, waiting for sync and settlement`,
      )

    // ── heal everything and wait for sync and settlement ──
    for (const i of partitioned) {
      terminals[i]!.child.signal('SIGUSR2')
      terminals[i]!.view.partitioned = false
    }
    for (const t of terminals) t.proxy.setUp(true)
    posLag.stop()
    stats.phase = 'settling'
    const approvedIds = new Set<string>()
    for (const o of outcomes)
      if (o.response?.status.startsWith('approved') === true) approvedIds.add(o.response.paymentId)
    let centralView = new Map<string, CentralPayment>()
    let syncTimedOut = false
    const settleDeadline = Date.now() + opts.settleTimeoutMs
    while (!abort.signal.aborted) {
      await poll()
      centralView = await centralPayments(centralUrl, bundle.venueId, approvedIds).catch(() => centralView)
      const queued = terminals.reduce((s, t) => s + (t.child.running ? (t.view.queue ?? 0) : 0), 0)
      const allOnline = terminals.every((t) => !t.child.running || t.view.online === true)
      const missing = [...approvedIds].filter((id) => !isCommitted(centralView.get(id))).length
      const pending = [...centralView.values()].filter(
        (p) => p.status === 'queued' || p.status === 'processing',
      ).length
      // an online attempt central may have authorised while its terminal declined is voided by the
      // terminal's next sync round: settled means none is left
      const unresolved = terminals.reduce(
        (s, t) => s + (t.child.running ? (t.view.onlineUnresolved ?? 0) : 0),
        0,
      )
      if (allOnline && queued === 0 && missing === 0 && pending === 0 && unresolved === 0) break
      if (Date.now() > settleDeadline) {
        syncTimedOut = true
        say(
          `sim: sync not complete after ${opts.settleTimeoutMs} ms (terminal queues ${queued}, missing at central ${missing}, settling ${pending}, online attempts to void ${unresolved})`,
        )
        break
      }
      await sleep(300)
    }
    clearInterval(poller)
    progress.stop()
    if (!syncTimedOut && !abort.signal.aborted)
      say('sim: sync complete: terminal queues empty, every approval at central and settled')

    if (opts.hold && !abort.signal.aborted) {
      say(
        'sim: holding the venue: the dashboards stay up, the terminals keep taking payments; Ctrl-C stops it',
      )
      dashboards()
      stats.phase = 'holding'
      await new Promise<void>((resolve) => {
        endHold = resolve
      })
    }

    let centralSummary: CentralVenueSummary | undefined
    if (!abort.signal.aborted) {
      centralSummary = await getJson<CentralVenueSummary>(
        `${centralUrl}/v1/venues/${bundle.venueId}/summary`,
      ).catch(() => undefined)
    }

    // ── stop every process, then read the ledgers they leave behind ──
    stats.phase = 'stopping'
    await stopAll()
    if (interrupted) throw new Interrupted()

    const union = new LedgerUnion()
    const perLedger: Record<string, number> = {}
    for (const t of terminals) {
      const ledger = createLedger({ path: join(t.dataDir, 'ledger') })
      try {
        await ledger.open()
        let n = 0
        for await (const ev of ledger.events()) {
          n++
          union.add(ev)
        }
        perLedger[t.id] = n
      } catch (err: unknown) {
        perLedger[t.id] = -1
        say(`sim: cannot read the ledger of ${t.id}: ${err instanceof Error ? err.message : String(err)}`)
      } finally {
        await ledger.close().catch(() => {})
      }
    }

    if (opts.keep) {
      // for digging into a run: every request and answer, and central's view of the venue's payments
      const lines = outcomes
        .sort((a, b) => a.p.n - b.p.n)
        .map((o) =>
          JSON.stringify({
            n: o.p.n,
            kind: o.p.kind,
            terminal: terminals[o.p.terminal]!.id,
            group: o.p.group,
            replayOf: o.p.replayOf,
            request: o.p.request,
            response: o.response,
            error: o.error,
            latencyMs: Math.round(o.latencyMs),
            posLagMs: o.posLagMs,
          }),
        )
      await writeFile(join(root, 'responses.jsonl'), `${lines.join('\n')}\n`)
      await writeFile(
        join(root, 'central-payments.json'),
        `${JSON.stringify([...centralView.values()], null, 1)}\n`,
      )
    }

    summary = buildSummary({
      opts,
      plan,
      bundle,
      currency,
      outcomes,
      retries,
      union,
      perLedger,
      centralView,
      centralSummary,
      approvedIds,
      terminals,
      central: centralChild,
      crashes,
      syncTimedOut,
      loadMs,
      t0,
      root,
    })
  } catch (err: unknown) {
    if (!(err instanceof Interrupted)) failure = err instanceof Error ? err.message : String(err)
    progress?.stop()
    await stopAll().catch(() => {})
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    if (!opts.keep) await rm(root, { recursive: true, force: true, maxRetries: 3 }).catch(() => {})
  }

  if (interrupted) {
    process.stderr.write(
      `sim: interrupted; ${children.length} process(es) stopped${opts.keep ? `, kept ${root}` : `, removed ${root}`}\n`,
    )
    return { exitCode: 130 }
  }
  if (failure !== undefined || summary === undefined) {
    process.stderr.write(`sim: failed: ${failure ?? 'no summary'}${opts.keep ? ` (kept ${root})` : ''}\n`)
    return { exitCode: 1, error: (failure ?? 'no summary').split('\n')[0]! }
  }
  const exitCode = summary.crashed.length > 0 ? 1 : summary.violations.length > 0 ? 3 : 0
  return { summary, exitCode }
}

class Interrupted extends Error {}

/** The dashboard URL that opens the page directly: it carries the token once, then a cookie does. */
function dashboardUrl(base: string, token: string): string {
  return `${base}/dashboard?token=${encodeURIComponent(token)}`
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Interrupted())
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Interrupted())
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

interface CentralVenueSummary {
  payments: number
  byStatus: Record<string, number>
  settled: { completed: number; failed: number }
  failedByCode: Record<string, number>
  partitionLosses: number
  partitionLossMinor: Record<string, number>
  offlineLossMinor: Record<string, number>
}

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5_000) })
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`)
  return (await r.json()) as T
}

function isCommitted(p: CentralPayment | undefined): boolean {
  return (
    p !== undefined &&
    p.status !== 'created' &&
    p.status !== 'released' &&
    p.status !== 'voided' &&
    p.status !== 'abandoned'
  )
}

/**
 * Central's view of the venue's payments: the report lists (at most 1000 per status), then a
 * direct lookup of each approved payment the lists did not show.
 */
async function centralPayments(
  url: string,
  venue: string,
  wanted: Set<string>,
): Promise<Map<string, CentralPayment>> {
  const out = new Map<string, CentralPayment>()
  for (const status of PAYMENT_STATUSES) {
    const r = await getJson<{ payments: CentralPayment[] }>(
      `${url}/v1/payments?venue=${encodeURIComponent(venue)}&status=${status}&limit=1000`,
    )
    for (const p of r.payments) out.set(p.paymentId, p)
  }
  const missing = [...wanted].filter((id) => !isCommitted(out.get(id)) && /^[0-9a-f]{64}$/.test(id))
  // the listings are newest first and capped: ask for the rest by id, as many as central takes at once
  for (let i = 0; i < missing.length; i += MAX_STATUS_IDS) {
    try {
      const r = await fetch(`${url}/v1/payments/status`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ids: missing.slice(i, i + MAX_STATUS_IDS) }),
        signal: AbortSignal.timeout(5_000),
      })
      if (!r.ok) break
      for (const p of ((await r.json()) as { payments: CentralPayment[] }).payments) out.set(p.paymentId, p)
    } catch {
      break // not reachable: the rest stays missing until the next look
    }
  }
  return out
}

interface SummaryInput {
  opts: SimOptions
  plan: Plan
  bundle: VenueBundle
  currency: string
  outcomes: Outcome[]
  retries: Array<{ of: number; response?: PaymentResponse; error?: string }>
  union: LedgerUnion
  perLedger: Record<string, number>
  centralView: Map<string, CentralPayment>
  centralSummary: CentralVenueSummary | undefined
  approvedIds: Set<string>
  terminals: TerminalProc[]
  central: NodeChild
  crashes: string[]
  syncTimedOut: boolean
  loadMs: number
  t0: number
  root: string
}

function buildSummary(x: SummaryInput): SimSummary {
  const { opts, bundle, currency, outcomes } = x
  const policy = bundle.policy
  const declines: Record<string, number> = {}
  const byStatus: Record<string, number> = {}
  const byMode: Record<string, number> = {}
  const errors: Record<string, number> = {}
  const barrier = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000,
    numberOfSignificantValueDigits: 3,
  })
  const latency = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000,
    numberOfSignificantValueDigits: 3,
  })
  let approved = 0
  let declined = 0
  let proofBytesMax = 0
  let proofsInvalid = 0
  const groupApprovals = new Map<number, number>()
  let replays = 0
  let replaysApproved = 0
  const byKind: Record<string, { payments: number; approved: number }> = {}
  for (const o of outcomes) {
    // generated kind, or for ordinary payments the kind of card (deny-listed, blocked BIN)
    const kind = o.p.kind === 'ordinary' ? (x.plan.cards[o.p.card]?.kind ?? 'ordinary') : o.p.kind
    if (byKind[kind] === undefined) byKind[kind] = { payments: 0, approved: 0 }
    const k = byKind[kind]
    k.payments++
    latency.recordValue(Math.max(0, Math.round(o.latencyMs)))
    const r = o.response
    if (r === undefined) {
      errors[o.error ?? 'unknown'] = (errors[o.error ?? 'unknown'] ?? 0) + 1
      continue
    }
    byStatus[r.status] = (byStatus[r.status] ?? 0) + 1
    byMode[r.mode] = (byMode[r.mode] ?? 0) + 1
    const ok = r.status === 'approved_online' || r.status === 'approved_offline'
    if (ok) {
      approved++
      k.approved++
    } else {
      declined++
      const code = r.declineCode ?? 'none'
      declines[code] = (declines[code] ?? 0) + 1
    }
    if (r.barrier !== undefined) barrier.recordValue(Math.max(0, Math.round(r.barrier.ms)))
    // every proof must verify with the deciding terminal's public key, for this payment's nullifier
    let bytes: Uint8Array | undefined
    try {
      bytes = fromBase64url(r.proof)
    } catch {
      bytes = undefined
    }
    if (bytes !== undefined) proofBytesMax = Math.max(proofBytesMax, bytes.byteLength)
    const signer =
      bundle.roster.find((e) => e.id === r.terminal)?.publicKey ?? x.terminals[o.p.terminal]!.publicKey
    let valid = false
    try {
      valid = bytes !== undefined && verifyProof(bytes, fromHex(r.nullifier), signer).ok
    } catch {
      valid = false
    }
    if (!valid) proofsInvalid++
    if (o.p.group !== undefined)
      groupApprovals.set(o.p.group, (groupApprovals.get(o.p.group) ?? 0) + (ok ? 1 : 0))
    if (o.p.kind === 'replay') {
      replays++
      if (ok) replaysApproved++
    }
  }
  // idempotency: a retry must return the first decision
  let retryMismatches = 0
  const firstByN = new Map(outcomes.map((o) => [o.p.n, o]))
  for (const r of x.retries) {
    const first = firstByN.get(r.of)?.response
    if (first === undefined || r.response === undefined) continue
    if (r.response.paymentId !== first.paymentId || r.response.status !== first.status) retryMismatches++
  }

  const caps: Record<string, number> = {}
  for (const [cur, l] of Object.entries(policy.currencies)) caps[cur] = l.cardCapMinor
  const commits = [...x.union.commits.values()]
  const overCap = overCapCards(commits, caps, policy.cardWindowMs)
  const overCount = overCountCards(commits, policy.cardCapCount, policy.cardWindowMs)
  const dups = duplicateApprovals(commits)
  const modes = x.union.commitsByMode()

  const lostIds = [...x.approvedIds].filter((id) => !isCommitted(x.centralView.get(id)))
  let completed = 0
  let failed = 0
  const failedByCode: Record<string, number> = {}
  for (const p of x.centralView.values()) {
    if (p.status === 'completed') completed++
    if (p.status === 'failed') {
      failed++
      const code = p.syncDeclineCode ?? p.declineCode ?? 'unknown'
      failedByCode[code] = (failedByCode[code] ?? 0) + 1
    }
  }
  if (x.centralSummary !== undefined) {
    completed = x.centralSummary.settled.completed
    failed = x.centralSummary.settled.failed
  }

  const crashed = [...x.crashes]
  for (const c of [x.central, ...x.terminals.map((t) => t.child)]) {
    if (c.crashed && !crashed.some((s) => s.startsWith(`${c.name} `)))
      crashed.push(
        `${c.name} (${c.killed ? 'needed SIGKILL' : describeExit(c.exit ?? { code: null, signal: null })})`,
      )
  }
  const groups = [...groupApprovals.values()]
  const summary: SimSummary = {
    scenario: opts.scenario,
    terminals: opts.terminals,
    cards: opts.cards,
    payments: outcomes.length,
    approved,
    declined,
    errors: Object.values(errors).reduce((s, n) => s + n, 0),
    errorsByCode: errors,
    byStatus,
    byMode,
    byKind,
    declines,
    overCapCards: overCap.cards,
    maxOverCapMinor: overCap.maxOverMinor,
    maxCardWindowTotalMinor: overCap.maxWindowTotalMinor,
    cardCapMinor: policy.currencies[currency]!.cardCapMinor,
    overCountCards: overCount.cards,
    maxCardWindowCount: overCount.maxWindowCount,
    cardCapCount: policy.cardCapCount,
    duplicateApprovals: dups.count,
    duplicateApprovedMinor: dups.extraMinor,
    duplicatesWithoutIsolated: dups.withoutIsolated,
    barrierMs: {
      p50: barrier.totalCount > 0 ? barrier.getValueAtPercentile(50) : 0,
      p99: barrier.totalCount > 0 ? barrier.getValueAtPercentile(99) : 0,
      max: barrier.totalCount > 0 ? barrier.maxValue : 0,
      count: barrier.totalCount,
    },
    latencyMs: {
      p50: latency.totalCount > 0 ? latency.getValueAtPercentile(50) : 0,
      p99: latency.totalCount > 0 ? latency.getValueAtPercentile(99) : 0,
    },
    maxDecisionMs: Math.ceil(outcomes.reduce((m, o) => Math.max(m, o.latencyMs), 0)),
    overBudgetDecisions: outcomes.filter((o) => o.latencyMs > policy.tapBudgetMs).length,
    maxPosLagMs: outcomes.reduce((m, o) => Math.max(m, o.posLagMs ?? 0), 0),
    overBudgetWithinPosLag: outcomes.filter(
      (o) => o.latencyMs > policy.tapBudgetMs && o.latencyMs - (o.posLagMs ?? 0) <= policy.tapBudgetMs,
    ).length,
    maxTerminalDecisionMs: Math.ceil(x.terminals.reduce((m, t) => Math.max(m, t.view.maxDecisionMs ?? 0), 0)),
    overBudgetInTerminal: x.terminals.reduce(
      (n, t) => n + (t.view.overBudget ?? 0) + (t.view.overBudgetBefore ?? 0),
      0,
    ),
    tapBudgetMs: policy.tapBudgetMs,
    proofBytesMax,
    proofsInvalid,
    isolatedApprovals: modes.isolated,
    isolatedExposureMinor: isolatedApprovedMinor(commits, currency, (c) =>
      unheldOnlineExposure(policy, c.currency, c.amountMinor),
    ),
    commitsByMode: modes,
    exposureBoundMinor: partitionExposureBound(policy, bundle.roster.length, currency),
    currency,
    groupsWithoutQuorum: Object.fromEntries(
      x.terminals.map((t) => [t.view.id, t.view.groupsWithoutQuorum ?? 0]).filter(([, n]) => n !== 0),
    ),
    doubleTaps: {
      groups: groups.length,
      maxApprovalsPerGroup: groups.length === 0 ? 0 : Math.max(...groups),
    },
    replays: { total: replays, approved: replaysApproved },
    retries: { total: x.retries.length, mismatches: retryMismatches },
    settled: { completed, failed },
    failedByCode: x.centralSummary?.failedByCode ?? failedByCode,
    partitionLosses: x.centralSummary?.partitionLosses ?? 0,
    partitionLossMinor: x.centralSummary?.partitionLossMinor[currency] ?? 0,
    lost: lostIds.length,
    settledNotApproved: settledNotApproved(x.centralView.values(), x.approvedIds),
    syncTimedOut: x.syncTimedOut,
    ledgers: { perTerminal: x.perLedger, unionEvents: x.union.eventIds.size, byType: { ...x.union.byType } },
    crashed,
    pids: Object.fromEntries(
      [x.central, ...x.terminals.map((t) => t.child)].map((c) => [c.name, c.pid ?? null]),
    ),
    violations: [],
    seed: /^\d+$/.test(opts.seed) && Number.isSafeInteger(Number(opts.seed)) ? Number(opts.seed) : opts.seed,
    loadMs: x.loadMs,
    durationMs: Date.now() - x.t0,
    dataDir: opts.keep ? x.root : null,
  }
  summary.violations = violations(summary)
  return summary
}
