import { CENTRAL_REFILL_LATENCY_MS, EPOCH, ONLINE_TIMEOUT_MS } from './config.js'
import { type SignedEvent, toHex } from './deps.js'
import { Rng } from './rng.js'
import type { Sim } from './sim.js'
import type { CentralReq, Node } from './world.js'

/**
 * The simulated central service: online authorisation with its nullifier dedup, voids, and the
 * sync of signed events with per-origin confirmed marks. Answers may come late, be lost after
 * central acted, or not come at all (central or a terminal's link to it down).
 */
export class Central {
  constructor(private readonly sim: Sim) {
    this.centralLinkDown = new Uint8Array(sim.n)
    this.refillRng = new Rng((sim.opts.seed ^ 0x72666c6c) >>> 0)
  }

  /** lateness of refill answers: a stream of its own, so the main schedule is unchanged */
  private readonly refillRng: Rng

  centralDown = false

  readonly centralLinkDown: Uint8Array

  readonly cOnline = new Map<
    string,
    { nullifier: string; state: 'authorized' | 'voided' | 'tombstone'; origin?: number; at?: number }
  >()

  readonly cNullifier = new Map<string, string>()

  readonly cCommitted = new Map<string, string>()

  readonly cMarks = new Map<string, number>()

  /** the events central stores, per origin and seq (a wiped terminal takes its own back) */
  readonly cEvents = new Map<string, Map<number, SignedEvent>>()

  /**
   * dated beyond central's clock by more than the venue's skew: the daemon's central refuses it
   * (ERR_FUTURE_TS, packages/central/src/engine.ts `checkSignedBy`), as every peer does; a
   * terminal's sync holds that origin at it and sends it again later. Central's clock is the
   * simulation's, without skew.
   */
  ahead(ts: number): boolean {
    return ts > EPOCH + this.sim.now + this.sim.policy.maxClockSkewMs
  }

  send(node: Node, req: CentralReq): void {
    // a refill has fixed delays, no loss or lateness drawn from the main stream (config.ts: seeds
    // keep their schedules); it fails like any request when central is unreachable
    const refill = req.t === 'refill'
    if (this.centralDown || this.centralLinkDown[node.i]) {
      // unreachable: the request fails (the terminal cannot tell whether central got it)
      this.sim.at(refill ? CENTRAL_REFILL_LATENCY_MS : ONLINE_TIMEOUT_MS / 2, {
        k: 'centralAns',
        node: node.i,
        inc: node.inc,
        req,
        ok: false,
        unreachable: true,
      })
      return
    }
    if (refill) {
      this.sim.at(CENTRAL_REFILL_LATENCY_MS, { k: 'central', node: node.i, req })
      return
    }
    this.sim.at(this.sim.net.latency() * 3, { k: 'central', node: node.i, req })
  }

  serve(node: number, req: CentralReq): void {
    let ok = true
    let rejected = false
    let marks: number | undefined
    let voidStatus: 'voided' | 'committed' = 'voided'
    switch (req.t) {
      case 'refill': {
        const mine = this.cEvents.get(this.sim.nodes[node]!.hex)
        const events = mine === undefined ? [] : [...mine.values()].sort((a, b) => a.event.seq - b.event.seq)
        // in seeds with late central answers, some refills answer after the terminal gave up on
        // them (it learns from its peers alone then: the residual of "Lost disks")
        // (only after a lost disk, where it matters, and not for the terminal an aimed scenario
        // refills: aimed.ts needs it to learn promptly)
        const late =
          (this.sim.mix['central-late'] ?? 0) > 0 &&
          this.sim.check.wipedAt.has(node) &&
          !this.sim.aim.refillsUncut(node) &&
          this.refillRng.chance(0.25)
            ? this.refillRng.range(1500, 3000)
            : 0
        if (late > 0) this.sim.count('refill-late')
        this.sim.log(
          `central gives ${events.length} own events back to ${this.sim.nodes[node]!.name}${late > 0 ? ` (${Math.round(late)} ms late)` : ''}`,
        )
        this.sim.at(CENTRAL_REFILL_LATENCY_MS + late, {
          k: 'centralAns',
          node,
          inc: req.inc,
          req,
          ok: true,
          events,
        })
        return
      }
      case 'authorize': {
        const id = req.res.idHex
        const nullifier = toHex(req.res.event.nullifier)
        const known = this.cOnline.get(id)
        if (this.ahead(req.res.event.ts)) {
          // refused as a request (4xx): nothing recorded, nothing charged
          ok = false
          rejected = true
          this.sim.log(`central refused ${id.slice(0, 8)} from ${this.sim.nodes[node]!.name}: dated ahead`)
          break
        }
        if (known?.state === 'authorized') ok = true
        else if (known !== undefined) ok = false
        else {
          const holder = this.cNullifier.get(nullifier)
          if (holder !== undefined && holder !== id) ok = false
          else {
            this.cOnline.set(id, { nullifier, state: 'authorized', origin: node, at: this.sim.now })
            this.cNullifier.set(nullifier, id)
          }
        }
        this.sim.log(
          `central ${ok ? 'AUTHORISED' : 'refused'} ${id.slice(0, 8)} from ${this.sim.nodes[node]!.name}`,
        )
        break
      }
      case 'void': {
        const known = this.cOnline.get(req.resId)
        if (this.cCommitted.has(req.resId)) {
          // a Commit of it reached central first: it stands (the daemon's central answers `committed`)
          voidStatus = 'committed'
        } else if (known?.state === 'authorized') {
          known.state = 'voided'
          if (this.cNullifier.get(known.nullifier) === req.resId && !this.cCommitted.has(req.resId))
            this.cNullifier.delete(known.nullifier)
        } else if (known === undefined)
          this.cOnline.set(req.resId, { nullifier: toHex(req.res.event.nullifier), state: 'tombstone' })
        this.sim.log(
          `central ${voidStatus === 'committed' ? 'kept the committed' : 'voided'} ${req.resId.slice(0, 8)}`,
        )
        break
      }
      case 'sync': {
        for (const ev of req.events) {
          const o = toHex(ev.event.origin)
          this.sim.check.escape(ev, () => 'central')
          if (
            this.ahead(ev.event.ts) ||
            (ev.event.type === 'commit' && this.ahead(ev.event.reservation.event.ts))
          )
            continue
          // the first event stored at (origin, seq) stays (the daemon's central: ERR_SEQ_CONFLICT)
          const byOrigin = this.cEvents.get(o) ?? new Map<number, SignedEvent>()
          this.cEvents.set(o, byOrigin)
          if (!byOrigin.has(ev.event.seq)) byOrigin.set(ev.event.seq, ev)
          if (ev.event.type === 'commit') {
            const rid = ev.event.reservation.idHex
            if (!this.cCommitted.has(rid)) this.cCommitted.set(rid, ev.event.mode)
            this.cNullifier.set(toHex(ev.event.reservation.event.nullifier), rid)
          }
        }
        // contiguous marks of every origin the batch carried (forwarded events too); the answer
        // gives the sender its own
        const origins = new Set(req.events.map((ev) => toHex(ev.event.origin)))
        origins.add(this.sim.nodes[node]!.hex)
        for (const o of [...origins].sort()) {
          const s = this.cEvents.get(o)
          let m = this.cMarks.get(o) ?? 0
          while (s?.has(m + 1)) m++
          this.cMarks.set(o, m)
        }
        marks = this.cMarks.get(this.sim.nodes[node]!.hex) ?? 0
        break
      }
    }
    const n = this.sim.nodes[node]!
    if (this.sim.mix['central-lost'] && this.sim.rng.chance(this.sim.mix['central-lost'])) {
      this.sim.count('central-lost')
      this.sim.log(`central's answer to ${n.name} lost`)
      return
    }
    let delay = this.sim.net.latency() * 3
    if (this.sim.mix['central-late'] && this.sim.rng.chance(this.sim.mix['central-late'])) {
      this.sim.count('central-late')
      delay += this.sim.rng.range(300, 2000)
    }
    this.sim.at(delay, {
      k: 'centralAns',
      node,
      inc: req.inc,
      req,
      ok,
      ...(rejected ? { rejected } : {}),
      ...(marks === undefined ? {} : { marks }),
      ...(req.t === 'void' ? { voidStatus } : {}),
    })
  }
}
