import { CURRENCY } from './config.js'
import { type SignedEvent, toHex } from './deps.js'
import { Rng } from './rng.js'
import type { Sim } from './sim.js'
import { type EvOf, type Node, originOf, type Payment } from './world.js'

/** share of refill flushes, once a wiped store lacks a certified own event a peer holds above it, that crash */
const RELEARN_CRASH_RATE = 1
/** chance per fault tick (100 ms) of the safety phase that the relearn scenario starts */
const RELEARN_SCENARIO_RATE = 0.5
/** chance per fault tick (100 ms) of the safety phase that the relearned-holds scenario starts */
const HOLDS_SCENARIO_RATE = 0.3
/** chance per fault tick (100 ms) of the safety phase that the central-only scenario starts */
const CENTRAL_SCENARIO_RATE = 0.3
/** chance per fault tick (100 ms) of the safety phase that the relearned-outcome scenario starts */
const OUTCOME_SCENARIO_RATE = 0.3

/**
 * Fault points aimed at the two mechanisms of a lost disk's refill (docs/protocol.md, "Fault points
 * aimed at relearning"). Each draws from its own stream, seeded apart from the main ones and from
 * `sim.aimed`: a seed's schedule is unchanged until one of them fires. One scenario runs at a time.
 *
 * - relearn crash (the relearning mark): a wiped terminal whose durable store holds its own events
 *   up to seq s while a peer holds a certified own event above s crashes at that flush. The relearn
 *   scenario leads there: a split q | N − q, a terminal commits on its side, loses its disk and
 *   reboots reaching only the other side, and after the crash restarts still cut off.
 * - relearned holds: the venue splits q | N − q; a fresh card is approved on the q side; as its
 *   origin writes the Commit its cable is pulled (the Commit stays home); one holder of the
 *   approval loses its disk and rejoins the other side; the card is tapped there twice, for amounts
 *   that with the first pass the card cap. That quorum meets the certifying one only in the wiped
 *   holder.
 *
 * - central only (the refill from central): a terminal W cut off from every peer, not from central,
 *   approves a fresh card under the isolated rules; once central holds that approval (W synced it)
 *   and no peer does, W's disk is lost and it reboots connected. Its peers cannot give the approval
 *   back: without the refill it signs its seqs again (seed 14 at 40,000 steps found it).
 *
 * - relearned outcome (an own reservation learned back without its Commit, kept held at start):
 *   once the other three are done, a fresh card is approved at O; as O writes the Commit its cable is
 *   pulled (the Commit stays home), then O's disk is lost; O reboots connected and relearns the
 *   reservation from its holders, without the Commit; once it has learned it restarts (its disk
 *   kept), and the card is tapped twice elsewhere for amounts that with the first pass the card
 *   cap. A start that released the reservation as never approved frees its headroom.
 *
 * All keep to the lost-disk assumptions: one disk lost per scenario (others' wipes become plain
 * restarts meanwhile), nobody refilling when it starts, and a wipe only when the highest own event
 * that left the terminal is held by enough of its learn sources (ownSettled).
 */
export class AimedFaults {
  private readonly crashRng: Rng
  private readonly holdsRng: Rng
  /** relearn crash: the wipe (its time) each terminal was already crashed for */
  private readonly crashedFor = new Map<number, number>()
  private holds:
    | {
        stage: 'approve' | 'wiped' | 'tapped'
        card: number
        origin: number
        holder: number
        first: Set<number>
        other: number[]
        amount: number
        until: number
      }
    | undefined
  private holdsDone = false
  private relearn:
    | {
        stage: 'approve' | 'wiped' | 'crashed'
        node: number
        card: number
        first: number[]
        other: number[]
        until: number
      }
    | undefined
  private relearnDone = false
  private readonly centralRng: Rng
  private central:
    | { stage: 'approve' | 'committed' | 'wiped'; node: number; card: number; commit?: string; until: number }
    | undefined
  private centralDone = false
  private readonly outcomeRng: Rng
  private outcome:
    | {
        stage: 'approve' | 'committed' | 'wiped' | 'restarted' | 'tapped'
        node: number
        card: number
        until: number
      }
    | undefined
  private outcomeDone = false
  /** a seed that tries the central-only scenario before the other two (its own stream) */
  private readonly centralFirst: boolean
  /** which scenario a seed tries first */
  private readonly relearnFirst: boolean

  constructor(private readonly sim: Sim) {
    this.crashRng = new Rng((sim.opts.seed ^ 0x72636c72) >>> 0)
    this.holdsRng = new Rng((sim.opts.seed ^ 0x686f6c64) >>> 0)
    this.relearnFirst = new Rng((sim.opts.seed ^ 0x6f726472) >>> 0).chance(0.6)
    this.centralRng = new Rng((sim.opts.seed ^ 0x636e746c) >>> 0)
    this.centralFirst = new Rng((sim.opts.seed ^ 0x63667374) >>> 0).chance(0.3)
    this.outcomeRng = new Rng((sim.opts.seed ^ 0x6f75746d) >>> 0)
  }

  /** a terminal the scenario needs with its disk: a crash of it is not a wipe meanwhile */
  keepsDisk(i: number): boolean {
    if (this.outcome !== undefined) return this.outcome.node !== i
    if (this.central !== undefined) return this.central.node !== i
    if (this.relearn !== undefined) return this.relearn.node !== i
    return this.holds !== undefined && this.holds.holder !== i
  }

  /** the scenario's wiped holder: its refill is not cut by a crash meanwhile (the scenario needs it up) */
  refillsUncut(i: number): boolean {
    return (
      (this.holds !== undefined && this.holds.holder === i) ||
      this.relearn?.node === i ||
      this.central?.node === i ||
      this.outcome?.node === i
    )
  }

  // ---- central only ---------------------------------------------------------------------------

  /** the central-only scenario: start it, or move it on (see the class comment) */
  private centralTick(): void {
    const sim = this.sim
    const c = this.central
    if (c === undefined) {
      if (!this.centralDone) this.centralStart()
      return
    }
    const node = sim.nodes[c.node]!
    if (sim.now > c.until) {
      sim.log(`AIMED central only: ${c.stage === 'wiped' ? 'done' : 'lapsed'}`)
      this.centralEnd()
      return
    }
    if (c.stage !== 'committed' || !node.up || c.commit === undefined) return
    // central holds the approval and no peer does: the disk is lost now
    if (![...(sim.central.cEvents.get(node.hex)?.values() ?? [])].some((e) => e.idHex === c.commit)) return
    for (const other of sim.nodes)
      if (other !== node && other.disk.readable().some((e) => e.idHex === c.commit)) {
        sim.log('AIMED central only: lapsed (a peer holds the approval)')
        this.centralEnd()
        return
      }
    c.stage = 'wiped'
    c.until = sim.now + 5000
    sim.count('aimed-central')
    this.crashNow(node, 'its disk will be wiped (aimed: an isolated approval only central holds)')
    this.centralHeal(c.node)
    sim.at(this.centralRng.range(150, 400), { k: 'restart', node: c.node, wipe: true, connected: true })
  }

  private centralStart(): void {
    const sim = this.sim
    const f = sim.opts.faults
    if (!f.has('partition') || !f.has('crash') || !f.has('wipe') || sim.n < 3) return
    if (!this.centralRng.chance(CENTRAL_SCENARIO_RATE)) return
    // nobody refilling (a refilling peer is no learn source); a terminal down keeps its disk
    // meanwhile (keepsDisk), one in an outage takes no part
    for (const n of sim.nodes) if ((n.refill ?? 0) !== 0 || (n.up && n.core?.view.seqKnown === false)) return
    if (sim.central.centralDown) return
    const node = sim.nodes[this.centralRng.int(sim.n)]!
    if (!node.up || !node.started || node.core === undefined || sim.faults.outages.has(node.i)) return
    const quorum = node.core.quorum
    // its history so far learnable from its peers: only the approval below is not
    if (sim.central.centralLinkDown[node.i] || !this.ownHeldBy(node, [node], quorum - 1)) return
    sim.workload.aimedCards.push({ key: this.centralRng.bytes(16) })
    const card = -sim.workload.aimedCards.length
    this.central = { stage: 'approve', node: node.i, card, until: sim.now + 10_000 }
    sim.log(`AIMED central only: ${node.name} cut off from its peers (not from central)`)
    for (let j = 0; j < sim.n; j++) if (j !== node.i) this.cut(node.i, j)
    // tapped as soon as the isolated rules apply (the probe time after the quorum was lost), for a
    // small amount: the workload's own taps there use up the isolated budget meanwhile
    const cur = sim.policy.currencies[CURRENCY]!
    const amount = Math.min(500, cur.isolatedFloorLimitMinor)
    sim.log(`AIMED central only: card c${card} tapped at ${node.name} (${amount})`)
    sim.at(this.centralRng.range(1550, 1700), {
      k: 'retry',
      payment: this.payment(node.i, card, amount, this.centralRng),
    })
  }

  /** a fault's links healed: the central-only scenario's terminal stays cut off from its peers */
  healed(): void {
    const c = this.central
    // the liveness phase heals its core and injects nothing more: no cut comes back (seed 66 at
    // 40,000 steps: every heal re-cut T3, a core member, and the core approved nothing for 30 s)
    if (c === undefined || c.stage === 'wiped' || this.sim.phase !== 'safety') return
    const sim = this.sim
    for (let j = 0; j < sim.n; j++)
      if (j !== c.node && sim.net.linkDown[c.node * sim.n + j] === 0) this.cut(c.node, j)
  }

  /** the cut terminal's links come back (not those of a terminal in an outage) */
  private centralHeal(i: number): void {
    const sim = this.sim
    for (let j = 0; j < sim.n; j++) {
      if (j === i || sim.faults.outages.has(j)) continue
      sim.net.linkDown[i * sim.n + j] = 0
      sim.net.linkDown[j * sim.n + i] = 0
    }
    sim.net.netDirty = true
  }

  private centralEnd(): void {
    const c = this.central
    if (c !== undefined && c.stage !== 'wiped') this.centralHeal(c.node)
    this.central = undefined
    this.centralDone = true
  }

  // ---- relearned outcome ----------------------------------------------------------------------

  /** the relearned-outcome scenario: start it, or move it on (see the class comment) */
  private outcomeTick(): void {
    const sim = this.sim
    const o = this.outcome
    if (o === undefined) {
      if (!this.outcomeDone) this.outcomeStart()
      return
    }
    const node = sim.nodes[o.node]!
    if (sim.now > o.until) {
      sim.log(`AIMED relearned outcome: ${o.stage === 'tapped' ? 'done' : 'lapsed'}`)
      this.outcomeEnd()
      return
    }
    const quorum = sim.nodes[0]!.core?.quorum ?? Math.floor(sim.n / 2) + 1
    if (o.stage === 'committed') {
      // the approval answered, its Commit home only: the disk is lost once every other own event
      // that left it is held by enough learn sources (the lost-disk assumption)
      if (!node.up || !this.ownSettled(node, [node], quorum - 1)) return
      o.stage = 'wiped'
      o.until = sim.now + 6000
      sim.count('aimed-outcome')
      this.crashNow(node, "its disk will be wiped (aimed: its approval's Commit never left)")
      this.outcomeHeal(o.node)
      sim.at(this.outcomeRng.range(150, 400), { k: 'restart', node: o.node, wipe: true, connected: true })
      return
    }
    if (o.stage === 'wiped') {
      // relearned (the reservation from its holders, not the Commit): a restart, its disk kept
      if (!node.up || !node.started || node.core?.view.seqKnown !== true || (node.refill ?? 0) !== 0) return
      o.stage = 'restarted'
      this.crashNow(node, 'restarted after relearning (aimed)')
      sim.at(this.outcomeRng.range(150, 400), { k: 'restart', node: o.node, wipe: false, connected: true })
      return
    }
    if (o.stage === 'restarted') {
      if (!node.up || !node.started) return
      // the card tapped twice elsewhere: together within the cap, past it with the first approval
      const others = sim.nodes.filter((n) => n !== node && n.up && n.started).map((n) => n.i)
      if (others.length === 0) return
      o.stage = 'tapped'
      o.until = sim.now + 1500
      let delay = this.outcomeRng.range(100, 300)
      for (let k = 0; k < 2; k++) {
        const at = others[this.outcomeRng.int(others.length)]!
        const amount = this.amount(this.outcomeRng)
        sim.log(`AIMED relearned outcome: card c${o.card} tapped again at T${at + 1} (${amount})`)
        sim.at(delay, { k: 'retry', payment: this.payment(at, o.card, amount, this.outcomeRng) })
        delay += this.outcomeRng.range(300, 700)
      }
    }
  }

  private outcomeStart(): void {
    const sim = this.sim
    const f = sim.opts.faults
    if (!f.has('crash') || !f.has('wipe')) return
    const quorum = sim.nodes[0]!.core?.quorum ?? Math.floor(sim.n / 2) + 1
    if (sim.venue.groups.size < sim.n || sim.n < 2 * quorum - 1 || quorum < 2) return
    if (!this.outcomeRng.chance(OUTCOME_SCENARIO_RATE)) return
    // nobody refilling or relearning, no outage; the origin and a quorum of others up and knowing
    // their history (its learn sources later)
    const knows = (n: Node) => n.up && n.started && n.core?.view.seqKnown === true
    for (const n of sim.nodes) if ((n.refill ?? 0) !== 0 || (n.up && n.core?.view.seqKnown === false)) return
    if (sim.faults.outages.size > 0) return
    const node = sim.nodes[this.outcomeRng.int(sim.n)]!
    if (!knows(node) || sim.nodes.filter((n) => n !== node && knows(n)).length < quorum) return
    if (!this.ownHeldBy(node, [node], quorum - 1)) return
    sim.workload.aimedCards.push({ key: this.outcomeRng.bytes(16) })
    const card = -sim.workload.aimedCards.length
    const amount = this.amount(this.outcomeRng)
    this.outcome = { stage: 'approve', node: node.i, card, until: sim.now + 2000 }
    sim.log(`AIMED relearned outcome: card c${card} tapped at ${node.name} (${amount})`)
    sim.at(this.outcomeRng.range(50, 300), {
      k: 'retry',
      payment: this.payment(node.i, card, amount, this.outcomeRng),
    })
  }

  /** the scenario's terminal is plugged back in (not a terminal's own outage) */
  private outcomeHeal(i: number): void {
    const sim = this.sim
    sim.faults.outages.delete(i)
    for (let j = 0; j < sim.n; j++) {
      if (j === i || sim.faults.outages.has(j)) continue
      sim.net.linkDown[i * sim.n + j] = 0
      sim.net.linkDown[j * sim.n + i] = 0
    }
    sim.central.centralLinkDown[i] = 0
    sim.net.netDirty = true
  }

  private outcomeEnd(): void {
    const o = this.outcome
    if (o !== undefined && o.stage === 'committed') this.outcomeHeal(o.node)
    this.outcome = undefined
    this.outcomeDone = true
  }

  // ---- relearn crash --------------------------------------------------------------------------

  /** a flush of a wiped terminal's refill: crash it if it holds its own history in part */
  refillFlushed(node: Node): boolean {
    const sim = this.sim
    if (sim.phase !== 'safety' || !sim.opts.faults.has('crash') || !node.up) return false
    if (this.holds !== undefined && this.holds.holder === node.i) return false
    const wiped = sim.check.wipedAt.get(node.i)
    if (wiped === undefined || this.crashedFor.get(node.i) === wiped) return false
    let mine = 0
    for (const r of node.disk.durable)
      if (originOf(r.event) === node.hex && r.event.event.seq > mine) mine = r.event.event.seq
    if (mine === 0) return false
    // a certified own event of a higher seq that a peer holds: the store lacks part of what it signed
    let missing: SignedEvent | undefined
    for (const other of sim.nodes) {
      if (other === node) continue
      for (const e of other.disk.readable())
        if (e.event.seq > mine && originOf(e) === node.hex && !sim.check.isResidual(e.idHex)) {
          missing = e
          break
        }
      if (missing !== undefined) break
    }
    if (missing === undefined || !this.crashRng.chance(RELEARN_CRASH_RATE)) return false
    this.crashedFor.set(node.i, wiped)
    sim.count('relearn-crash')
    const why = `while relearning: its store has its own events up to seq ${mine}, a peer holds seq ${missing.event.seq}`
    const r = this.relearn
    if (r !== undefined && r.node === node.i && r.stage === 'wiped') {
      // the scenario's terminal: it restarts at once, still cut off from the peers that hold the rest
      r.stage = 'crashed'
      this.crashNow(node, why)
      sim.at(this.crashRng.range(150, 400), { k: 'restart', node: node.i, wipe: false, connected: true })
      sim.at(this.crashRng.range(1000, 2000), { k: 'aimed', what: 'relearn-heal', node: node.i })
      return true
    }
    sim.at(0, { k: 'crash', node: node.i, inc: node.inc, why, wipe: false })
    return true
  }

  /**
   * The relearn scenario (after the holds scenario): the venue splits q | N − q; a terminal W on the
   * q side approves a payment there (its latest own events are then held on that side only); W's
   * disk is lost and it reboots where only the other side is reachable: it refills part of its own
   * history from there, and crashes at that flush (refillFlushed); it restarts still cut off from the
   * side that holds the rest, which it reaches again 1–2 s later. Only W's disk is lost, its learn
   * sources know their history: the lost-disk assumption.
   */
  private relearnTick(): void {
    const sim = this.sim
    const r = this.relearn
    if (r !== undefined) {
      if (sim.now > r.until) {
        sim.log('AIMED relearn: lapsed')
        this.relearnHeal()
      }
      return
    }
    if (this.relearnDone) return
    const f = sim.opts.faults
    if (!f.has('partition') || !f.has('crash') || !f.has('wipe')) return
    const quorum = sim.nodes[0]!.core?.quorum ?? Math.floor(sim.n / 2) + 1
    if (sim.venue.groups.size < sim.n || sim.n < 2 * quorum - 1 || quorum < 2) return
    if (!this.crashRng.chance(RELEARN_SCENARIO_RATE)) return
    // no terminal refilling (a refilling peer is no learn source); one that is down keeps its disk
    // when it restarts (keepsDisk) and takes no part, nor does one in an outage
    for (const n of sim.nodes)
      if ((n.refill ?? 0) !== 0 || (n.up && (!n.started || n.core === undefined || !n.core.view.seqKnown)))
        return
    const ids = sim.nodes.filter((n) => n.up && !sim.faults.outages.has(n.i)).map((n) => n.i)
    if (ids.length <= quorum) return
    for (let i = ids.length - 1; i > 0; i--) {
      const j = this.crashRng.int(i + 1)
      ;[ids[i], ids[j]] = [ids[j]!, ids[i]!]
    }
    const node = sim.nodes[ids[0]!]!
    // its own history so far held by q − 1 others (any N − q + 1 learn sources meet it): else its
    // lost disk is the residual of "Lost disks" (an isolated approval only central saw, say)
    if (node.core!.view.nextSeq <= 1 || !this.ownHeldBy(node, [node], quorum - 1)) return
    const first = ids.slice(0, quorum)
    const other = ids.slice(quorum)
    sim.workload.aimedCards.push({ key: this.crashRng.bytes(16) })
    const card = -sim.workload.aimedCards.length
    this.relearn = { stage: 'approve', node: node.i, card, first, other, until: sim.now + 2000 }
    sim.count('aimed-relearn')
    const names = (xs: number[]) =>
      [...xs]
        .sort((a, b) => a - b)
        .map((i) => `T${i + 1}`)
        .join(',')
    sim.log(`AIMED relearn: PARTITION ${names(first)} | ${names(other)}`)
    for (const a of first) for (const b of other) this.cut(a, b)
    const amount = 500 + this.crashRng.int(10) * 100
    sim.log(`AIMED relearn: card c${card} tapped at ${node.name} (${amount})`)
    sim.at(this.crashRng.range(50, 300), {
      k: 'retry',
      payment: this.payment(node.i, card, amount, this.crashRng),
    })
  }

  /** an aimed event fires */
  fire(ev: EvOf<'aimed'>): void {
    const sim = this.sim
    const r = this.relearn
    if (r === undefined || r.node !== ev.node) return
    if (ev.what === 'relearn-heal') {
      this.relearnHeal()
      return
    }
    const node = sim.nodes[r.node]!
    if (r.stage !== 'approve' || !node.up || sim.phase !== 'safety') return
    const quorum = node.core?.quorum ?? Math.floor(sim.n / 2) + 1
    if (!this.ownSettled(node, [node], quorum - 1)) {
      // an own event still spreading on its side: a moment later
      sim.at(this.crashRng.range(20, 60), { k: 'aimed', what: 'relearn-wipe', node: node.i })
      return
    }
    r.stage = 'wiped'
    r.until = sim.now + 3000
    sim.count('aimed-wipe')
    this.crashNow(node, 'its disk will be wiped (aimed: it approved on its side of a split)')
    // it reboots where only the other side is reachable, and not central either (the venue's
    // uplink is on the side it left): else central gives its own events back (recovery.ts)
    sim.central.centralLinkDown[r.node] = 1
    for (const j of r.first) if (j !== r.node) this.cut(r.node, j)
    for (const j of r.other) {
      sim.net.linkDown[r.node * sim.n + j] = 0
      sim.net.linkDown[j * sim.n + r.node] = 0
    }
    sim.net.netDirty = true
    sim.at(this.crashRng.range(150, 400), { k: 'restart', node: r.node, wipe: true, connected: true })
  }

  /** the relearn scenario ends: its cuts heal (not a terminal's outage) */
  private relearnHeal(): void {
    const sim = this.sim
    const r = this.relearn
    if (r === undefined) return
    const all = [...r.first, ...r.other]
    for (const a of all)
      for (const b of all) {
        if (a === b || sim.faults.outages.has(a) || sim.faults.outages.has(b)) continue
        sim.net.linkDown[a * sim.n + b] = 0
      }
    sim.net.netDirty = true
    if (!sim.faults.outages.has(r.node)) sim.central.centralLinkDown[r.node] = 0
    sim.log('AIMED relearn: the split heals')
    this.relearn = undefined
    this.relearnDone = true
  }

  // ---- relearned holds ------------------------------------------------------------------------

  /** every fault tick of the safety phase: start the scenario, or move it on */
  tick(): void {
    if (this.sim.phase !== 'safety') return
    if (this.outcome !== undefined) {
      this.outcomeTick()
      return
    }
    // the relearned-outcome scenario once the other three are done (a seed's schedule is unchanged
    // until then: it needs long seeds, MUTANT_MIN_STEPS)
    if (this.holdsDone && this.relearnDone && this.centralDone && !this.outcomeDone) {
      this.outcomeTick()
      if (this.outcome !== undefined) return
    }
    // one scenario at a time (their wipes must not overlap); the seed's own stream orders them;
    // the central-only one comes after the other two
    if (this.central !== undefined || (this.centralFirst && !this.centralDone)) {
      this.centralTick()
      return
    }
    if (this.relearn !== undefined) {
      this.relearnTick()
      return
    }
    if (this.holds !== undefined) {
      this.holdsTick()
      return
    }
    if (this.relearnFirst && !this.relearnDone) this.relearnTick()
    if (this.relearn === undefined && !this.holdsDone) this.holdsTick()
    if (this.holds === undefined && this.relearn === undefined && !this.relearnFirst && !this.relearnDone)
      this.relearnTick()
    if (this.holds === undefined && this.relearn === undefined && this.holdsDone && this.relearnDone)
      this.centralTick()
  }

  private holdsTick(): void {
    const sim = this.sim
    const h = this.holds
    if (h === undefined) {
      if (!this.holdsDone) this.maybeStart()
      return
    }
    if (sim.now > h.until) {
      this.sim.log('AIMED relearned holds: lapsed')
      this.end()
      return
    }
    if (h.stage !== 'wiped') return
    // the wiped holder is back and connected to the other side: the card is tapped there
    const holder = sim.nodes[h.holder]!
    if (!holder.up || !holder.started) return
    const at = h.other.filter((j) => sim.net.conn[sim.net.pair(j, h.holder)] === 2)
    if (at.length === 0) return
    h.stage = 'tapped'
    // two taps there, each within the floor limit, together within the card cap, with the first
    // approval past it: a quorum that counts the first refuses the second
    const taps = [at[this.holdsRng.int(at.length)]!, h.other[this.holdsRng.int(h.other.length)]!]
    let delay = this.holdsRng.range(0, 300)
    for (const node of taps) {
      const amount = this.amount()
      sim.log(`AIMED relearned holds: card c${h.card} tapped again at T${node + 1} (${amount})`)
      sim.at(delay, { k: 'retry', payment: this.payment(node, h.card, amount) })
      delay += this.holdsRng.range(300, 700)
    }
    h.until = sim.now + 1500
  }

  /** an amount within the floor limit (the card cap is two of them) */
  private amount(rng = this.holdsRng): number {
    const cur = this.sim.policy.currencies[CURRENCY]!
    const hi = Math.min(cur.floorLimitMinor, cur.cardCapMinor / 2)
    return Math.floor((hi * (0.8 + rng.next() * 0.2)) / 100) * 100
  }

  private maybeStart(): void {
    const sim = this.sim
    const f = sim.opts.faults
    if (!f.has('partition') || !f.has('crash') || !f.has('wipe')) return
    const quorum = sim.nodes[0]!.core?.quorum ?? Math.floor(sim.n / 2) + 1
    // the roster is the card's custodian group (groups smaller than the roster: not aimed at)
    if (sim.venue.groups.size < sim.n) return
    if (sim.n < 2 * quorum - 1 || quorum < 2) return
    if (!this.holdsRng.chance(HOLDS_SCENARIO_RATE)) return
    // every terminal up and knowing its history; no outage: no other disk is being refilled
    for (const n of sim.nodes)
      if (!n.up || !n.started || n.core === undefined || !n.core.view.seqKnown || (n.refill ?? 0) !== 0)
        return
    if (sim.faults.outages.size > 0) return
    const ids = sim.nodes.map((n) => n.i)
    for (let i = ids.length - 1; i > 0; i--) {
      const j = this.holdsRng.int(i + 1)
      ;[ids[i], ids[j]] = [ids[j]!, ids[i]!]
    }
    const first = ids.slice(0, quorum)
    const other = ids.slice(quorum).sort((a, b) => a - b)
    const origin = first[0]!
    const holder = first[1]!
    sim.workload.aimedCards.push({ key: this.holdsRng.bytes(16) })
    const card = -sim.workload.aimedCards.length
    const amount = this.amount()
    this.holds = {
      stage: 'approve',
      card,
      origin,
      holder,
      first: new Set(first),
      other,
      amount,
      until: sim.now + 3000,
    }
    sim.count('aimed-holds')
    const names = (xs: Iterable<number>) => [...xs].map((i) => `T${i + 1}`).join(',')
    sim.log(`AIMED relearned holds: PARTITION ${names([...first].sort((a, b) => a - b))} | ${names(other)}`)
    for (const a of first) for (const b of other) this.cut(a, b)
    sim.log(`AIMED relearned holds: card c${card} tapped at T${origin + 1} (${amount})`)
    sim.at(this.holdsRng.range(50, 300), { k: 'retry', payment: this.payment(origin, card, amount) })
  }

  /** a terminal asked for a write: the scenario's origin writing its approval's Commit */
  written(node: Node, records: readonly { event: SignedEvent }[]): void {
    // no new cuts once the run heals (liveness, then the drain: sim.ts)
    if (this.sim.phase !== 'safety') return
    const o = this.outcome
    if (o !== undefined && o.stage === 'approve' && node.i === o.node && this.commits(records, o.card)) {
      // its cable is pulled as it commits: the Commit stays home (no peer, no central)
      const sim = this.sim
      o.stage = 'committed'
      o.until = sim.now + 3000
      sim.log(`AIMED relearned outcome: ${node.name} cut off as it commits the card's approval`)
      sim.faults.outages.add(node.i)
      for (let j = 0; j < sim.n; j++) if (j !== node.i) this.cut(node.i, j)
      sim.central.centralLinkDown[node.i] = 1
      return
    }
    const c = this.central
    if (c !== undefined && c.stage === 'approve' && node.i === c.node) {
      const key = toHex(this.sim.workload.cardKey(c.card))
      const commit = records.find(
        (x) => x.event.event.type === 'commit' && toHex(x.event.event.reservation.event.cardKey) === key,
      )
      if (commit !== undefined) {
        c.stage = 'committed'
        c.commit = commit.event.idHex
        this.sim.log(
          `AIMED central only: ${node.name} approved the card alone; waiting for central to hold it`,
        )
      }
      return
    }
    const r = this.relearn
    if (
      r !== undefined &&
      r.stage === 'approve' &&
      node.i === r.node &&
      records.some((x) => x.event.event.type === 'commit' && originOf(x.event) === node.hex)
    ) {
      // its Commit reaches its side of the split; then its disk is lost
      this.sim.at(this.crashRng.range(60, 150), { k: 'aimed', what: 'relearn-wipe', node: node.i })
      return
    }
    const h = this.holds
    if (h === undefined || h.stage !== 'approve' || node.i !== h.origin) return
    if (!this.commits(records, h.card)) return
    const sim = this.sim
    // the holder's own events must be held by a terminal it can learn them from (not only by the
    // origin, cut off next): else its lost disk is the residual of "Lost disks", not this case
    const holder = sim.nodes[h.holder]!
    if (!this.ownSettled(holder, [node, holder], 1)) {
      sim.log(`AIMED relearned holds: lapsed (an own event of ${holder.name} is held only by the origin)`)
      this.end()
      return
    }
    // its cable is pulled as it commits: the Commit stays home (an outage: no peer, no central)
    sim.log(`AIMED relearned holds: ${node.name} cut off as it commits the card's approval`)
    sim.faults.outages.add(node.i)
    for (let j = 0; j < sim.n; j++) if (j !== node.i) this.cut(node.i, j)
    sim.central.centralLinkDown[node.i] = 1
    sim.at(this.holdsRng.range(8000, 15_000), { k: 'heal', what: 'outage', a: node.i, b: 0 })
    // the split heals for the others; one holder's disk is lost, and it rejoins
    for (let a = 0; a < sim.n; a++)
      for (let b = 0; b < sim.n; b++) if (a !== node.i && b !== node.i) sim.net.linkDown[a * sim.n + b] = 0
    h.stage = 'wiped'
    h.until = sim.now + 6000
    // (it reboots connected: a replaced terminal plugged straight back in)
    this.crashNow(holder, 'its disk will be wiped (aimed: a holder of the card approval)')
    sim.at(this.holdsRng.range(150, 500), { k: 'restart', node: holder.i, wipe: true, connected: true })
  }

  private end(): void {
    this.holds = undefined
    this.holdsDone = true
  }

  /** records that hold a Commit of the card */
  private commits(records: readonly { event: SignedEvent }[], card: number): boolean {
    const key = toHex(this.sim.workload.cardKey(card))
    return records.some(
      (r) => r.event.event.type === 'commit' && toHex(r.event.event.reservation.event.cardKey) === key,
    )
  }

  /** every durable certified own event of `node` is held by at least `need` terminals outside `exclude` */
  private ownHeldBy(node: Node, exclude: readonly Node[], need: number): boolean {
    const count = new Map<string, number>()
    for (const n of this.sim.nodes) {
      if (exclude.includes(n)) continue
      for (const e of n.disk.readable())
        if (originOf(e) === node.hex) count.set(e.idHex, (count.get(e.idHex) ?? 0) + 1)
    }
    // an uncertified one (a reservation no Commit certifies, say) may be reused: the checker's residual
    for (const r of node.disk.durable)
      if (
        originOf(r.event) === node.hex &&
        (count.get(r.event.idHex) ?? 0) < need &&
        !this.sim.check.isResidual(r.event.idHex)
      )
        return false
    return true
  }

  /**
   * At a wipe: the highest own event any other terminal holds is held by at least `need` terminals
   * outside `exclude`, so its learn sources meet it and its next seq passes every own event that
   * left it. An event held by a few only could spread later and be certified after the disk was
   * lost, which no learn quorum sees: outside the lost-disk assumption.
   */
  private ownSettled(node: Node, exclude: readonly Node[], need: number): boolean {
    const learnable = new Map<string, number>()
    let top: SignedEvent | undefined
    for (const n of this.sim.nodes) {
      if (n === node) continue
      for (const e of n.disk.readable()) {
        if (originOf(e) !== node.hex) continue
        if (top === undefined || e.event.seq > top.event.seq) top = e
        if (!exclude.includes(n)) learnable.set(e.idHex, (learnable.get(e.idHex) ?? 0) + 1)
      }
    }
    return top === undefined || (learnable.get(top.idHex) ?? 0) >= need
  }

  /** an aimed crash: its peers notice at once (a rebooted host resets their connections) */
  private crashNow(node: Node, why: string): void {
    const sim = this.sim
    sim.terminals.crash(node, why)
    for (let j = 0; j < sim.n; j++) if (j !== node.i) sim.net.lostAt[sim.net.pair(node.i, j)] = sim.now
    sim.net.netDirty = true
  }

  /** a link cut at once, both ways: its connection drops now (both ends notice at the next net step) */
  private cut(a: number, b: number): void {
    const net = this.sim.net
    net.linkDown[a * this.sim.n + b] = 1
    net.linkDown[b * this.sim.n + a] = 1
    const p = net.pair(a, b)
    if (net.conn[p] !== 0) {
      net.conn[p] = 0
      net.epoch[p]!++
    }
    net.lostAt[p] = this.sim.now
    net.netDirty = true
  }

  private payment(node: number, card: number, amountMinor: number, rng = this.holdsRng): Payment {
    const nullifier = rng.bytes(32)
    return {
      id: this.sim.workload.nextPayment++,
      node,
      nullifier,
      nullHex: toHex(nullifier),
      card,
      amountMinor,
      online: false,
      requireOnline: false,
      attempt: 1,
    }
  }
}
