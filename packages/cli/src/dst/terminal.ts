import { type Effect, MeshCore, type MutationName } from '@nullmesh/mesh/core'
import { CATCHUP_PAGE, CENTRAL_REFILL_TIMEOUT_MS, EPOCH, FORWARD_PER_SYNC, VENUE } from './config.js'
import { type SignedEvent, toHex } from './deps.js'
import { restore } from './disk.js'
import type { Sim } from './sim.js'
import { type EvOf, type Node, originOf } from './world.js'

/**
 * The simulated terminal host: boots a real MeshCore on what its disk kept, carries out the core's
 * effects (sends, gossip, writes with fsync latency, timers, dials), crashes (at any step, or right
 * after a write was asked for), restarts with the disk kept or wiped, and its periodic work.
 */
export class Terminals {
  constructor(private readonly sim: Sim) {}

  boot(node: Node): void {
    node.inc++
    node.up = true
    node.started = false
    node.ops = new Map()
    node.writes = new Map()
    node.online = this.sim.pos.onlineCore()
    node.attempts = new Map()
    node.knownAt = new Map()
    node.requested = new Set()
    const inc = node.inc
    const core = new MeshCore({
      venueId: VENUE,
      policy: this.sim.policy,
      key: node.key,
      roster: {
        size: this.sim.n,
        members: this.sim.venue.hex,
        isEnrolled: (k, now) => {
          const c = this.sim.venue.certs.get(k)
          return c !== undefined && now >= c.notBefore && now <= c.notAfter
        },
      },
      clock: {
        wall: () => Math.floor(EPOCH + this.sim.now + node.skew + node.jump),
        mono: () => this.sim.now,
      },
      rng: () => this.sim.rng.next(),
      effects: (e) => this.effect(node, inc, e),
      groups: this.sim.venue.groups,
      // central keeps what terminals sync: a wiped terminal takes its own events back (recovery.ts)
      centralRefill: true,
      ...(this.sim.opts.mutations === undefined
        ? {}
        : { mutations: this.sim.opts.mutations as ReadonlySet<MutationName> }),
    })
    node.core = core
    // recovery: rebuild from what the disk kept
    // a crash cut a refill after a lost disk: the store is neither intact nor empty (recovery.ts)
    if (node.disk.relearning && node.disk.durable.length > 0) this.sim.count('relearn-interrupted')
    const { state, ownPending } = restore(node.disk.durable, node.hex, {
      confirmed: node.disk.confirmed,
      relearning: node.disk.relearning,
      learnedThrough: node.disk.learnedThrough,
    })
    core.load(state)
    const pending = ownPending.map((reservation) => ({
      reservation,
      keepPending: node.disk.markers.has(reservation.idHex),
    }))
    node.relearnPending = !core.view.seqKnown
    if (node.relearnPending) this.sim.check.learnStarts(node)
    node.refilling = false
    node.refillAsked = false
    node.refilledIds = undefined
    // what the checker knew at an earlier learning says nothing about a new one's; a restart with
    // its disk keeps it (seed 5015: a wiped T1 learned from peers alone, central unreachable, then
    // restarted with its disk and reused the seq of an approval only central held — the residual)
    if (node.relearnPending) this.sim.check.certifiedAtLearn.delete(node.i)
    const op = this.opId()
    node.ops.set(op, { kind: 'start' })
    core.start(op, pending)
    this.sim.at(this.sim.rng.range(100, 500), { k: 'tick', node: node.i, inc })
    this.sim.net.netDirty = true
  }

  private nextOp = 1

  opId(): number {
    return this.nextOp++
  }

  /** online reservations that went through a quorum round */
  readonly onlineRounds = new Set<string>()

  crash(node: Node, why: string): void {
    if (!node.up) return
    // an ack means "I durably hold this nullifier": whatever a crash loses, it was not acked
    const acked = this.sim.check.acked.get(node.i)
    if (acked !== undefined && acked.size > 0) {
      const held = new Set<string>()
      for (const r of node.disk.durable) if (r.held) held.add(r.event.idHex)
      for (const id of [...acked].sort())
        if (!held.has(id))
          this.sim.fail(
            'ack-not-durable',
            `${node.name} crashed without a durable hold of ${id.slice(0, 8)}, which it had acked`,
          )
      acked.clear()
    }
    this.sim.log(`${node.name} CRASH (${why}); ${node.disk.pending.length} writes not durable lost`)
    this.sim.count('crash')
    node.up = false
    node.core = undefined
    node.disk.crash()
    this.sim.check.checkEscrowSum(`${node.name} crashed`)
    for (let j = 0; j < this.sim.n; j++) {
      if (j === node.i) continue
      const p = this.sim.net.pair(node.i, j)
      if (this.sim.net.conn[p] !== 0) {
        this.sim.net.conn[p] = 0
        this.sim.net.epoch[p]!++
        const other = this.sim.nodes[j]!
        // the peer notices the dead connection after a ping timeout
        if (other.up) this.sim.net.lostAt[p] = this.sim.now + this.sim.rng.range(1500, 3000)
      }
    }
    this.sim.net.netDirty = true
  }

  /** numbers the effects of all cores: a total order of what each core learnt and did */
  effectNo = 0

  /** carry out one effect; calls back into a core only from the queue */
  effect(node: Node, inc: number, e: Effect): void {
    if (node.inc !== inc || !node.up) return
    this.effectNo++
    switch (e.type) {
      case 'send': {
        const to = this.sim.venue.index.get(e.to)!
        const msg = e.msg
        if (msg.t === 'req' && msg.online) {
          const signed = this.sim.byBytes.get(msg.bytes)
          if (signed !== undefined) this.onlineRounds.add(signed.idHex)
        } else if (msg.t === 'req') this.sim.check.checkView(node, msg.bytes, msg.view)
        const p = this.sim.net.pair(node.i, to)
        if (this.sim.net.conn[p] !== 2) {
          // no stream: a request fails at once
          if (msg.t === 'req')
            this.sim.at(0.1, {
              k: 'deliver',
              to: node.i,
              from: to,
              msg: { t: 'ans', rid: msg.rid, ack: null },
              toInc: node.inc,
            })
          return
        }
        if (msg.t !== 'push') this.sim.cost.barrierMessages++
        this.sim.net.transmit(node.i, to, msg)
        return
      }
      case 'gossip': {
        for (let j = 0; j < this.sim.n; j++) {
          if (j === node.i || this.sim.net.linkDown[node.i * this.sim.n + j]) continue
          if (this.sim.mix.loss && this.sim.rng.chance(this.sim.mix.loss)) continue
          this.sim.at(this.sim.net.latency() * 2, {
            k: 'deliver',
            to: j,
            from: node.i,
            msg: { t: 'push', bytes: e.bytes },
            toInc: this.sim.nodes[j]!.inc,
          })
        }
        return
      }
      case 'write': {
        const w = node.disk.append(
          e.records.map((r) => ({ event: r.event, held: r.held, ackGiven: r.ackGiven })),
          e.sync,
          e.relearning,
          e.learnedThrough,
        )
        this.sim.aim.written(node, e.records)
        if (e.sync) {
          // the relearning mark's writes are a start-up cost (a fresh or wiped store), not a payment's
          if (e.relearning === undefined) this.sim.cost.fsyncs++
          const lat = this.sim.fsyncLatency()
          this.sim.at(lat, { k: 'fsync', node: node.i, inc, w, coreW: [e.id] })
        } else {
          this.sim.at(this.sim.rng.range(20, 300), { k: 'flush', node: node.i, inc, w })
        }
        // a fault point aimed at escrow transfers (rare, so a plain rate would seldom hit them)
        const transfer = e.sync && e.records.some((r) => r.event.event.type === 'transfer')
        const crashRate = transfer
          ? Math.max(this.sim.mix['crash-mid-write'] ?? 0, 0.25)
          : this.sim.mix['crash-mid-write']
        if (
          this.sim.mix['crash-mid-write'] &&
          this.sim.phase === 'safety' &&
          this.sim.rng.chance(crashRate!)
        ) {
          // before this write's fsync (and before anything else the core does next)
          this.sim.count('crash-mid-write')
          const wipe =
            this.sim.mix.wipe > 0 &&
            this.sim.rng.chance(this.sim.mix.wipe / 4) &&
            !this.sim.aim.keepsDisk(node.i)
          const what =
            e.relearning === undefined
              ? e.records.map((r) => r.event.event.type).join('+')
              : `the relearning mark (${e.relearning ? 'set' : 'cleared'})`
          this.sim.at(0, { k: 'crash', node: node.i, inc, why: `right after asking to write ${what}`, wipe })
        }
        return
      }
      case 'timer':
        this.sim.at(e.afterMs, { k: 'timer', node: node.i, inc, id: e.id })
        return
      case 'dial': {
        // connections follow the physical links (net()): a dial succeeds when the link is up and
        // the peer runs (its connection comes through net()); else it is refused at once (a
        // crashed peer) or times out (a cut link)
        const j = this.sim.venue.index.get(e.key)!
        const other = this.sim.nodes[j]!
        const linked =
          !this.sim.net.linkDown[node.i * this.sim.n + j] && !this.sim.net.linkDown[j * this.sim.n + node.i]
        const ok = other.up && linked
        if (this.sim.opts.trace) this.sim.log(`${node.name} dials ${other.name} (${ok ? 'up' : 'down'})`)
        this.sim.net.netDirty = true
        // a fixed delay (no draw from the rng: runs without dials keep their schedule)
        this.sim.at(ok || linked ? 1 : e.timeoutMs, {
          k: 'dialed',
          node: node.i,
          inc,
          key: e.key,
          ok,
        })
        return
      }
      case 'done':
        this.sim.pos.done(node, e.op, e.result)
        return
      case 'event':
        if (!node.knownAt.has(e.event.idHex)) node.knownAt.set(e.event.idHex, this.effectNo)
        if (e.source === 'self') this.sim.byBytes.set(e.event.bytes, e.event)
        if (e.event.event.type === 'transfer') {
          this.sim.count('escrow-transfer')
          // the sum moves only when the giver signs or the receiver applies it (O(N) a check)
          const t = e.event.event
          if (toHex(t.origin) === node.hex || toHex(t.to) === node.hex)
            this.sim.check.checkEscrowSum(`${node.name} ${e.source} transfer`)
        }
        if (this.sim.opts.trace && e.source === 'self')
          this.sim.log(
            `${node.name} signed ${e.event.event.type} seq ${e.event.event.seq} ${e.event.idHex.slice(0, 8)}`,
          )
        return
      case 'mode':
        this.sim.log(`${node.name} mode ${e.mode}`)
        return
      case 'refill': {
        // the daemon's refill source (packages/terminal/src/refill.ts): central asked once
        // (the core asks once per start: the incarnation tells a late answer from a current one)
        node.refilling = true
        node.refillAsked = true
        this.sim.central.send(node, { t: 'refill', inc: node.inc })
        this.sim.at(CENTRAL_REFILL_TIMEOUT_MS, { k: 'refill', node: node.i, inc })
        return
      }
      case 'peer':
      case 'log':
        // the core logs the moment it has learnt its own history (recovery.ts, learned)
        if (e.type === 'log' && node.relearnPending === true && node.core?.view.seqKnown === true) {
          node.relearnPending = false
          this.sim.check.learned(node)
        }
        if (this.sim.opts.trace)
          this.sim.log(
            `${node.name} ${e.type === 'peer' ? `peer ${this.sim.name(e.key)} ${e.state}` : e.message}`,
          )
        return
    }
  }

  /** the refill failed (central unreachable, or no answer in time): learning goes on without */
  refillFailed(node: Node): void {
    if (!node.up || node.core === undefined || node.refilling !== true) return
    node.refilling = false
    this.sim.log(`${node.name} could not take its own events back from central`)
    node.core.refillEnded(false)
  }

  /** central answered the refill: every own event it holds, in seq order */
  refillAnswered(node: Node, events: SignedEvent[]): void {
    if (!node.up || node.core === undefined || node.refilling !== true) return
    node.refilling = false
    node.refilledIds = new Set(events.map((e) => e.idHex))
    for (let i = 0; i < events.length; i += CATCHUP_PAGE)
      node.core.refillBatch(events.slice(i, i + CATCHUP_PAGE).map((e) => e.bytes))
    node.core.refillEnded(true)
  }

  /** the refill's timeout */
  refillTimeout(ev: EvOf<'refill'>): void {
    const node = this.sim.nodes[ev.node]!
    if (node.inc === ev.inc) this.refillFailed(node)
  }

  /** a core timer fires */
  timer(ev: EvOf<'timer'>): void {
    const node = this.sim.nodes[ev.node]!
    if (node.inc === ev.inc && node.up) node.core!.timer(ev.id)
  }

  /** a sync write is durable */
  fsynced(ev: EvOf<'fsync'>): void {
    const node = this.sim.nodes[ev.node]!
    if (node.inc !== ev.inc || !node.up) return
    node.disk.flush(ev.w)
    for (const id of ev.coreW) node.core!.durable(id)
  }

  /** the background flush of unsynced writes */
  flushed(ev: EvOf<'flush'>): void {
    const node = this.sim.nodes[ev.node]!
    if (node.inc !== ev.inc || !node.up) return
    node.disk.flush(ev.w)
    // the refill of a wiped disk is learned in the view at once but written without fsync; the
    // core relearns its history from several peers (N − q + 1) before it signs again
    const relearning = node.core !== undefined && !node.core.view.seqKnown
    if (node.refill === 2 && node.disk.pending.length === 0 && !relearning) node.refill = 0
    // the aimed point first (aimed.ts): a store holding part of its own history
    if ((node.refill ?? 0) !== 0 && this.sim.aim.refillFlushed(node)) {
      node.refill = 0
      return
    }
    if (
      node.refill === 2 &&
      this.sim.phase === 'safety' &&
      this.sim.rng.chance(0.5) &&
      !this.sim.aim.refillsUncut(node.i)
    ) {
      // a replaced terminal crashes again while it refills its store from its peers: part of
      // the refill is on disk (what one peer sent, say), the rest lost or never learned
      // (docs/protocol.md, "Lost disks")
      node.refill = 0
      this.sim.count('refill-crash')
      const why = 'while refilling its wiped disk from its peers'
      this.sim.at(0, { k: 'crash', node: node.i, inc: ev.inc, why, wipe: false })
    }
  }

  /** a crash injected at a write */
  crashed(ev: EvOf<'crash'>): void {
    const node = this.sim.nodes[ev.node]!
    if (node.inc !== ev.inc || !node.up) return
    this.crash(node, ev.why)
    this.sim.at(this.sim.rng.range(200, 3000), { k: 'restart', node: node.i, wipe: ev.wipe })
  }

  /** a crashed terminal restarts (its disk maybe wiped); the POS retries what it lost */
  restart(ev: EvOf<'restart'>): void {
    const node = this.sim.nodes[ev.node]!
    if (node.up) return
    // a terminal an aimed scenario needs with its disk keeps it (a wipe drawn before it started)
    if (ev.wipe && this.sim.aim.keepsDisk(node.i)) ev.wipe = false
    if (ev.wipe) {
      this.sim.check.diskLost(node)
      node.disk.wipe()
      this.sim.check.wipedAt.set(node.i, this.sim.now)
      this.sim.check.wipedInc.set(node.i, node.inc + 1)
      // its acks die with the disk: the documented lost-disk case, not an ack broken
      this.sim.check.acked.get(node.i)?.clear()
      this.sim.count('wipe')
      node.refill = 1
    }
    this.sim.log(`${node.name} RESTART${ev.wipe ? ' with a wiped disk (same key)' : ''}`)
    if (ev.wipe && ev.connected !== true && this.sim.phase === 'safety' && this.sim.rng.chance(0.5)) {
      // a replaced terminal often boots before its network is back, and finds its peers one at a
      // time: it refills its store from the first while it still relearns its history
      this.sim.log(`${node.name} boots cut off from its peers`)
      for (let j = 0; j < this.sim.n; j++) {
        if (j === node.i) continue
        this.sim.net.linkDown[node.i * this.sim.n + j] = 1
        this.sim.net.linkDown[j * this.sim.n + node.i] = 1
      }
      let back = this.sim.rng.range(1000, 4000)
      for (let j = 0; j < this.sim.n; j++) {
        if (j === node.i) continue
        this.sim.at(back, { k: 'heal', what: 'link', a: node.i, b: j })
        back += this.sim.rng.range(200, 1500)
      }
    }
    const lost = [...node.inflight.values()]
    node.inflight = new Map()
    this.boot(node)
    // the POS retries what it never got an answer for: same credential use, sometimes other parameters
    for (const p of lost) {
      const changed = this.sim.wl.chance(0.3)
      this.sim.at(this.sim.wl.range(300, 1500), {
        k: 'retry',
        payment: {
          ...p,
          attempt: p.attempt + 1,
          amountMinor: changed ? p.amountMinor + 100 : p.amountMinor,
        },
      })
    }
  }

  /** a terminal's periodic work: anti-entropy, the sync with central, voids */
  tick(ev: EvOf<'tick'>): void {
    const node = this.sim.nodes[ev.node]!
    if (node.inc !== ev.inc || !node.up || node.core === undefined) return
    // anti-entropy with a random ready peer, the sync with central, voids to retry
    const peer = node.core.antiEntropyPeer()
    if (peer !== undefined && this.sim.rng.chance(0.3))
      this.sim.net.catchupRequest(node, this.sim.nodes[this.sim.venue.index.get(peer)!]!, false)
    const marks = this.sim.central.cMarks
    const own: SignedEvent[] = []
    const others: SignedEvent[] = []
    for (const e of node.disk.readable()) {
      const o = originOf(e)
      if (e.event.seq <= (marks.get(o) ?? 0)) continue
      if (o === node.hex) own.push(e)
      else others.push(e)
    }
    own.sort((x, y) => x.event.seq - y.event.seq)
    // every terminal forwards what central lacks of its peers' events too, as the daemon's sync
    // agent does (own first): an approval settles whichever ledger reaches central; a seq this
    // disk lacks does not stop an origin (the daemon's "sync past a hole", sync.ts)
    others.sort((x, y) => x.event.seq - y.event.seq || (x.idHex < y.idHex ? -1 : x.idHex > y.idHex ? 1 : 0))
    if (own.length > 0 || this.sim.rng.chance(0.2))
      this.sim.central.send(node, {
        t: 'sync',
        events: others.length === 0 ? own : [...own, ...others.slice(0, FORWARD_PER_SYNC)],
        inc: node.inc,
      })
    // voids of pending online attempts (again if the last one went unanswered)
    this.sim.pos.runOnline(node, node.online.tick(this.sim.now))
    this.sim.at(this.sim.rng.range(800, 2500), { k: 'tick', node: node.i, inc: node.inc })
  }
}
