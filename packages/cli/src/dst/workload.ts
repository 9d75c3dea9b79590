import { CURRENCY } from './config.js'
import { toHex } from './deps.js'
import type { Sim } from './sim.js'
import type { Payment } from './world.js'

/**
 * The adversarial workload: fresh, hot and replayed credential uses, one card at many terminals
 * (cap races, bursts), one credential at many terminals at once, a mix of online and offline
 * payments; in the liveness phase, fresh payments at the healed quorum only.
 */
export class Workload {
  constructor(private readonly sim: Sim) {}

  nextPayment = 1

  readonly cards: { key: Uint8Array }[] = []

  /** cards of aimed fault points (aimed.ts), numbered −1, −2, …: the random draws never pick them */
  readonly aimedCards: { key: Uint8Array }[] = []

  cardKey(card: number): Uint8Array {
    return card < 0 ? this.aimedCards[-1 - card]!.key : this.cards[card]!.key
  }

  readonly usedNullifiers: { nullifier: Uint8Array; card: number }[] = []

  livenessCore: number[] = []

  draw(): void {
    const r = this.sim.wl
    const up = this.sim.nodes.filter((n) => n.up && n.started)
    if (up.length === 0) return
    const fresh = (card: number) => {
      const nullifier = r.bytes(32)
      this.usedNullifiers.push({ nullifier, card })
      return nullifier
    }
    const mk = (
      node: number,
      nullifier: Uint8Array,
      card: number,
      amount: number,
      online: boolean,
    ): Payment => ({
      id: this.nextPayment++,
      node,
      nullifier,
      nullHex: toHex(nullifier),
      card,
      amountMinor: amount,
      online,
      requireOnline: online && r.chance(0.1),
      attempt: 1,
    })
    const amount = () => (r.chance(0.7) ? 100 + r.int(30) * 100 : 3000 + r.int(40) * 100)
    if (this.sim.phase === 'liveness') {
      const node = this.livenessCore[r.int(this.livenessCore.length)]!
      const card = this.cards.length
      this.cards.push({ key: r.bytes(16) })
      this.sim.pos.pay(mk(node, fresh(card), card, 500, false))
      return
    }
    const x = r.next()
    const online = r.chance(this.sim.mix.online!)
    if (x < 0.1 && up.length >= 3) {
      // a cap race: one fresh card at three or more terminals, a few ms apart, amounts such that
      // any two fit the card cap and three do not. The later taps are decided while the earlier
      // ones' requests and Commits are on the wire and during their own fsync: where the view an
      // origin sends must be the one its decision counted (mutant 'view-after-fsync').
      const card = this.cards.length
      this.cards.push({ key: r.bytes(16) })
      const cap = this.sim.policy.currencies[CURRENCY]!.cardCapMinor
      const k = Math.min(up.length, 3 + r.int(3))
      const at = up.map((n) => n.i)
      for (let j = at.length - 1; j > 0; j--) {
        const m = r.int(j + 1)
        ;[at[j], at[m]] = [at[m]!, at[j]!]
      }
      this.sim.count('cap-race')
      for (let j = 0; j < k; j++) {
        const amount = Math.floor(cap / 3 / 100) * 100 + 100 + r.int(Math.floor(cap / 6 / 100)) * 100
        const p = mk(at[j]!, fresh(card), card, amount, false)
        if (j === 0) this.sim.pos.pay(p)
        else this.sim.at(r.range(0.2, 3) * j, { k: 'retry', payment: p })
      }
    } else if (x < 0.7 || this.usedNullifiers.length === 0) {
      // half on the few hot cards (pushed past their caps), half on cards seen once or twice
      let card = r.int(this.cards.length)
      if (r.chance(0.5)) {
        card = this.cards.length
        this.cards.push({ key: r.bytes(16) })
      }
      this.sim.pos.pay(mk(r.pick(up).i, fresh(card), card, amount(), online))
    } else if (x < 0.85) {
      // a replayed credential use, at any terminal
      const u = r.pick(this.usedNullifiers)
      this.sim.count('replay')
      this.sim.pos.pay(mk(r.pick(up).i, u.nullifier, u.card, amount(), online))
    } else if (x < 0.92) {
      // one card at many terminals at once, other credential uses, together past its cap
      const card = r.int(this.cards.length)
      const k = 2 + r.int(Math.min(4, up.length))
      this.sim.count('card-burst')
      for (let j = 0; j < k; j++)
        this.sim.pos.pay(mk(r.pick(up).i, fresh(card), card, 2000 + r.int(30) * 100, false))
    } else {
      // one credential at many terminals at once
      const card = r.int(this.cards.length)
      const nullifier = fresh(card)
      const k = 2 + r.int(Math.min(4, up.length))
      this.sim.count('burst')
      for (let j = 0; j < k; j++)
        this.sim.pos.pay(mk(r.pick(up).i, nullifier, card, amount(), r.chance(this.sim.mix.online!)))
    }
  }

  /** the next workload step, and the one after */
  paced(): void {
    // after the liveness approval only the drain runs: voids and syncs reach central
    if (this.sim.phase === 'liveness' && this.sim.livenessApprovals > 0) return
    this.draw()
    this.sim.at(this.sim.wl.range(0.2, 2) * this.sim.mix.gapMs!, { k: 'pay' })
  }
}
