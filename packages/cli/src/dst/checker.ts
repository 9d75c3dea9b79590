import { initialShare, partitionExposureBound, unheldOnlineExposure } from '@nullmesh/policy'
import { CURRENCY } from './config.js'
import { type Commit, type SignedEvent, toHex } from './deps.js'
import type { Sim } from './sim.js'
import { type Approval, type Node, originOf, type Payment } from './world.js'

/**
 * The invariants, checked as the run goes and stopping it at the first violation (docs/protocol.md
 * points here): no credential use approved twice outside the isolated bound; card amount and count
 * caps among quorum approvals; escrow shares; isolated exposure; no (origin, seq) signed twice; acks
 * durable; views counted; settlement exactly once of what a client saw approved.
 */
export class Checker {
  constructor(private readonly sim: Sim) {}

  /** offline approvals per origin, for the escrow-share invariant */
  readonly offlineByNode = new Map<number, Approval[]>()

  readonly approvals = new Map<string, Approval[]>()

  readonly approvedRes = new Set<string>()

  readonly quorumByCard = new Map<number, Approval[]>()

  readonly isolatedByNode = new Map<number, Approval[]>()

  /** by (origin index, seq) as one number: a string key would be built for every frame delivered */
  readonly escaped = new Map<number, { id: string; at: number; ev: SignedEvent }>()

  /** sim time of each terminal's last wiped disk */
  readonly wipedAt = new Map<number, number>()
  /** the first incarnation after each terminal's last wiped restart (acks given before it died with the disk) */
  readonly wipedInc = new Map<number, number>()

  /** reservations each terminal acked, as the origins received the acks */
  readonly acked = new Map<number, Set<string>>()

  /**
   * The view an origin sends with a new reservation's first barrier request is what its decision
   * counted (docs/protocol.md, "Card caps are exact"): every reservation it names was known to
   * the origin before it signed the reservation, i.e. when it decided. A reservation that arrived
   * later (during the fsync, say) and is named anyway makes a peer holding it skip the conflict
   * refusal for a reservation nobody counted. The card-cap checker sees the damage only when three
   * taps of one card interleave just so; this sees the claim itself.
   */
  checkView(node: Node, bytes: Uint8Array, view: readonly string[]): void {
    const signed = this.sim.byBytes.get(bytes)
    if (signed === undefined || node.requested.has(signed.idHex)) return
    node.requested.add(signed.idHex)
    // a reservation first made for an online attempt is decided again when it falls back
    if (node.attempts.has(signed.idHex)) return
    const decidedAt = node.knownAt.get(signed.idHex)
    if (decidedAt === undefined) return
    for (const id of view) {
      const k = node.knownAt.get(id)
      if (k !== undefined && k > decidedAt)
        this.sim.fail(
          'view-not-counted',
          `${node.name} sent reservation ${signed.idHex.slice(0, 8)} with a view naming ${id.slice(0, 8)}, which it learnt after deciding`,
        )
    }
  }

  /** an event left its origin's node: no two different events may ever leave with one (origin, seq) */
  escape(ev: SignedEvent, where: () => string, sentBefore?: number): void {
    const origin = this.sim.venue.index.get(originOf(ev)) ?? -1
    const num = (origin + 1) * 2 ** 41 + ev.event.seq
    // a message its sender sent before its disk was wiped left it then (seed 481: T3's Release,
    // in flight across T3's crash, arrived after the wipe and was held nowhere)
    const at = sentBefore === undefined ? this.sim.now : sentBefore - 1
    let first = this.escaped.get(num)
    if (first === undefined) {
      this.escaped.set(num, { id: ev.idHex, at, ev })
      return
    }
    if (first.id === ev.idHex) return
    let seen = ev
    if (at < first.at) {
      // the event seen second left first (3 terminals, seed 1: T3's online reservation seq 110, in
      // flight across T3's wiping crash, arrived after the new incarnation had signed seq 110
      // again): the one that left earlier is the original whose certification decides
      seen = first.ev
      first = { id: ev.idHex, at, ev }
      this.escaped.set(num, first)
    }
    const prev = first.id
    ev = seen
    const key = `${originOf(ev)}:${ev.event.seq}`
    const wipedSince = (this.wipedAt.get(origin) ?? -1) > first.at
    if (
      prev !== ev.idHex &&
      !this.residual.has(key) &&
      wipedSince &&
      (this.isResidual(prev) || this.uncertifiedWhenLearnt(origin, prev))
    ) {
      // docs/protocol.md, "Lost disks": an own event no quorum certified, held only by peers
      // outside the quorum a wiped terminal learned from, can still collide (epochs would close it)
      this.residual.add(key)
      this.sim.count('residual-seq-reuse')
      this.sim.log(
        `residual: ${this.sim.name(toHex(ev.event.origin))} reused seq ${ev.event.seq} of an uncertified event after a wiped disk`,
      )
    } else if (prev !== ev.idHex && !this.residual.has(key))
      this.sim.fail(
        'seq-signed-twice',
        `${this.sim.name(toHex(ev.event.origin))} signed two events with seq ${ev.event.seq} (${prev.slice(0, 8)}, ${ev.idHex.slice(0, 8)} ${ev.event.type}) seen at ${where()}`,
      )
  }

  /**
   * What the disks other than `lost` hold, by reservation id: `any` (the reservation, or a Commit
   * carrying it) and `committed` (a Commit of it).
   */
  private heldElsewhere(lost: Node): { any: Set<string>; committed: Set<string> } {
    const any = new Set<string>()
    const committed = new Set<string>()
    for (const other of this.sim.nodes) {
      if (other === lost) continue
      for (const e of other.disk.readable()) {
        if (e.event.type !== 'commit') any.add(e.idHex)
        else {
          any.add(e.event.reservation.idHex)
          committed.add(e.event.reservation.idHex)
        }
      }
    }
    return { any, committed }
  }

  /** quorum approvals whose reservation no disk but `lost`'s holds any more are forgotten */
  private forget(held: Set<string>): void {
    for (const list of this.quorumByCard.values())
      for (const b of list) {
        const id = b.resId
        if (held.has(id) || this.forgotten.has(id)) continue
        this.forgot(b)
      }
  }

  private forgot(b: Approval): void {
    this.forgotten.add(b.resId)
    this.sim.count('lost-disk-forgotten')
    this.sim.log(
      `lost-disk-forgotten: ${this.sim.nodes[b.node]!.name}'s approval ${b.resId.slice(0, 8)} (card c${b.card}, ${b.amountMinor}) is held by no disk any more`,
    )
  }

  /**
   * A disk is lost: its offline approvals whose Commit no other disk and not central holds are lost
   * with it — approved, never to settle (docs/protocol.md, `lost-disk-isolated` and
   * `lost-disk-quorum`: a quorum approval's decision, too, lives only on its origin's disk until its
   * Commit leaves). No terminal can count the isolated ones any more, so they leave its isolated
   * budget: the bound holds per incarnation of a disk. Those that survive elsewhere are relearned.
   */
  /** approvals whose only Commit died with a disk: they never settle */
  readonly lostWithDisk = new Set<string>()
  /**
   * Quorum approvals the venue forgot: every disk that held the reservation (or its Commit) was
   * lost (3 terminals, seed 255: T3, the one acker, wiped, then T2, the origin, whose Commit never
   * left; seed 285 at 40,000 steps: every disk of the venue lost, some more than once). No terminal
   * can count them in the card's caps any more, so the caps are checked without them
   * (`lost-disk-forgotten`); the argument assumes one acking disk of each approval survives.
   */
  readonly forgotten = new Set<string>()

  /**
   * Approvals whose origin lost its disk while another disk still held the Commit: that disk may be
   * lost too before the Commit spreads or reaches central (seed 4320 at 5 terminals: T1's Commit
   * had reached T5 alone when T1 was wiped, and T5 was wiped 0.4 s later) — the same loss.
   */
  private readonly commitElsewhere = new Map<string, Approval>()

  /** approvals in `commitElsewhere` whose Commit no disk but `lost`'s and not central holds */
  private lostElsewhere(lost: Node, held: Set<string>): void {
    for (const [id, b] of this.commitElsewhere) {
      if (held.has(id) || this.sim.central.cCommitted.has(id)) continue
      this.commitElsewhere.delete(id)
      this.lost(b, `${lost.name}'s disk, the last to hold it`)
    }
  }

  private lost(b: Approval, where: string): void {
    this.lostWithDisk.add(b.resId)
    const kind = b.mode === 'isolated' || b.isolatedOnline ? 'isolated' : 'quorum'
    this.sim.count(`lost-disk-${kind}`)
    this.sim.log(
      `lost-disk-${kind}: ${this.sim.nodes[b.node]!.name}'s approval ${b.resId.slice(0, 8)} dies with ${where}`,
    )
  }

  diskLost(node: Node): void {
    const elsewhere = this.heldElsewhere(node)
    this.lostElsewhere(node, elsewhere.committed)
    this.forget(elsewhere.any)
    const offline = this.offlineByNode.get(node.i) ?? []
    const isolated = this.isolatedByNode.get(node.i) ?? []
    if (offline.length === 0 && isolated.length === 0) return
    const c = this.sim.central
    const quorum = this.sim.nodes[0]!.core?.quorum ?? Math.floor(this.sim.n / 2) + 1
    // how many other disks hold each Commit
    const holders = new Map<string, number>()
    for (const other of this.sim.nodes) {
      if (other === node) continue
      for (const e of other.disk.readable())
        if (e.event.type === 'commit')
          holders.set(e.event.reservation.idHex, (holders.get(e.event.reservation.idHex) ?? 0) + 1)
    }
    const survives = (id: string) => holders.has(id) || c.cCommitted.has(id)
    // what its next incarnation is sure to relearn: q − 1 other holders meet any N − q + 1 sources
    const relearnt = (id: string) => (holders.get(id) ?? 0) >= quorum - 1 || c.cCommitted.has(id)
    for (const b of [...isolated, ...offline]) {
      if (this.lostWithDisk.has(b.resId)) continue
      if (!survives(b.resId)) this.lost(b, 'its disk')
      else if (!c.cCommitted.has(b.resId)) this.commitElsewhere.set(b.resId, b)
    }
    // one held only by a minority may be missed by the relearning (seed 62 at 40,000 steps: three
    // isolated approvals held by T3 alone): it still settles, but the next incarnation's budget
    // cannot count it — the bound holds per incarnation of a disk
    for (const b of isolated)
      if (survives(b.resId) && !relearnt(b.resId)) {
        this.sim.count('lost-disk-isolated-minority')
        this.sim.log(
          `lost-disk-isolated-minority: ${node.name}'s approval ${b.resId.slice(0, 8)} held by a minority`,
        )
      }
    this.isolatedByNode.set(
      node.i,
      isolated.filter((b) => relearnt(b.resId)),
    )
  }

  /**
   * escrow-share: a terminal's offline approvals in one queue window stay within its escrow share
   * of the venue cap (so the venue total does, as the shares add up to at most the cap). A wiped
   * terminal is left out: the lost-disk residual (docs/protocol.md) covers what it forgets.
   */
  checkEscrowShare(node: Node, a: Approval): void {
    const list = this.offlineByNode.get(node.i) ?? []
    list.push(a)
    this.offlineByNode.set(node.i, list)
    if (this.wipedAt.has(node.i) || node.core === undefined) return
    // the core counts from its decision time, a moment after the reservation's ts: a little slack
    const from = a.ts - this.sim.policy.queueDurationMs + 5000
    let used = 0
    for (const b of list) if (b.ts > from && b.ts <= a.ts) used += b.amountMinor
    const share = node.core.view.escrow!.share(node.hex, CURRENCY)
    if (used > share)
      this.sim.fail(
        'escrow-share',
        `${node.name}: ${used} approved offline within one queue window, its share is ${share}`,
      )
  }

  /**
   * escrow-sum: the shares every terminal would act on (a live core's, or what a down terminal's
   * durable disk restores) add up to at most the venue cap, at every transfer and crash.
   */
  checkEscrowSum(where: string): void {
    const cap = this.sim.policy.currencies[CURRENCY]!.venueCapMinor
    let sum = 0
    for (const node of this.sim.nodes) {
      const live = node.up && node.core !== undefined
      // a terminal that does not know its own history (a wiped or cut refill: it signs nothing,
      // so approves nothing, before it learned from N − q + 1 peers) acts on the share it will
      // have learned: its store's transfers and every one that q − 1 other terminals hold
      const relearning = live
        ? !node.core!.view.seqKnown
        : node.disk.relearning || node.disk.durable.length === 0
      if (live && !relearning) {
        sum += node.core!.view.escrow!.share(node.hex, CURRENCY)
        continue
      }
      let share = initialShare(cap, this.sim.venue.hexSorted, node.hex)
      const seen = new Set<string>()
      const count = (e: SignedEvent): void => {
        const t = e.event
        if (t.type !== 'transfer' || t.currency !== CURRENCY || seen.has(e.idHex)) return
        seen.add(e.idHex)
        if (toHex(t.origin) === node.hex) share -= t.amountMinor
        if (toHex(t.to) === node.hex) share += t.amountMinor
      }
      for (const r of live ? node.disk.all() : node.disk.durable) count(r.event)
      if (relearning) for (const e of this.learnableTransfers(node)) count(e)
      sum += share
    }
    if (sum > cap) this.sim.fail('escrow-sum', `escrow shares add up to ${sum} > venue cap ${cap} (${where})`)
  }

  /** transfers of or to `node` that at least q − 1 other terminals hold durably: a refill learns them */
  private learnableTransfers(node: Node): SignedEvent[] {
    // the roster's quorum (a refill learns from N − q + 1 peers), not a custodian group's
    const quorum = this.sim.nodes[0]!.core?.rosterQuorum ?? Math.floor(this.sim.n / 2) + 1
    const holders = new Map<string, { e: SignedEvent; n: number }>()
    for (const other of this.sim.nodes) {
      if (other === node) continue
      const mine = new Set<string>()
      for (const r of other.disk.durable) {
        const t = r.event.event
        if (t.type !== 'transfer' || mine.has(r.event.idHex)) continue
        if (toHex(t.origin) !== node.hex && toHex(t.to) !== node.hex) continue
        mine.add(r.event.idHex)
        const h = holders.get(r.event.idHex)
        if (h === undefined) holders.set(r.event.idHex, { e: r.event, n: 1 })
        else h.n++
      }
    }
    return [...holders.values()].filter((h) => h.n >= quorum - 1).map((h) => h.e)
  }

  approve(
    node: Node,
    p: Payment,
    resId: string,
    ts: number,
    mode: Approval['mode'],
    seq: number,
    isolatedOnline = false,
  ): void {
    this.sim.approvalsN++
    if (this.sim.phase === 'liveness') this.sim.livenessApprovals++
    if (this.approvedRes.has(resId)) return
    this.approvedRes.add(resId)
    const a: Approval = {
      resId,
      nullifier: p.nullHex,
      card: p.card,
      amountMinor: p.amountMinor,
      ts,
      mode,
      node: node.i,
      seq,
      step: this.sim.step,
      isolatedOnline,
    }
    // no credential use approved twice, unless one of them is an isolated approval (the bounded
    // exposure) — an online approval no quorum held counts as one: the isolated budget covers it
    const same = this.approvals.get(p.nullHex) ?? []
    for (const b of same) {
      if (b.mode === 'isolated' || a.mode === 'isolated') continue
      if (b.isolatedOnline || a.isolatedOnline) {
        // central's dedup did not know the other (offline, not synced yet): the isolated budget's
        this.sim.count('online-isolated-double-use')
        this.sim.log(
          `online-isolated-double-use (counted in the isolated budget): ${p.nullHex.slice(0, 6)} approved ${b.mode} by ${this.sim.nodes[b.node]!.name} and ${a.mode} by ${node.name}`,
        )
        continue
      }
      this.sim.fail(
        'double-use',
        `credential use ${p.nullHex.slice(0, 6)} approved twice: ${this.sim.nodes[b.node]!.name} ${b.mode} (step ${b.step}) and ${node.name} ${a.mode}`,
      )
    }
    same.push(a)
    this.approvals.set(p.nullHex, same)
    const limits = this.sim.policy.currencies[CURRENCY]!
    if (mode === 'quorum') {
      // card caps among quorum approvals: each counts the card's approvals in its window
      const list = this.quorumByCard.get(p.card) ?? []
      list.push(a)
      this.quorumByCard.set(p.card, list)
      let amount = 0
      let count = 0
      for (const b of list)
        if (b.ts >= a.ts - this.sim.policy.cardWindowMs && !this.forgotten.has(b.resId)) {
          amount += b.amountMinor
          count++
        }
      if (amount > limits.cardCapMinor)
        this.sim.fail(
          'card-amount-cap',
          `card c${p.card}: ${amount} approved in quorum mode within one window (cap ${limits.cardCapMinor})`,
        )
      if (count > this.sim.policy.cardCapCount)
        this.sim.fail(
          'card-count-cap',
          `card c${p.card}: ${count} quorum approvals within one window (cap ${this.sim.policy.cardCapCount})`,
        )
    }
    if (mode !== 'online') this.checkEscrowShare(node, a)
    if (mode === 'isolated' || isolatedOnline) {
      // the isolated budget: isolated approvals at their amount, online ones no quorum held at
      // what a duplicate could cost (unheldOnlineExposure), until central confirms them
      a.isolatedMinor =
        mode === 'isolated' ? p.amountMinor : unheldOnlineExposure(this.sim.policy, CURRENCY, p.amountMinor)
      const list = this.isolatedByNode.get(node.i) ?? []
      list.push(a)
      this.isolatedByNode.set(node.i, list)
      const mark = this.sim.central.cMarks.get(node.hex) ?? 0
      let open = 0
      let sameCard = 0
      for (const b of list)
        if (b.seq > mark) {
          open += b.isolatedMinor ?? 0
          if (b.card === p.card) sameCard++
        }
      if (open > limits.isolatedDeviceCapMinor)
        this.sim.fail(
          'isolated-bound',
          `${node.name}: ${open} approved in isolated mode or online without a quorum and not confirmed by central (cap ${limits.isolatedDeviceCapMinor})`,
        )
      if (sameCard > this.sim.policy.isolated.maxApprovalsPerCard)
        this.sim.fail(
          'isolated-bound',
          `${node.name}: card c${p.card} approved ${sameCard} times in isolated mode or online without a quorum, not confirmed by central (max ${this.sim.policy.isolated.maxApprovalsPerCard})`,
        )
      let total = 0
      for (const l of this.isolatedByNode.values())
        for (const b of l)
          if (b.seq > (this.sim.central.cMarks.get(this.sim.nodes[b.node]!.hex) ?? 0))
            total += b.isolatedMinor ?? 0
      const bound = partitionExposureBound(this.sim.policy, this.sim.n, CURRENCY)
      if (total > bound)
        this.sim.fail('isolated-bound', `venue: ${total} isolated exposure above the reported bound ${bound}`)
    }
  }

  readonly residual = new Set<string>()

  /**
   * Was the earlier event at this (origin, seq) uncertified? A reservation that no Commit
   * certifies anywhere, or a Commit or Release fewer than a quorum of terminals hold.
   */
  isResidual(prevId: string): boolean {
    const quorum = this.sim.nodes[0]!.core?.quorum ?? Math.floor(this.sim.n / 2) + 1
    let holders = 0
    let prev: SignedEvent | undefined
    let isolatedCommit = false
    for (const node of this.sim.nodes) {
      let holds = false
      for (const e of node.disk.readable()) {
        if (e.idHex === prevId) {
          holds = true
          prev = e
        }
        if (e.event.type === 'commit' && e.event.reservation.idHex === prevId) {
          // a quorum's Commit certifies its reservation; an isolated one does not (no acks): it
          // carries the reservation to the disks that hold it, like any event (seed 62 at 40,000
          // steps: T5's isolated approvals, held by T3 alone, were relearned by no one)
          if (e.event.mode !== 'isolated') return false
          holds = true
          isolatedCommit = true
        }
      }
      if (holds) holders++
    }
    if (this.sim.central.cCommitted.has(prevId)) return false
    if (prev === undefined && !isolatedCommit) return true
    return (prev?.event.type === 'reservation' && !isolatedCommit) || holders < quorum
  }

  /**
   * Own events of each wiped terminal that were certified when it learnt its history: held by a
   * quorum of disks (a reservation: committed somewhere), or given back by central's refill (its
   * own events central held, whatever their kind: recovery.ts). The learning argument
   * (docs/protocol.md, "Lost disks") covers exactly these; an event that reached a quorum only
   * after the terminal had learnt (pushed to one peer that was down, say, and spread from it
   * later) is the stated residual, which `isResidual` alone, judged at the collision, misses
   * (DST seed 11 at 40,000 steps).
   */
  readonly certifiedAtLearn = new Map<number, Set<string>>()

  /**
   * Own events (not reservations) of a terminal that starts to relearn, held by a quorum of disks
   * then. The argument promises what a quorum held when the learning began; what reaches a quorum
   * only while it learns may reach its sources after they answered (seed 2193: T1's Release seq 5,
   * in flight across T1's wiping crash, spread to a third disk during T1's second of learning).
   */
  readonly heldAtLearnStart = new Map<number, Set<string>>()

  /**
   * Isolated approvals of a relearning terminal's earlier incarnation that its learning is sure to
   * meet: their Commit is on its own store, or on q − 1 other disks when the learning begins. What
   * a minority held then (a holder lost its disk after the origin's, seed 195 at 3 terminals and
   * 40,000 steps) is `lost-disk-isolated-minority`, unless central's refill gives it back.
   */
  private readonly isolatedAtLearnStart = new Map<number, Set<string>>()

  learnStarts(node: Node): void {
    const quorum = this.sim.nodes[0]!.core?.quorum ?? Math.floor(this.sim.n / 2) + 1
    this.heldAtLearnStart.set(
      node.i,
      new Set([...this.ownHolders(node).holders].filter(([, n]) => n >= quorum).map(([id]) => id)),
    )
    const isolated = this.isolatedByNode.get(node.i) ?? []
    if (isolated.length === 0) return
    const own = new Set<string>()
    const others = new Map<string, number>()
    for (const other of this.sim.nodes)
      for (const e of other.disk.readable()) {
        if (e.event.type !== 'commit') continue
        const id = e.event.reservation.idHex
        if (other === node) own.add(id)
        else others.set(id, (others.get(id) ?? 0) + 1)
      }
    this.isolatedAtLearnStart.set(
      node.i,
      new Set(
        isolated
          .filter((b) => own.has(b.resId) || (others.get(b.resId) ?? 0) >= quorum - 1)
          .map((b) => b.resId),
      ),
    )
  }

  /**
   * Per own event of `node`, the disks holding it (a reservation: or an isolated Commit carrying it),
   * and the reservations a quorum's (or online) Commit certifies.
   */
  private ownHolders(node: Node): {
    holders: Map<string, number>
    own: Map<string, SignedEvent>
    committed: Set<string>
    isolated: Set<string>
  } {
    const holders = new Map<string, number>()
    const own = new Map<string, SignedEvent>()
    const committed = new Set<string>()
    const isolated = new Set<string>()
    for (const other of this.sim.nodes) {
      const here = new Set<string>()
      for (const e of other.disk.readable()) {
        if (e.event.type === 'commit') {
          const r = e.event.reservation
          if (e.event.mode !== 'isolated') committed.add(r.idHex)
          else if (originOf(r) === node.hex) {
            isolated.add(r.idHex)
            here.add(r.idHex)
            own.set(r.idHex, r)
          }
        }
        if (originOf(e) !== node.hex) continue
        here.add(e.idHex)
        own.set(e.idHex, e)
      }
      for (const id of here) holders.set(id, (holders.get(id) ?? 0) + 1)
    }
    return { holders, own, committed, isolated }
  }

  learned(node: Node): void {
    const quorum = this.sim.nodes[0]!.core?.quorum ?? Math.floor(this.sim.n / 2) + 1
    const atStart = this.heldAtLearnStart.get(node.i)
    // an isolated Commit certifies nothing (no acks): its reservation counts as any event, by the
    // disks holding it — since the learning began (atStart)
    const { holders, own, committed, isolated } = this.ownHolders(node)
    // what central gave back before it learnt is learnt as surely as what a quorum holds; a
    // refill that failed (central unreachable) leaves what only central held to the residual
    const mine = [...(this.sim.central.cEvents.get(node.hex)?.values() ?? [])]
    const refilled =
      node.refillAsked === true ? (node.refilledIds ?? new Set<string>()) : new Set(mine.map((e) => e.idHex))
    /** what came back from central, by reservation id (the reservation, or a Commit carrying it) */
    const back = new Set<string>()
    for (const e of mine) {
      if (!refilled.has(e.idHex)) continue
      if (e.event.type === 'commit') {
        committed.add(e.event.reservation.idHex)
        back.add(e.event.reservation.idHex)
      } else back.add(e.idHex)
    }
    const certified = new Set<string>(refilled)
    for (const [id, n] of holders) {
      const e = own.get(id)!
      if (committed.has(id)) certified.add(id)
      else if (
        n >= quorum &&
        (e.event.type !== 'reservation' || isolated.has(id)) &&
        (atStart?.has(id) ?? true)
      )
        certified.add(id)
    }
    this.certifiedAtLearn.set(node.i, certified)
    const sure = this.isolatedAtLearnStart.get(node.i)
    this.isolatedAtLearnStart.delete(node.i)
    if (sure !== undefined) {
      const kept: Approval[] = []
      for (const b of this.isolatedByNode.get(node.i) ?? []) {
        if (sure.has(b.resId) || back.has(b.resId)) {
          kept.push(b)
          continue
        }
        this.sim.count('lost-disk-isolated-minority')
        this.sim.log(
          `lost-disk-isolated-minority: ${node.name}'s approval ${b.resId.slice(0, 8)} held by a minority when it began to relearn`,
        )
      }
      this.isolatedByNode.set(node.i, kept)
    }
  }

  /** a wiped terminal learnt its history while this own event of its was not certified */
  private uncertifiedWhenLearnt(origin: number, id: string): boolean {
    const certified = this.certifiedAtLearn.get(origin)
    return certified !== undefined && !certified.has(id)
  }

  /** nothing settles at central that no client saw approved (answers recoverable from a durable commit count) */
  checkSettlement(): void {
    // what every disk holds, read once for the three end-of-run checks: Commits by reservation,
    // and the reservations a Commit or Release settles
    const commitOnDisk = new Map<string, SignedEvent<Commit>>()
    const settledOnDisk = new Set<string>()
    for (const node of this.sim.nodes)
      for (const r of node.disk.all()) {
        const e = r.event.event
        if (e.type === 'commit') {
          commitOnDisk.set(e.reservation.idHex, r.event as SignedEvent<Commit>)
          settledOnDisk.add(e.reservation.idHex)
        } else if (e.type === 'release') settledOnDisk.add(toHex(e.reservationId))
      }
    this.checkApprovalsSettled(commitOnDisk)
    this.checkHolds(settledOnDisk)
    const settled: string[] = []
    for (const [id, o] of this.sim.central.cOnline) if (o.state === 'authorized') settled.push(id)
    for (const id of this.sim.central.cCommitted.keys()) settled.push(id)
    for (const id of settled.sort()) {
      if (this.approvedRes.has(id) || commitOnDisk.has(id)) continue
      let pendingSomewhere = false
      for (const node of this.sim.nodes)
        if (node.disk.markers.has(id) || node.online.has(id)) pendingSomewhere = true
      if (pendingSomewhere) continue
      const online = this.sim.central.cOnline.get(id)
      if (online?.origin !== undefined && (this.wipedAt.get(online.origin) ?? -1) > (online.at ?? 0)) {
        // FINDING (reported, not hidden): the origin's disk was lost with the online attempt pending
        // (its "online pending" mark with it): nothing voids it, central settles it, peers hold it
        this.sim.count('lost-disk-online-pending')
        this.sim.log(
          `FINDING lost-disk-online-pending: ${id.slice(0, 8)} settles, its origin lost its disk before voiding it`,
        )
        continue
      }
      this.sim.fail(
        'settled-unapproved',
        `central settles ${id.slice(0, 8)} but no client saw it approved and no terminal holds it pending`,
      )
    }
  }

  /**
   * Every answered approval settles at central: at the end of a run (everything healed, every
   * ledger synced: sim.ts, the drain) central holds it — but for the stated residuals, counted.
   */
  private checkApprovalsSettled(commitOnDisk: ReadonlyMap<string, SignedEvent<Commit>>): void {
    const c = this.sim.central
    for (const id of [...this.approvedRes].sort()) {
      if (c.cCommitted.has(id) || c.cOnline.get(id)?.state === 'authorized') continue
      if (this.lostWithDisk.has(id)) continue // counted as lost-disk-isolated or lost-disk-quorum
      const held = commitOnDisk.get(id)
      if (held === undefined) {
        this.sim.fail(
          'approval-unsettled',
          `an approval answered to a client (${id.slice(0, 8)}) is not at central and its Commit is on no disk`,
        )
      }
      const e = held.event
      // dated ahead of central's clock (a jumped clock): central takes it once its time comes
      if (c.ahead(e.ts) || c.ahead(e.reservation.event.ts)) {
        this.sim.count('unsettled-dated-ahead')
        continue
      }
      // its seq, or its reservation's, went to another event of a wiped origin first: the
      // residual seq reuse of "Lost disks" (counted residual-seq-reuse), refused as ERR_SEQ_CONFLICT
      const o = originOf(held)
      const stored = c.cEvents.get(o)
      const taken = (seq: number, eid: string) => {
        const at = stored?.get(seq)
        return at !== undefined && at.idHex !== eid
      }
      if (taken(e.seq, held.idHex) || taken(e.reservation.event.seq, id)) {
        this.sim.count('unsettled-seq-reused')
        continue
      }
      this.sim.fail(
        'approval-unsettled',
        `an approval answered to a client (${id.slice(0, 8)}) is not at central after every ledger synced: its Commit (${this.sim.name(o)} seq ${e.seq}) is on a disk, central's mark for ${this.sim.name(o)} is ${c.cMarks.get(o) ?? 0}`,
      )
    }
  }

  /**
   * No hold leaks after quiescence: at the end (everything healed, drained) a reservation a live
   * terminal still holds as in flight — neither its Commit nor its Release known there — must be
   * one whose settlement exists and has not reached it yet (`hold-lag`: anti-entropy is periodic),
   * an online attempt its origin keeps pending until voided (`hold-online-pending`), or one of an
   * origin whose disk was lost (`hold-origin-wiped`: it is not released by its learned-back origin;
   * central's abandonment frees it, which the simulator does not model). Anything else never
   * frees its card's headroom and nullifier: `hold-leak`.
   */
  private checkHolds(settledOnDisk: ReadonlySet<string>): void {
    for (const node of this.sim.nodes) {
      if (!node.up || node.core === undefined) continue
      for (const id of [...node.core.view.inflight].sort()) {
        const origin = this.sim.venue.index.get(node.core.view.reservationOrigin.get(id) ?? '')
        const o = origin === undefined ? undefined : this.sim.nodes[origin]
        let kind: string
        if (settledOnDisk.has(id) || this.sim.central.cCommitted.has(id)) kind = 'hold-lag'
        else if (o !== undefined && (o.disk.markers.has(id) || o.online.has(id))) kind = 'hold-online-pending'
        else if (o !== undefined && this.wipedAt.has(o.i)) kind = 'hold-origin-wiped'
        else {
          this.sim.fail(
            'hold-leak',
            `${node.name} still holds ${id.slice(0, 8)} after the drain: no Commit or Release of it anywhere, its origin ${o?.name ?? '?'} kept its disk and has no online attempt pending`,
          )
        }
        this.sim.count(kind)
      }
    }
  }
}
