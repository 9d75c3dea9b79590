import type { VenuePolicy } from '@nullmesh/policy'
import { AimedFaults } from './aimed.js'
import { Central } from './central.js'
import { Checker } from './checker.js'
import {
  DRAIN_MS,
  emptyCost,
  type FaultName,
  type SimCost,
  type SimOptions,
  type SimResult,
  simPolicy,
  VENUE,
  type Violation,
} from './config.js'
import { type SignedEvent, setDecodeMemo, setSignatureScheme, setVerifyMemo, toHex } from './deps.js'
import { Disk } from './disk.js'
import { Faults } from './faults.js'
import { Network } from './network.js'
import { PointOfSale } from './pos.js'
import { Queue, Rng } from './rng.js'
import { simSignatures } from './signatures.js'
import { Terminals } from './terminal.js'
import { Trace } from './trace.js'
import { type Venue, venueOf } from './venue.js'
import { Workload } from './workload.js'
import { type Ev, type EvInit, type Node, Stop } from './world.js'

/**
 * The deterministic simulator's driver: the shared state of one seed's world, its fault mix, the
 * event loop (one queue event a step; handle() dispatches to the roles), the liveness phase.
 * Roles: network.ts, disk.ts, terminal.ts, pos.ts, central.ts, workload.ts, faults.ts,
 * checker.ts (the invariants), trace.ts. No real time, no Math.random: a seed replays exactly.
 */
export {
  ALL_MUTATIONS,
  type AnyMutation,
  emptyCost,
  FAULTS,
  type FaultName,
  type SimCost,
  type SimDisk,
  type SimOptions,
  type SimResult,
  simPolicy,
  type Violation,
} from './config.js'

export function runSeed(opts: SimOptions): SimResult {
  setVerifyMemo(500_000)
  setDecodeMemo(true)
  // the simulated signature scheme unless asked for Ed25519 (signatures.ts; same steps and results)
  setSignatureScheme(opts.realCrypto === true ? undefined : simSignatures)
  // the cores throw (and catch) an error for every duplicate they are sent: no stack traces here
  const stackTraceLimit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new Sim(opts).run()
  } finally {
    Error.stackTraceLimit = stackTraceLimit
    setDecodeMemo(false)
    setSignatureScheme(undefined)
  }
}

/** the driver: the world's shared state, the event loop and the liveness phase; each role is its own file */
export class Sim {
  // the roles, each in its own file
  readonly net: Network
  readonly central: Central
  readonly check: Checker
  readonly terminals: Terminals
  readonly pos: PointOfSale
  readonly workload: Workload
  readonly faults: Faults
  /** fault points aimed at a lost disk's refill (aimed.ts), each on its own stream */
  readonly aim: AimedFaults
  readonly rng: Rng

  readonly wl: Rng

  /**
   * Fault points aimed at rare paths draw from their own stream, seeded apart: adding one does not
   * move the main streams (every pinned seed keeps its schedule until the point fires).
   */
  readonly aimed: Rng

  readonly policy: VenuePolicy

  readonly venue: Venue

  readonly q = new Queue<Ev>()

  readonly nodes: Node[] = []

  readonly n: number

  now = 0

  step = 0

  seqNo = 0

  phase: 'safety' | 'liveness' = 'safety'

  readonly trace: Trace

  readonly mix: Record<string, number> = {}

  readonly faultCounts: Record<string, number> = {}

  payments = 0

  approvalsN = 0

  readonly cost: SimCost = emptyCost()

  readonly byBytes = new WeakMap<Uint8Array, SignedEvent>()

  livenessApprovals = 0
  /** consecutive offline declines `venue_cap_exceeded` in the liveness phase, up to the latest */
  livenessCapStreak = 0

  constructor(readonly opts: SimOptions) {
    this.policy = simPolicy(opts.terminals)
    this.n = opts.terminals
    this.rng = new Rng(opts.seed)
    this.aimed = new Rng((opts.seed ^ 0x6d61726b) >>> 0)
    this.venue = venueOf(this.n)
    this.trace = new Trace(opts.trace === true)
    this.net = new Network(this)
    this.central = new Central(this)
    this.check = new Checker(this)
    this.terminals = new Terminals(this)
    this.pos = new PointOfSale(this)
    this.workload = new Workload(this)
    this.faults = new Faults(this)
    this.aim = new AimedFaults(this)
    // swarm testing: each seed draws its own mix; a fault not selected, or not drawn, is off
    const f = (name: FaultName, lo: number, hi: number) => {
      const on = opts.faults.has(name) && this.rng.chance(0.65)
      const v = on ? this.rng.range(lo, hi) : 0
      this.mix[name] = Math.round(v * 10_000) / 10_000
      return v
    }
    f('loss', 0, 0.2)
    f('dup', 0, 0.15)
    f('reorder', 0, 30)
    f('partition', 0, 0.08)
    f('asymmetric', 0, 1)
    f('flap', 0, 0.05)
    f('crash', 0, 0.04)
    f('crash-mid-write', 0, 0.01)
    f('wipe', 0, 0.8)
    f('fsync', 0, 15)
    // fsync stalls (share of fsyncs): with 'fsync' only
    this.mix.stall = this.mix.fsync ? Math.round(this.rng.range(0, 0.3) * 1000) / 1000 : 0
    f('skew', 0, 20_000)
    f('jump', 0, 0.03)
    f('central-late', 0, 0.3)
    f('central-lost', 0, 0.2)
    f('central-down', 0, 0.05)
    f('outage', 0, 0.05)
    this.wl = this.rng.fork()
    const nCards = 2 + this.wl.int(8)
    for (let c = 0; c < nCards; c++) this.workload.cards.push({ key: this.wl.bytes(16) })
    this.mix.cards = nCards
    this.mix.gapMs = Math.round(this.wl.range(5, 60))
    this.mix.online = Math.round(this.wl.range(0, 0.6) * 100) / 100
    for (let i = 0; i < this.n; i++) {
      const key = this.venue.keys[i]!
      this.nodes.push({
        i,
        name: `T${i + 1}`,
        key,
        hex: this.venue.hex[i]!,
        up: true,
        inc: 0,
        disk: new Disk(),
        skew: this.mix.skew ? Math.round(this.rng.range(-this.mix.skew, this.mix.skew)) : 0,
        jump: 0,
        ops: new Map(),
        writes: new Map(),
        online: this.pos.onlineCore(),
        attempts: new Map(),
        started: false,
        inflight: new Map(),
        knownAt: new Map(),
        requested: new Set(),
      })
    }
  }

  at(delay: number, ev: EvInit): void {
    // every caller passes a fresh literal: stamp it rather than copy it (one allocation a step less)
    const e = ev as unknown as Ev
    e.at = this.now + Math.max(0, delay)
    e.seq = this.seqNo++
    this.q.push(e)
  }

  log(text: string): void {
    const line = `${this.step} t=${(this.now / 1000).toFixed(3)} ${text}`
    this.trace.push(line)
  }

  count(name: string): void {
    this.faultCounts[name] = (this.faultCounts[name] ?? 0) + 1
  }

  stopped: Violation | undefined

  fail(invariant: string, detail: string): never {
    if (this.stopped === undefined) {
      this.log(`VIOLATION ${invariant}: ${detail}`)
      this.stopped = { seed: this.opts.seed, step: this.step, invariant, detail }
    }
    throw new Stop(this.stopped)
  }

  name(hex: string): string {
    const i = this.venue.index.get(hex)
    return i === undefined ? hex.slice(0, 8) : `T${i + 1}`
  }

  /** a disk's fsync: usually fast, sometimes stalled for far longer than a network hop */
  fsyncLatency(): number {
    if (!this.mix.fsync) return 0.2
    let lat = 0.2 + this.rng.next() * this.mix.fsync
    if (this.rng.chance(this.mix.stall!)) lat += this.rng.range(5, 40)
    return lat
  }

  handle(ev: Ev): void {
    switch (ev.k) {
      case 'deliver':
        this.net.deliver(ev)
        return
      case 'timer':
        this.terminals.timer(ev)
        return
      case 'fsync':
        this.terminals.fsynced(ev)
        return
      case 'flush':
        this.terminals.flushed(ev)
        return
      case 'dialed':
        this.net.dialed(ev)
        return
      case 'hello':
        this.net.hello(ev)
        return
      case 'catchreq':
        this.net.serveCatchup(ev)
        return
      case 'catchans':
        this.net.catchupAnswered(ev)
        return
      case 'central':
        this.central.serve(ev.node, ev.req)
        return
      case 'centralAns':
        this.pos.centralAnswered(ev)
        return
      case 'mark':
        this.pos.markDurable(ev)
        return
      case 'markLate':
        this.pos.markLate(ev)
        return
      case 'onlineTimeout':
        this.pos.timedOut(ev)
        return
      case 'pay':
        this.workload.paced()
        return
      case 'retry':
        this.pos.pay(ev.payment)
        return
      case 'fault':
        this.faults.tick()
        return
      case 'heal':
        this.faults.heal(ev)
        return
      case 'centralUp':
        this.central.centralDown = false
        return
      case 'crash':
        this.terminals.crashed(ev)
        return
      case 'restart':
        this.terminals.restart(ev)
        return
      case 'net':
        this.net.tick()
        return
      case 'tick':
        this.terminals.tick(ev)
        return
      case 'refill':
        this.terminals.refillTimeout(ev)
        return
      case 'aimed':
        this.aim.fire(ev)
        return
    }
  }

  run(): SimResult {
    let violation: Violation | undefined
    try {
      for (const node of this.nodes) this.terminals.boot(node)
      if (this.opts.formed === true) this.net.form()
      this.at(0, { k: 'net' })
      this.at(300, { k: 'pay' })
      this.at(100, { k: 'fault' })
      while (this.step < this.opts.steps) this.next()
      this.liveness()
      this.check.checkSettlement()
    } catch (err: unknown) {
      if (!(err instanceof Stop)) throw err
      violation = err.violation
    }
    return {
      seed: this.opts.seed,
      steps: this.step,
      payments: this.payments,
      approvals: this.approvalsN,
      cost: this.cost,
      faults: this.faultCounts,
      mix: this.mix,
      violation,
      trace: this.trace.result(),
      ...(this.opts.keepDisks === true
        ? {
            disks: this.nodes.map((n) => ({
              name: n.name,
              key: n.key,
              records: [...n.disk.durable],
              confirmed: { ...n.disk.confirmed },
              relearning: n.disk.relearning,
              learnedThrough: n.disk.learnedThrough,
              venueId: VENUE,
              policy: this.policy,
              members: [...this.venue.hex],
              groups: this.venue.groups,
            })),
          }
        : {}),
    }
  }

  next(): void {
    const ev = this.q.pop()
    if (ev === undefined) throw new Error('empty queue')
    this.now = ev.at
    this.step++
    this.handle(ev)
    // a violation detected inside a core operation (an effect) surfaces here
    if (this.stopped !== undefined) throw new Stop(this.stopped)
  }

  /**
   * Liveness: heal a quorum-sized core of terminals (and central), stop injecting faults, reset
   * clocks; fresh payments at the core must be approved again within a bounded time.
   */
  /** whether a terminal signs again once started: up, its core says so; down, its disk will */
  knowsHistory(node: Node): boolean {
    if (node.up && node.core !== undefined) return node.core.view.seqKnown
    // as restore() and the core's recovery judge the disk at the next start
    if (node.disk.relearning) return false
    return node.disk.durable.some(
      ({ event: { event: e } }) =>
        toHex(e.type === 'commit' ? e.reservation.event.origin : e.origin) === node.hex,
    )
  }

  liveness(): void {
    this.phase = 'liveness'
    const quorum = this.nodes[0]!.core?.quorum ?? Math.floor(this.n / 2) + 1
    const ids = this.nodes.map((n) => n.i)
    for (let i = ids.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1)
      ;[ids[i], ids[j]] = [ids[j]!, ids[i]!]
    }
    // A terminal that must relearn its history (a lost disk, a cut relearning) acks nothing until
    // N − q + 1 peers have taught it (docs/protocol.md, "Lost disks"): in a quorum-sized core it
    // has q − 1, fewer than it needs whenever the rest stay down, so such a core cannot decide by
    // the protocol's own rules (seed 805). The core is drawn from the terminals that know their
    // history; with fewer than a quorum of them, every terminal is healed instead.
    const knowing = ids.filter((i) => this.knowsHistory(this.nodes[i]!))
    const relearner = knowing.length < quorum
    if (relearner) this.count('liveness-relearner')
    this.workload.livenessCore = (relearner ? ids : knowing.slice(0, quorum)).sort((a, b) => a - b)
    this.log(
      `LIVENESS core ${this.workload.livenessCore.map((i) => `T${i + 1}`).join(',')}: healed, no more faults`,
    )
    this.mix.loss = 0
    this.mix.dup = 0
    this.mix['central-lost'] = 0
    this.mix['central-late'] = 0
    this.central.centralDown = false
    this.central.centralLinkDown.fill(0)
    // clocks further apart than the skew bound are a fault the protocol refuses to work across
    // (stale / future reservations): the core's clocks are set right, as NTP would (3 terminals,
    // seed 188 at 40,000 steps: T1 and T2, 32 s apart, refused each other's every reservation)
    const skews = this.workload.livenessCore.map((a) => this.nodes[a]!.skew)
    if (Math.max(...skews) - Math.min(...skews) > this.policy.maxClockSkewMs / 2) {
      this.count('liveness-clock-set')
      for (const a of this.workload.livenessCore) this.nodes[a]!.skew = 0
    }
    for (const a of this.workload.livenessCore) {
      const node = this.nodes[a]!
      node.jump = 0
      for (const b of this.workload.livenessCore) {
        this.net.linkDown[a * this.n + b] = 0
      }
      if (!node.up) this.at(10, { k: 'restart', node: a, wipe: false })
    }
    this.net.netDirty = true
    const start = this.now
    const limit = 30_000
    this.livenessApprovals = 0
    this.livenessCapStreak = 0
    while (this.now - start < limit && this.livenessApprovals === 0) this.next()
    // the venue cap spent within its window is the policy, not a stall: offline approvals wait for
    // the window (3 terminals, seed 70 at 40,000 steps: the core's escrow shares were used up and
    // the third terminal, down, kept its own)
    const spent = this.livenessCapStreak >= 20
    if (this.livenessApprovals === 0 && spent) {
      this.count('liveness-venue-cap-spent')
      this.log(
        `LIVENESS no approval: the last ${this.livenessCapStreak} decisions declined venue_cap_exceeded (the cap is spent)`,
      )
    } else if (this.livenessApprovals === 0)
      this.fail(
        'liveness',
        `no approval within ${limit / 1000} s with a healed quorum ${this.workload.livenessCore.map((i) => `T${i + 1}`).join(',')}`,
      )
    // drain: everything heals (every link, every terminal back up with its disk), pending voids
    // reach central and every ledger syncs, so every answered approval can settle (checkSettlement)
    this.faults.outages.clear()
    this.net.linkDown.fill(0)
    this.central.centralLinkDown.fill(0)
    for (const node of this.nodes) {
      node.jump = 0
      if (!node.up) this.at(10, { k: 'restart', node: node.i, wipe: false })
    }
    this.net.netDirty = true
    const end = this.now + DRAIN_MS
    while (this.now < end && this.q.size > 0) this.next()
  }
}
