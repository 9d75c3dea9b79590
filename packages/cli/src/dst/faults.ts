import type { Sim } from './sim.js'
import type { EvOf } from './world.js'

/**
 * Fault injection of the safety phase: partitions (symmetric or one way, often one terminal's
 * pulled cable), flapping links, crashes with or without a wiped disk, clock jumps, central down
 * or cut off from one terminal. The fault mix itself is drawn per seed by the driver (sim.ts).
 */
export class Faults {
  constructor(private readonly sim: Sim) {}

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
        const wipe = this.sim.mix.wipe > 0 && r.chance(this.sim.mix.wipe)
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

  /** every 100 ms of the safety phase: maybe inject faults */
  tick(): void {
    if (this.sim.phase === 'safety') this.inject()
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
    this.sim.net.netDirty = true
  }
}
