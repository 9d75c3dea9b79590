import { CATCHUP_PAGE, CURRENCY } from './config.js'
import { type SignedEvent, toHex } from './deps.js'
import { Rng } from './rng.js'
import type { Sim } from './sim.js'
import { type Node, originOf, type Payment } from './world.js'

/** share of refill flushes, once a wiped store holds part of its own certified history, that crash */
const RELEARN_CRASH_RATE = 0.5
/** chance per fault tick that a terminal with half a page or more of own history loses its disk (aimed) */
const RELEARN_WIPE_RATE = 0.3
/** chance per fault tick (100 ms) of the safety phase that the relearned-holds scenario starts */
const HOLDS_SCENARIO_RATE = 0.3

/**
 * Fault points aimed at the two mechanisms of a lost disk's refill (docs/protocol.md, "Fault points
 * aimed at relearning"). Each draws from its own stream, seeded apart from the main ones and from
 * `sim.aimed`: a seed's schedule is unchanged until one of them fires.
 *
 * - relearn crash: a wiped terminal whose store holds part of its own history, while a peer holds
 *   an own event of a higher seq, crashes at that flush (the relearning mark's case).
 * - relearned holds: the venue splits q | N − q; a fresh card is approved on the q side; as its
 *   origin writes the Commit its cable is pulled (the Commit stays home); one holder of the
 *   approval loses its disk and rejoins the other side; the card is tapped there, for an amount
 *   that with the first passes the card cap. Its quorum meets the certifying one only in the wiped
 *   holder. Only one holder's disk is lost, the other survives and is reachable (a learn source
 *   that knows its history): the assumption of "Holds relearned after a lost disk".
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
  private relearnWiped = false

  constructor(private readonly sim: Sim) {
    this.crashRng = new Rng((sim.opts.seed ^ 0x72636c72) >>> 0)
    this.holdsRng = new Rng((sim.opts.seed ^ 0x686f6c64) >>> 0)
  }

  /** a terminal the scenario needs with its disk: a crash of it is not a wipe meanwhile */
  keepsDisk(i: number): boolean {
    return this.holds !== undefined && this.holds.holder !== i
  }

  /** the scenario's wiped holder: its refill is not cut by a crash meanwhile (the scenario needs it up) */
  refillsUncut(i: number): boolean {
    return this.holds !== undefined && this.holds.holder === i
  }

  // ---- relearn crash --------------------------------------------------------------------------

  /** a flush of a wiped terminal's refill: crash it if it holds its own history in part */
  refillFlushed(node: Node): boolean {
    const sim = this.sim
    if (sim.phase !== 'safety' || !sim.opts.faults.has('crash') || !node.up || this.refillsUncut(node.i))
      return false
    const wiped = sim.check.wipedAt.get(node.i)
    if (wiped === undefined || this.crashedFor.get(node.i) === wiped) return false
    let mine = 0
    for (const r of node.disk.durable)
      if (originOf(r.event) === node.hex && r.event.event.seq > mine) mine = r.event.event.seq
    if (mine === 0) return false
    // an own event of a higher seq that a peer holds: the store lacks part of what it signed
    let missing: SignedEvent | undefined
    for (const other of sim.nodes) {
      if (other === node) continue
      for (const e of other.disk.readable())
        if (e.event.seq > mine && originOf(e) === node.hex) {
          missing = e
          break
        }
      if (missing !== undefined) break
    }
    if (missing === undefined || !this.crashRng.chance(RELEARN_CRASH_RATE)) return false
    this.crashedFor.set(node.i, wiped)
    sim.count('relearn-crash')
    const why = `while relearning: its store has its own events up to seq ${mine}, a peer holds seq ${missing.event.seq}`
    sim.at(0, { k: 'crash', node: node.i, inc: node.inc, why, wipe: false })
    return true
  }

  /**
   * After the holds scenario: a terminal whose own history fills half a catch-up page loses its
   * disk (its refill then often spans pages, and a crash between their flushes leaves part of it), when
   * no other terminal is refilling (a refilling peer is no learn source: the lost-disk assumption).
   */
  private maybeWipe(): void {
    const sim = this.sim
    const f = sim.opts.faults
    if (!f.has('crash') || !f.has('wipe') || sim.n < 3) return
    for (const n of sim.nodes) if ((n.refill ?? 0) !== 0 || (n.up && n.core?.view.seqKnown === false)) return
    const ripe = sim.nodes.filter(
      (n) =>
        n.up &&
        n.core !== undefined &&
        n.core.view.nextSeq > CATCHUP_PAGE / 2 &&
        !sim.faults.outages.has(n.i),
    )
    if (ripe.length === 0 || !this.crashRng.chance(RELEARN_WIPE_RATE)) return
    const node = ripe[this.crashRng.int(ripe.length)]!
    this.relearnWiped = true
    sim.count('aimed-wipe')
    sim.terminals.crash(node, 'its disk will be wiped (aimed: its history spans catch-up pages)')
    sim.at(this.crashRng.range(150, 500), { k: 'restart', node: node.i, wipe: true, connected: true })
  }

  // ---- relearned holds ------------------------------------------------------------------------

  /** every fault tick of the safety phase: start the scenario, or move it on */
  tick(): void {
    const sim = this.sim
    if (sim.phase !== 'safety') return
    const h = this.holds
    if (h === undefined) {
      if (!this.holdsDone) this.maybeStart()
      else if (!this.relearnWiped) this.maybeWipe()
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
  private amount(): number {
    const cur = this.sim.policy.currencies[CURRENCY]!
    const hi = Math.min(cur.floorLimitMinor, cur.cardCapMinor / 2)
    return Math.floor((hi * (0.8 + this.holdsRng.next() * 0.2)) / 100) * 100
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
    const h = this.holds
    if (h === undefined || h.stage !== 'approve' || node.i !== h.origin) return
    const key = toHex(this.sim.workload.cardKey(h.card))
    const commit = records.find(
      (r) => r.event.event.type === 'commit' && toHex(r.event.event.reservation.event.cardKey) === key,
    )
    if (commit === undefined) return
    const sim = this.sim
    // its cable is pulled as it commits: the Commit stays home (an outage: no peer, no central)
    sim.log(`AIMED relearned holds: ${node.name} cut off as it commits the card's approval`)
    sim.faults.outages.add(node.i)
    for (let j = 0; j < sim.n; j++) if (j !== node.i) this.cut(node.i, j)
    sim.central.centralLinkDown[node.i] = 1
    sim.at(this.holdsRng.range(8000, 15_000), { k: 'heal', what: 'outage', a: node.i, b: 0 })
    // the split heals for the others; one holder's disk is lost, and it rejoins
    for (let a = 0; a < sim.n; a++)
      for (let b = 0; b < sim.n; b++) if (a !== node.i && b !== node.i) sim.net.linkDown[a * sim.n + b] = 0
    const holder = sim.nodes[h.holder]!
    h.stage = 'wiped'
    h.until = sim.now + 6000
    // (it reboots connected: a replaced terminal plugged straight back in)
    sim.terminals.crash(holder, 'its disk will be wiped (aimed: a holder of the card approval)')
    sim.at(this.holdsRng.range(150, 500), { k: 'restart', node: holder.i, wipe: true, connected: true })
  }

  private end(): void {
    this.holds = undefined
    this.holdsDone = true
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

  private payment(node: number, card: number, amountMinor: number): Payment {
    const nullifier = this.holdsRng.bytes(32)
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
