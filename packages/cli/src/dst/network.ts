import { eventsAfter, type WireMsg } from '@nullmesh/mesh/core'
import { CATCHUP_PAGE } from './config.js'
import { decodeAck, signatureChecks, toHex } from './deps.js'
import type { Sim } from './sim.js'
import type { EvOf, Node } from './world.js'

/**
 * The simulated network: physical links (cut, one way, flapping), connections that follow them
 * (handshake, then catch-up; a ping timeout notices a lost one), latency, loss as late delivery on
 * a stream, duplicated gossip, and the catch-up exchange between two peers.
 */
export class Network {
  constructor(private readonly sim: Sim) {
    const n = sim.n
    this.linkDown = new Uint8Array(n * n)
    this.conn = new Uint8Array(n * n)
    this.epoch = new Uint32Array(n * n)
    this.lostAt = new Float64Array(n * n).fill(-1)
  }

  /** link a→b is cut: linkDown[a*n+b] */
  readonly linkDown: Uint8Array

  /** connection state per unordered pair: 0 down, 1 handshaking, 2 up; epoch counts (re)connections */
  readonly conn: Uint8Array

  readonly epoch: Uint32Array

  readonly lostAt: Float64Array

  netDirty = true

  latency(): number {
    return (
      0.3 +
      this.sim.rng.next() * 1.5 +
      (this.sim.mix.reorder ? this.sim.rng.next() * this.sim.mix.reorder : 0)
    )
  }

  pair(a: number, b: number): number {
    return a < b ? a * this.sim.n + b : b * this.sim.n + a
  }

  /** on a stream: bytes sent before a crash or a cut still arrive; a restarted receiver gets nothing */
  transmit(from: number, to: number, msg: WireMsg): void {
    const toInc = this.sim.nodes[to]!.inc
    let delay = this.latency()
    // a lost segment on a stream is retransmitted: late, not lost
    if (this.sim.mix.loss && this.sim.rng.chance(this.sim.mix.loss)) delay += this.sim.rng.range(200, 1000)
    this.sim.at(delay, { k: 'deliver', to, from, msg, toInc, fromInc: this.sim.nodes[from]!.inc })
    if (msg.t === 'push' && this.sim.mix.dup && this.sim.rng.chance(this.sim.mix.dup)) {
      this.sim.count('dup')
      this.sim.at(delay + this.sim.rng.range(0, 50), { k: 'deliver', to, from, msg, toInc })
    }
  }

  /** connections follow the links: handshake (hello, then catch-up) up, ping timeout down */
  update(): void {
    this.netDirty = false
    for (let a = 0; a < this.sim.n; a++)
      for (let b = a + 1; b < this.sim.n; b++) {
        const p = a * this.sim.n + b
        const na = this.sim.nodes[a]!
        const nb = this.sim.nodes[b]!
        const physical =
          na.up && nb.up && !this.linkDown[a * this.sim.n + b] && !this.linkDown[b * this.sim.n + a]
        if (physical && this.conn[p] === 0 && this.lostAt[p]! < 0) {
          this.conn[p] = 1
          this.epoch[p]!++
          na.core!.peerConnected(nb.hex)
          nb.core!.peerConnected(na.hex)
          this.sim.at(this.latency() * 4, { k: 'hello', a, b, epoch: this.epoch[p]! })
        } else if (!physical && this.conn[p] !== 0 && this.lostAt[p]! < 0) {
          this.lostAt[p] = this.sim.now + this.sim.rng.range(1500, 3000)
        } else if (physical && this.lostAt[p]! >= 0 && this.conn[p] !== 0) {
          this.lostAt[p] = -1
        }
        if (this.lostAt[p]! >= 0 && this.lostAt[p]! <= this.sim.now) {
          this.lostAt[p] = -1
          if (this.conn[p] !== 0) {
            this.conn[p] = 0
            this.epoch[p]!++
          }
          if (na.up && na.core) na.core.peerLost(nb.hex)
          if (nb.up && nb.core) nb.core.peerLost(na.hex)
          this.netDirty = true
        } else if (this.lostAt[p]! >= 0) this.netDirty = true
      }
  }

  /**
   * A formed venue (SimOptions.formed): what net(), 'hello' and the initial catch-ups would do for
   * every pair at time 0, without their messages and latency. The ledgers are empty at time 0, so
   * the catch-ups would carry no events; each core still learns that its history is empty from a
   * roster majority before it signs, through the same catch-up inputs.
   */
  form(): void {
    for (let a = 0; a < this.sim.n; a++)
      for (let b = a + 1; b < this.sim.n; b++) {
        const p = a * this.sim.n + b
        const na = this.sim.nodes[a]!
        const nb = this.sim.nodes[b]!
        this.conn[p] = 2
        this.epoch[p]!++
        na.core!.peerConnected(nb.hex)
        nb.core!.peerConnected(na.hex)
        na.core!.peerVerified(nb.hex)
        nb.core!.peerVerified(na.hex)
        na.core!.catchupStarted(nb.hex, true)
        nb.core!.catchupStarted(na.hex, true)
        na.core!.catchupEnded(nb.hex, true, true)
        nb.core!.catchupEnded(na.hex, true, true)
      }
    this.sim.log(`venue formed: ${(this.sim.n * (this.sim.n - 1)) / 2} connections set up without traffic`)
  }

  catchupRequest(from: Node, to: Node, initial: boolean): void {
    const p = this.pair(from.i, to.i)
    from.core!.catchupStarted(to.hex, initial)
    const { marks, held } = from.disk.marks()
    this.sim.at(this.latency(), {
      k: 'catchreq',
      from: from.i,
      to: to.i,
      epoch: this.epoch[p]!,
      marks,
      held,
      initial,
    })
  }

  /** a message reaches a terminal */
  deliver(ev: EvOf<'deliver'>): void {
    const node = this.sim.nodes[ev.to]!
    if (!node.up || node.core === undefined) return
    if (node.inc !== ev.toInc) return
    if (ev.msg.t === 'ans' && ev.msg.ack !== null) {
      const d = decodeAck(ev.msg.ack)
      // an ack its sender gave before its disk was wiped (a late retransmission) died with the disk
      const lost = ev.fromInc !== undefined && (this.sim.check.wipedInc.get(ev.from) ?? 0) > ev.fromInc
      if (d.ok && d.value.ack.ok && !lost) {
        const set = this.sim.check.acked.get(ev.from) ?? new Set<string>()
        set.add(toHex(d.value.ack.reservationId))
        this.sim.check.acked.set(ev.from, set)
      }
    }
    if (ev.msg.t === 'req' || ev.msg.t === 'push') {
      const signed = this.sim.byBytes.get(ev.msg.bytes)
      // sent by an incarnation whose disk was wiped since (in flight across the crash): it left
      // its origin before the wipe, whenever it arrives
      const sentBefore =
        ev.fromInc !== undefined && (this.sim.check.wipedInc.get(ev.from) ?? 0) > ev.fromInc
          ? this.sim.check.wipedAt.get(ev.from)
          : undefined
      if (signed !== undefined)
        this.sim.check.escape(signed, () => `${this.sim.nodes[ev.from]!.name}→${node.name}`, sentBefore)
    }
    if (this.sim.opts.trace)
      this.sim.log(
        `${node.name} <- ${ev.msg.t}${'rid' in ev.msg ? `#${ev.msg.rid}` : ''} from ${this.sim.nodes[ev.from]!.name}`,
      )
    const checks = signatureChecks()
    node.core.message(this.sim.nodes[ev.from]!.hex, ev.msg)
    if (ev.msg.t === 'push') {
      this.sim.cost.disseminationDeliveries++
      this.sim.cost.disseminationSignatureChecks += signatureChecks() - checks
    } else this.sim.cost.barrierSignatureChecks += signatureChecks() - checks
  }

  /** a dial the core asked for ended */
  dialed(ev: EvOf<'dialed'>): void {
    const node = this.sim.nodes[ev.node]!
    if (node.inc !== ev.inc || !node.up) return
    const j = this.sim.venue.index.get(ev.key)!
    const p = this.pair(node.i, j)
    // a dial opens a new connection at once, even while the old one's loss is not noticed yet
    if (ev.ok && this.conn[p] === 0 && this.lostAt[p]! >= 0) {
      this.lostAt[p] = -1
      this.netDirty = true
    }
    node.core!.dialEnded(ev.key, ev.ok ? 'connected' : 'unreachable')
  }

  /** a handshake completed: both sides verified, both catch up */
  hello(ev: EvOf<'hello'>): void {
    const p = this.pair(ev.a, ev.b)
    if (this.epoch[p] !== ev.epoch || this.conn[p] !== 1) return
    this.conn[p] = 2
    const na = this.sim.nodes[ev.a]!
    const nb = this.sim.nodes[ev.b]!
    na.core!.peerVerified(nb.hex)
    nb.core!.peerVerified(na.hex)
    this.catchupRequest(na, nb, true)
    this.catchupRequest(nb, na, true)
  }

  /** a catch-up request reaches the serving peer */
  serveCatchup(ev: EvOf<'catchreq'>): void {
    const server = this.sim.nodes[ev.to]!
    const client = this.sim.nodes[ev.from]!
    const p = this.pair(ev.from, ev.to)
    if (this.epoch[p] !== ev.epoch || !server.up || this.conn[p] !== 2) {
      if (client.up && client.core && this.epoch[p] === ev.epoch)
        client.core.catchupEnded(server.hex, false, ev.initial)
      else if (client.up && client.core) client.core.catchupEnded(server.hex, false, ev.initial)
      return
    }
    const events = eventsAfter(server.disk.readable(), ev.marks, 200_000, ev.held)
    this.sim.at(this.latency() + events.length * 0.01, {
      k: 'catchans',
      to: ev.from,
      from: ev.to,
      epoch: ev.epoch,
      frames: events.map((e) => e.bytes),
      initial: ev.initial,
    })
  }

  /** a catch-up answer reaches the asking peer */
  catchupAnswered(ev: EvOf<'catchans'>): void {
    const client = this.sim.nodes[ev.to]!
    if (!client.up || client.core === undefined) return
    const server = this.sim.nodes[ev.from]!
    const ok = this.epoch[this.pair(ev.from, ev.to)] === ev.epoch
    if (ok)
      for (const bytes of ev.frames) {
        const signed = this.sim.byBytes.get(bytes)
        if (signed !== undefined)
          this.sim.check.escape(signed, () => `catch-up ${server.name}→${client.name}`)
      }
    if (ok && client.refill === 1 && ev.frames.length > 0) client.refill = 2
    if (ok) {
      this.sim.cost.catchups++
      this.sim.cost.catchupEvents += ev.frames.length
      for (const bytes of ev.frames) {
        const signed = this.sim.byBytes.get(bytes)
        if (signed !== undefined && client.core.view.known.has(signed.idHex))
          this.sim.cost.catchupEventsHeld++
      }
    }
    if (ok)
      for (let i = 0; i < ev.frames.length; i += CATCHUP_PAGE)
        client.core.catchupBatch(server.hex, ev.frames.slice(i, i + CATCHUP_PAGE))
    client.core.catchupEnded(server.hex, ok, ev.initial)
  }

  /** every 50 ms: bring the connections in line with the links */
  tick(): void {
    if (this.netDirty) this.update()
    this.sim.at(50, { k: 'net' })
  }
}
