import type { Sim } from './sim.js'
import type { EvOf } from './world.js'

/**
 * Fault injection of the safety phase: partitions (symmetric or one way, often one terminal's
 * pulled cable), flapping links, crashes with or without a wiped disk, clock jumps, central down
 * or cut off from one terminal. The fault mix itself is drawn per seed by the driver (sim.ts).
 */
export class Faults {
  constructor(private readonly sim: Sim) {}

  /** terminals whose LAN is down (an outage): no peer, no central, until it ends */
  readonly outages = new Set<number>()

  inject(): void {
    const r = this.sim.rng
    if (this.sim.mix.partition && r.chance(this.sim.mix.partition)) {
      const side = new Set<number>()
      // half of the cuts isolate one terminal (a pulled cable), the others split the venue
      if (r.chance(0.5)) side.add(r.int(this.sim.n))
      else for (let i = 0; i < this.sim.n; i++) if (r.chance(0.4)) side.add(i)
      const oneWay = this.sim.mix.asymmetric > 0 && r.chance(this.sim.mix.asymmetric)
      this.sim.count(oneWay ? 'asymmetric' : 'partition')
      this.sim.log(
        `PARTITION ${[...side].map((i) => `T${i + 1}`).join(',') || '-'} | rest${oneWay ? ' (one way)' : ''}`,
      )
      for (const a of side)
        for (let b = 0; b < this.sim.n; b++) {
          if (side.has(b)) continue
          this.sim.net.linkDown[a * this.sim.n + b] = 1
          if (!oneWay) this.sim.net.linkDown[b * this.sim.n + a] = 1
        }
      this.sim.net.netDirty = true
      const healIn = r.range(500, 8000)
      this.sim.at(healIn, { k: 'heal', what: 'all', a: 0, b: 0 })
      if (side.size === 1 && r.chance(0.5)) {
        // a pulled cable: the terminal's way to central goes through the same LAN
        const [only] = [...side]
        this.sim.central.centralLinkDown[only!] = 1
        this.sim.at(healIn, { k: 'heal', what: 'central', a: only!, b: 0 })
      }
    }
    if (this.sim.mix.flap && r.chance(this.sim.mix.flap) && this.sim.n > 1) {
      const a = r.int(this.sim.n)
      const b = (a + 1 + r.int(this.sim.n - 1)) % this.sim.n
      this.sim.count('flap')
      for (let k = 0; k < 4; k++) {
        this.sim.at(k * r.range(50, 400), { k: 'heal', what: 'cut', a, b })
        this.sim.at(k * r.range(50, 400) + r.range(20, 300), { k: 'heal', what: 'link', a, b })
      }
    }
    if (this.sim.mix.crash && r.chance(this.sim.mix.crash)) {
      const node = this.sim.nodes[r.int(this.sim.n)]!
      if (node.up) {
        // (a terminal an aimed scenario needs with its disk keeps it: aimed.ts)
        const wipe = this.sim.mix.wipe > 0 && r.chance(this.sim.mix.wipe) && !this.sim.aim.keepsDisk(node.i)
        this.sim.terminals.crash(node, wipe ? 'its disk will be wiped' : 'power loss')
        this.sim.at(r.range(200, 5000), { k: 'restart', node: node.i, wipe })
      }
    }
    if (this.sim.mix.jump && r.chance(this.sim.mix.jump)) {
      // clocks that jump matter most where the isolated budget is in use: prefer a cut-off terminal
      const cut = this.sim.nodes.filter((n) => n.up && n.core?.reach.mode === 'isolated')
      const node = cut.length > 0 && r.chance(0.6) ? r.pick(cut) : this.sim.nodes[r.int(this.sim.n)]!
      const d = Math.round(r.chance(0.7) ? r.range(60_000, 40 * 60_000) : -r.range(1000, 120_000))
      node.jump += d
      this.sim.count('jump')
      this.sim.log(`${node.name} clock jumps ${d > 0 ? '+' : ''}${Math.round(d / 1000)} s`)
    }
    if (this.sim.mix.outage && r.chance(this.sim.mix.outage)) {
      // A terminal's LAN is down for a long stretch (a dead switch port, a pulled cable nobody
      // notices): no peer and no central while customers keep tapping at it. Its isolated
      // approvals must stay within the isolated cap until central confirms them, however long the
      // outage lasts. A run covers seconds, a real outage can last past the card window: with
      // the 'jump' fault, the terminal's clock is moved past it once the terminal approved alone
      // (the outage's length as its clock measures it).
      const node = this.sim.nodes[r.int(this.sim.n)]!
      if (node.up && !this.outages.has(node.i)) {
        this.outages.add(node.i)
        this.cutOff(node.i)
        this.sim.count('outage')
        this.sim.log(`OUTAGE ${node.name}: no peer, no central`)
        const lasts = r.range(4000, 15_000)
        this.sim.at(lasts, { k: 'heal', what: 'outage', a: node.i, b: 0 })
        if (this.sim.opts.faults.has('crash') && r.chance(0.5)) {
          // staff power-cycle a terminal that lost its network: it boots cut off, with no
          // connection to lose, and finds its peers unreachable at once
          const why = 'power-cycled by staff during an outage'
          this.sim.at(r.range(100, 800), { k: 'crash', node: node.i, inc: node.inc, why, wipe: false })
        }
        if (this.sim.mix.jump && r.chance(0.5)) {
          const ms = Math.round(this.sim.policy.cardWindowMs + r.range(60_000, 20 * 60_000))
          const seen = this.sim.check.isolatedByNode.get(node.i)?.length ?? 0
          this.longOutages.set(node.i, { ms, seen })
        }
      }
    }
    if (this.sim.mix['central-down'] && r.chance(this.sim.mix['central-down'])) {
      if (r.chance(0.5)) {
        this.sim.central.centralDown = true
        this.sim.count('central-down')
        this.sim.log('central unreachable')
        this.sim.at(r.range(500, 6000), { k: 'centralUp' })
      } else {
        const i = r.int(this.sim.n)
        this.sim.central.centralLinkDown[i] = 1
        this.sim.count('central-down')
        this.sim.at(r.range(500, 6000), { k: 'heal', what: 'central', a: i, b: 0 })
      }
    }
  }

  /** outages long on the terminal's clock: its jump, once it approved alone (isolated approvals then) */
  private readonly longOutages = new Map<number, { ms: number; seen: number }>()

  /** the clock of a terminal in a long outage moves past the card window once it approved alone */
  private longOutage(): void {
    for (const [i, o] of [...this.longOutages].sort((x, y) => x[0] - y[0])) {
      const node = this.sim.nodes[i]!
      if (!this.outages.has(i)) {
        this.longOutages.delete(i)
        continue
      }
      if (!node.up) continue
      if ((this.sim.check.isolatedByNode.get(i)?.length ?? 0) <= o.seen) continue
      this.longOutages.delete(i)
      node.jump += o.ms
      this.sim.count('jump')
      this.sim.log(`${node.name} clock jumps +${Math.round(o.ms / 1000)} s (a long outage)`)
    }
  }

  /** every 100 ms of the safety phase: maybe inject faults */
  tick(): void {
    if (this.sim.phase === 'safety') this.longOutage()
    if (this.sim.phase === 'safety') this.inject()
    this.sim.aim.tick()
    this.sim.at(100, { k: 'fault' })
  }

  /** a partition, a flapping link or a link to central heals (or is cut) */
  heal(ev: EvOf<'heal'>): void {
    if (ev.what === 'all') {
      if (this.sim.phase === 'safety' && this.sim.rng.chance(0.3)) return // some partitions outlast others
      this.sim.net.linkDown.fill(0)
    } else if (ev.what === 'cut') {
      this.sim.net.linkDown[ev.a * this.sim.n + ev.b] = 1
      this.sim.net.linkDown[ev.b * this.sim.n + ev.a] = 1
    } else if (ev.what === 'link') {
      this.sim.net.linkDown[ev.a * this.sim.n + ev.b] = 0
      this.sim.net.linkDown[ev.b * this.sim.n + ev.a] = 0
    } else if (ev.what === 'central') this.sim.central.centralLinkDown[ev.a] = 0
    else if (ev.what === 'outage' && this.outages.delete(ev.a)) {
      for (let j = 0; j < this.sim.n; j++) {
        if (j === ev.a) continue
        this.sim.net.linkDown[ev.a * this.sim.n + j] = 0
        this.sim.net.linkDown[j * this.sim.n + ev.a] = 0
      }
      this.sim.central.centralLinkDown[ev.a] = 0
      this.sim.log(`${this.sim.nodes[ev.a]!.name} outage over`)
    }
    // other heals do not end an outage
    if (this.sim.phase === 'safety') for (const i of [...this.outages].sort((x, y) => x - y)) this.cutOff(i)
    // nor the cut of an aimed scenario's terminal
    this.sim.aim.healed()
    this.sim.net.netDirty = true
  }

  /** cut terminal i from every peer and from central */
  private cutOff(i: number): void {
    for (let j = 0; j < this.sim.n; j++) {
      if (j === i) continue
      this.sim.net.linkDown[i * this.sim.n + j] = 1
      this.sim.net.linkDown[j * this.sim.n + i] = 1
    }
    this.sim.central.centralLinkDown[i] = 1
    this.sim.net.netDirty = true
  }
}
