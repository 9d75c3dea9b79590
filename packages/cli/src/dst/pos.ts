import { OnlineCore, type OnlineEffect, type OnlineMutationName } from '@nullmesh/terminal/core'
import { CURRENCY, ONLINE_TIMEOUT_MS } from './config.js'
import { type OfflineDecisionLike, type Reservation, type SignedEvent, toHex } from './deps.js'
import type { Sim } from './sim.js'
import type { CentralReq, EvOf, Node, Payment } from './world.js'

/** share of online marks whose fsync stalls past the tap budget (in seeds with stalls) */
const MARK_STALL_RATE = 0.1

/**
 * The POS and the terminal's online path: payments handed to the core (offline, or online through
 * the real OnlineCore with its pending marks, timeouts, fallback and voids), the decisions that
 * come back, and central's answers as the terminal receives them.
 */
export class PointOfSale {
  constructor(private readonly sim: Sim) {}

  candidate(p: Payment) {
    return {
      nullifier: p.nullifier,
      cardKey: this.sim.workload.cardKey(p.card),
      amountMinor: p.amountMinor,
      currency: CURRENCY,
      method: 'contactless' as const,
    }
  }

  onlineCore(): OnlineCore {
    const muts = this.sim.opts.mutations as ReadonlySet<OnlineMutationName> | undefined
    return new OnlineCore({
      tapBudgetMs: this.sim.policy.tapBudgetMs,
      onlineTimeoutMs: ONLINE_TIMEOUT_MS,
      ...(muts === undefined ? {} : { mutations: muts }),
    })
  }

  pay(p: Payment): void {
    const node = this.sim.nodes[p.node]!
    if (!node.up || !node.started || node.core === undefined) return
    this.sim.payments++
    node.inflight.set(p.id, p)
    p.deadline = this.sim.now + this.sim.policy.tapBudgetMs
    this.sim.log(
      `${node.name} pay #${p.id} card c${p.card} ${p.amountMinor} ${p.online ? (p.requireOnline ? 'online only' : 'online') : 'offline'} n=${p.nullHex.slice(0, 6)}${p.attempt > 1 ? ` retry ${p.attempt}` : ''}`,
    )
    // a POS retry after a crash: an online attempt of the same credential use left pending is
    // resolved first (the daemon's OnlinePayments.recover)
    if (p.attempt > 1) {
      for (const [id, a] of [...node.attempts].sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
        if (a.payment !== undefined || toHex(a.res.event.nullifier) !== p.nullHex) continue
        if (a.res.event.amountMinor !== p.amountMinor) continue
        const reachable = !this.sim.central.centralDown && !this.sim.central.centralLinkDown[node.i]
        const first = node.online.retried(
          id,
          { deadline: p.deadline, centralReachable: reachable },
          this.sim.now,
        )
        if (first === undefined) continue
        this.sim.log(`${node.name} #${p.id} resolves its pending online attempt ${id.slice(0, 8)} first`)
        a.payment = p
        this.runOnline(node, first)
        return
      }
    }
    this.decide(node, p)
  }

  /** the decision proper: online when the POS allows it, else offline */
  decide(node: Node, p: Payment): void {
    const op = this.sim.terminals.opId()
    if (p.online) {
      node.ops.set(op, { kind: 'reserve', payment: p })
      node.core!.reserveOnline(op, this.candidate(p), { deadline: p.deadline })
    } else {
      node.ops.set(op, { kind: 'offline', payment: p, deadline: p.deadline })
      node.core!.authorize(op, this.candidate(p), { deadline: p.deadline })
    }
  }

  /** carry out the online core's effects; their answers come back as events */
  runOnline(node: Node, effects: OnlineEffect[]): void {
    for (const e of effects) {
      const a = node.attempts.get(e.id)
      if (a === undefined) continue
      const p = a.payment
      switch (e.type) {
        case 'mark-pending': {
          // the terminal's `online pending` cursor, written with fsync: lost if a crash comes first
          let lat = this.sim.fsyncLatency()
          // a fault point aimed at the online mark (a flash disk's fsync stalling for seconds):
          // without it an online attempt seldom meets a stall long enough to pass its deadline
          if (this.sim.mix.stall && this.sim.phase === 'safety' && this.sim.aimed.chance(MARK_STALL_RATE)) {
            this.sim.count('mark-stall')
            lat += this.sim.aimed.range(this.sim.policy.tapBudgetMs / 2, this.sim.policy.tapBudgetMs * 1.5)
          }
          this.sim.at(lat, { k: 'mark', node: node.i, inc: node.inc, resId: e.id })
          // not durable by its deadline: the core declines the tap now (it races the fsync)
          this.sim.at(Math.max(0, e.until - this.sim.now), {
            k: 'markLate',
            node: node.i,
            inc: node.inc,
            resId: e.id,
          })
          if (
            this.sim.mix['crash-mid-write'] &&
            this.sim.phase === 'safety' &&
            this.sim.rng.chance(this.sim.mix['crash-mid-write'])
          ) {
            this.sim.count('crash-mid-write')
            this.sim.at(0, {
              k: 'crash',
              node: node.i,
              inc: node.inc,
              why: 'right after asking to write the online mark',
              wipe: false,
            })
          }
          break
        }
        case 'authorize':
          this.sim.central.send(node, { t: 'authorize', res: a.res, inc: node.inc })
          this.sim.at(e.timeoutMs, { k: 'onlineTimeout', node: node.i, inc: node.inc, resId: e.id })
          break
        case 'complete': {
          const op = this.sim.terminals.opId()
          node.ops.set(op, { kind: 'complete', payment: p, reservation: a.res, approved: e.approved })
          node.core!.completeOnline(op, a.res, e.approved, e.reason ?? 'approved_online')
          break
        }
        case 'mark-done':
          node.disk.markers.delete(e.id)
          break
        case 'fallback': {
          if (p === undefined) break
          this.sim.log(`${node.name} #${p.id} decided offline under the same reservation ${e.id.slice(0, 8)}`)
          const op = this.sim.terminals.opId()
          node.ops.set(op, { kind: 'fallback', payment: p, reservation: a.res, deadline: e.deadline })
          node.core!.authorize(op, this.candidate(p), { reservation: a.res, deadline: e.deadline })
          break
        }
        case 'answer':
          a.payment = undefined
          if (p === undefined) break
          node.inflight.delete(p.id)
          if (e.approved) {
            this.sim.log(`${node.name} #${p.id} APPROVED online res ${e.id.slice(0, 8)}`)
            this.sim.check.approve(node, p, e.id, a.res.event.ts, 'online', a.seq ?? 0, a.isolated)
          } else this.sim.log(`${node.name} #${p.id} declined online`)
          break
        case 'decline':
          a.payment = undefined
          if (p === undefined) break
          node.inflight.delete(p.id)
          this.sim.log(`${node.name} #${p.id} declined ${e.code} (pending until voided)`)
          break
        case 'offline':
        case 'afresh':
          a.payment = undefined
          if (p === undefined) break
          this.sim.log(
            `${node.name} #${p.id} ${e.type === 'offline' ? 'refused by central' : 'voided'}: decided afresh`,
          )
          if (e.type === 'offline') {
            const op = this.sim.terminals.opId()
            node.ops.set(op, { kind: 'offline', payment: p, deadline: p.deadline })
            node.core!.authorize(op, this.candidate(p), { deadline: p.deadline! })
          } else this.decide(node, p)
          break
        case 'void':
          this.sim.central.send(node, { t: 'void', resId: e.id, res: a.res, inc: node.inc })
          break
      }
    }
  }

  done(node: Node, op: number, result: { ok: boolean; value?: unknown; message?: string }): void {
    const o = node.ops.get(op)
    if (o === undefined) return
    node.ops.delete(op)
    const core = node.core!
    const p = o.payment
    switch (o.kind) {
      case 'start':
        node.started = true
        this.sim.log(
          `${node.name} started (seq ${core.view.nextSeq}, ${core.view.seqKnown ? 'knows its history' : 'must learn its history'})`,
        )
        for (const id of [...node.disk.markers].sort()) {
          const ev = core.view.inflight.has(id)
            ? (node.disk.events().find((e) => e.idHex === id) as SignedEvent<Reservation> | undefined)
            : undefined
          if (ev === undefined) {
            node.disk.markers.delete(id)
            continue
          }
          node.attempts.set(id, { res: ev, isolated: false })
          node.online.recovered(id)
        }
        this.runOnline(node, node.online.tick(this.sim.now))
        return
      case 'offline':
      case 'fallback': {
        const res = o.reservation
        if (!result.ok) {
          node.inflight.delete(p!.id)
          this.sim.log(`${node.name} #${p!.id} error ${result.message}`)
          if (res !== undefined) node.online.abandoned(res.idHex)
          return
        }
        const d = result.value as OfflineDecisionLike
        // every decision returns within its tap deadline, its Commit's fsync included
        if (o.deadline !== undefined && this.sim.now > o.deadline)
          this.sim.fail(
            'tap-budget',
            `${node.name} #${p!.id} decided ${Math.round(this.sim.now - o.deadline)} ms after its tap deadline (${d.approved ? 'approved' : d.declineCode})`,
          )
        this.sim.log(
          `${node.name} #${p!.id} ${d.approved ? 'APPROVED' : 'declined'} ${d.mode}${d.approved ? '' : ` ${d.declineCode}`} res ${d.reservationId?.slice(0, 8) ?? '-'}`,
        )
        node.inflight.delete(p!.id)
        if (!d.approved && this.sim.phase === 'liveness')
          this.sim.livenessCapStreak =
            d.declineCode === 'venue_cap_exceeded' ? this.sim.livenessCapStreak + 1 : 0
        if (d.approved) {
          const facts = core.view.exposure.get(d.reservationId!)?.facts
          this.sim.check.approve(node, p!, d.reservationId!, facts?.ts ?? 0, d.mode, d.seq)
        }
        if (res !== undefined) {
          const a = node.attempts.get(res.idHex)
          if (a !== undefined) a.payment = undefined
          this.runOnline(node, node.online.fallbackDecided(res.idHex, d.approved))
        }
        return
      }
      case 'reserve': {
        if (!result.ok) {
          // not held: the offline path decides, under a new reservation
          if (p!.requireOnline) {
            node.inflight.delete(p!.id)
            this.sim.log(`${node.name} #${p!.id} declined offline_not_allowed (not held)`)
            return
          }
          const op2 = this.sim.terminals.opId()
          node.ops.set(op2, { kind: 'offline', payment: p, deadline: p!.deadline })
          core.authorize(op2, this.candidate(p!), { deadline: p!.deadline! })
          return
        }
        const res = result.value as SignedEvent<Reservation>
        // reserved without a quorum round (the quorum really unreachable): central's dedup is the only guard
        node.attempts.set(res.idHex, {
          payment: p,
          res,
          isolated: !this.sim.terminals.onlineRounds.has(res.idHex),
        })
        this.runOnline(
          node,
          node.online.reserved(res.idHex, { deadline: p!.deadline!, requireOnline: p!.requireOnline }),
        )
        return
      }
      case 'complete': {
        const id = o.reservation!.idHex
        if (!result.ok) {
          if (p !== undefined) node.inflight.delete(p.id)
          node.online.abandoned(id)
          return
        }
        const a = node.attempts.get(id)
        if (a !== undefined && o.approved) a.seq = (result.value as { event: SignedEvent }).event.event.seq
        if (!o.approved && p === undefined) this.sim.log(`${node.name} released voided ${id.slice(0, 8)}`)
        this.runOnline(node, node.online.completed(id))
        return
      }
    }
  }

  onlineTimeout(node: Node, resId: string): void {
    const effects = node.online.unanswered(resId)
    if (effects.length === 0) return
    const p = node.attempts.get(resId)?.payment
    this.sim.log(`${node.name} #${p?.id ?? '-'} central did not answer: offline under the same reservation`)
    this.runOnline(node, effects)
  }

  centralUnreachable(node: Node, req: CentralReq): void {
    if (!node.up || node.core === undefined) return
    if (req.t === 'authorize' && node.inc === req.inc)
      this.runOnline(node, node.online.unanswered(req.res.idHex))
    if (req.t === 'void') this.runOnline(node, node.online.voidFailed(req.resId))
    if (req.t === 'refill' && node.inc === req.inc) this.sim.terminals.refillFailed(node)
  }

  centralAnswer(
    node: Node,
    req: CentralReq,
    ok: boolean,
    marks: number | undefined,
    voidStatus: 'voided' | 'committed' | undefined,
    events?: SignedEvent[],
  ): void {
    if (!node.up || node.core === undefined) return
    const core = node.core
    switch (req.t) {
      case 'refill':
        if (node.inc === req.inc) this.sim.terminals.refillAnswered(node, events ?? [])
        return
      case 'authorize':
        if (node.inc !== req.inc) return
        this.runOnline(
          node,
          ok
            ? node.online.answered(req.res.idHex, true)
            : node.online.answered(req.res.idHex, false, 'issuer_declined'),
        )
        return
      case 'void':
        // an answer to an earlier incarnation still counts for the attempt its disk kept pending
        if (!ok || voidStatus === undefined) {
          this.runOnline(node, node.online.voidFailed(req.resId))
          return
        }
        this.runOnline(node, node.online.voidAnswered(req.resId, voidStatus))
        return
      case 'sync':
        if (marks !== undefined) {
          // a mark of 0 confirms nothing (central holds none of its events from seq 1: a wiped
          // terminal's sync, say); the ledger's cursor starts at 1
          if (marks > 0) node.disk.confirmed[node.hex] = Math.max(node.disk.confirmed[node.hex] ?? 0, marks)
          core.confirmed({ [node.hex]: marks })
        }
        return
    }
  }

  /** central's answer (or the failure to reach it) reaches a terminal */
  centralAnswered(ev: EvOf<'centralAns'>): void {
    const node = this.sim.nodes[ev.node]!
    if (node.inc !== ev.inc) {
      // an answer to an earlier incarnation: a void is still valid for the disk's pending one
      if (ev.req.t !== 'void') return
    }
    if (ev.unreachable === true) this.centralUnreachable(node, ev.req)
    else if (ev.rejected === true && ev.req.t === 'authorize') {
      if (node.up && node.core !== undefined && node.inc === ev.req.inc)
        this.runOnline(node, node.online.rejected(ev.req.res.idHex))
    } else this.centralAnswer(node, ev.req, ev.ok, ev.marks, ev.voidStatus, ev.events)
  }

  /** an online attempt's pending mark is durable */
  markDurable(ev: EvOf<'mark'>): void {
    const node = this.sim.nodes[ev.node]!
    if (node.inc !== ev.inc || !node.up) return
    node.disk.markers.add(ev.resId)
    this.runOnline(node, node.online.pendingDurable(ev.resId, this.sim.now))
  }

  /** an online attempt's pending mark was not durable by its deadline */
  markLate(ev: EvOf<'markLate'>): void {
    const node = this.sim.nodes[ev.node]!
    if (node.inc !== ev.inc || !node.up) return
    const effects = node.online.markLate(ev.resId)
    if (effects.length > 0)
      this.sim.log(`${node.name} online mark of ${ev.resId.slice(0, 8)} not durable by the deadline`)
    this.runOnline(node, effects)
  }

  /** an online attempt waited its timeout for central */
  timedOut(ev: EvOf<'onlineTimeout'>): void {
    const node = this.sim.nodes[ev.node]!
    if (node.inc === ev.inc && node.up) this.onlineTimeout(node, ev.resId)
  }
}
