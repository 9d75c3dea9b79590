import { defaultPolicy } from '@nullmesh/policy'
import {
  type Commit,
  CustodianGroups,
  keyPairFromSeed,
  type SignedEvent,
  toHex,
  verifyQuorumCertificate,
} from '@nullmesh/protocol'
import { describe, expect, it } from 'vitest'
import {
  type Effect,
  MeshCore,
  type MutationName,
  type OfflineDecision,
  type WireMsg,
} from '../src/core/index.js'

/**
 * Custodian groups in the sans-I/O core (logic only; the simulator and the real-node tests cover
 * the rest): a reservation goes to its card's group only, needs a majority of the group, and the
 * origin's own ack counts only when it is a member.
 */

const N = 9
const keys = Array.from({ length: N }, (_, i) => keyPairFromSeed(new Uint8Array(32).fill(i + 1)))
const hex = keys.map((k) => toHex(k.publicKey))
const policy = defaultPolicy('v') // groupSize 5: quorum 3 of the card's group
const groups = new CustodianGroups(hex, 5)

/** a venue of N cores wired by a FIFO network; durable writes complete in order */
function venue(
  opts: {
    down?: Set<number>
    mutations?: Set<MutationName>
    link?: (i: number, j: number) => boolean
    /** up and reachable, but not connected at start: reached only by an on-demand dial */
    unconnected?: (i: number, j: number) => boolean
    policy?: typeof policy
    /** hold back fsyncs (durable) until released */
    holdFsync?: boolean
  } = {},
) {
  let t = 0
  // (time, seq)-ordered: messages and fsyncs take 1 ms, timers their delay
  const queue: { at: number; seq: number; fn: () => void }[] = []
  let seq = 0
  const at = (ms: number, fn: () => void) => queue.push({ at: t + ms, seq: seq++, fn })
  const sent: { from: number; to: number; t: string; msg: WireMsg }[] = []
  const events = new Map<string, SignedEvent>()
  const held: (() => void)[] = []
  const done = new Map<string, OfflineDecision>()
  const cores: MeshCore[] = []
  const dials: { from: number; to: number }[] = []
  const connect = (i: number, j: number) => {
    const core = cores[i]!
    const peer = hex[j]!
    if (core.reach.isReady(peer)) return
    core.peerConnected(peer)
    core.peerVerified(peer)
    core.catchupStarted(peer, true)
    core.catchupEnded(peer, true, true)
  }
  for (let i = 0; i < N; i++) {
    const core: MeshCore = new MeshCore({
      venueId: 'v',
      policy: opts.policy ?? policy,
      key: keys[i]!,
      roster: { size: N, members: hex, isEnrolled: (k) => hex.includes(k) },
      clock: { wall: () => 1_700_000_000_000 + t, mono: () => t },
      rng: () => 0.5,
      effects: (e: Effect) => {
        if (e.type === 'write' && e.sync) {
          if (opts.holdFsync === true) held.push(() => core.durable(e.id))
          else at(1, () => core.durable(e.id))
        } else if (e.type === 'send') {
          const to = hex.indexOf(e.to)
          sent.push({ from: i, to, t: e.msg.t, msg: e.msg })
          if (opts.down?.has(to)) {
            if (e.msg.t === 'req') {
              const rid = e.msg.rid
              at(1, () => core.message(e.to, { t: 'ans', rid, ack: null }))
            }
          } else at(1, () => cores[to]!.message(hex[i]!, e.msg))
        } else if (e.type === 'done')
          done.set(`${i}:${e.op}`, (e.result.ok ? e.result.value : e.result) as OfflineDecision)
        else if (e.type === 'timer') at(e.afterMs, () => core.timer(e.id))
        else if (e.type === 'dial') {
          const j = hex.indexOf(e.key)
          dials.push({ from: i, to: j })
          if (opts.down?.has(j) || opts.link?.(i, j) === false)
            at(1, () => core.dialEnded(e.key, 'unreachable'))
          else
            at(1, () => {
              connect(i, j)
              connect(j, i)
              core.dialEnded(e.key, 'connected')
            })
        } else if (e.type === 'event' && e.source === 'self') events.set(e.event.idHex, e.event)
      },
      ...(opts.mutations === undefined ? {} : { mutations: opts.mutations }),
    })
    cores.push(core)
  }
  for (const [i, core] of cores.entries()) {
    core.load({ events: [], pruned: [], confirmedMarks: {}, nextSeq: 1 })
    core.view.seqKnown = true
    core.start(1, [])
    for (const j of hex.keys()) {
      if (j === i || opts.down?.has(j) || opts.link?.(i, j) === false) continue
      if (opts.unconnected?.(i, j) === true || opts.unconnected?.(j, i) === true) continue
      connect(i, j)
    }
  }
  const run = () => {
    for (let k = 0; k < 100_000 && queue.length > 0; k++) {
      queue.sort((a, b) => a.at - b.at || a.seq - b.seq)
      const next = queue.shift()!
      t = Math.max(t, next.at)
      next.fn()
    }
  }
  const release = () => {
    for (const f of held.splice(0)) f()
  }
  return { cores, sent, dials, done, events, run, release, advance: (ms: number) => (t += ms) }
}

function card(i: number): Uint8Array {
  const c = new Uint8Array(16)
  c[0] = i
  c[1] = 0xaa
  return c
}

/** a card whose group does (or does not) contain terminal `who` */
function cardWhere(pred: (g: { has(m: string): boolean }) => boolean): Uint8Array {
  for (let i = 0; i < 256; i++) if (pred(groups.of(card(i)))) return card(i)
  throw new Error('no such card')
}

function pay(cardKey: Uint8Array, n: number) {
  return {
    nullifier: new Uint8Array(32).fill(n),
    cardKey,
    amountMinor: 500,
    currency: 'EUR',
    method: 'contactless' as const,
  }
}

describe('core: custodian groups', () => {
  it('a reservation goes to its card group only; a non-member origin needs a majority of the group without its own ack', () => {
    const cardKey = cardWhere((g) => !g.has(hex[0]!))
    const group = groups.of(cardKey)
    const v = venue()
    v.cores[0]!.authorize(2, pay(cardKey, 1))
    v.run()
    const d = v.done.get('0:2')!
    expect(d, JSON.stringify({ ...d, proof: undefined })).toMatchObject({ approved: true })
    const reqs = v.sent.filter((s) => s.from === 0 && s.t === 'req')
    expect(reqs.length).toBeGreaterThan(0)
    for (const r of reqs) expect(group.has(hex[r.to]!)).toBe(true)
    // the certificate: 3 acks, all from the group, none the origin's own
    const commitBytes = [...v.cores[0]!.view.known].length
    expect(commitBytes).toBeGreaterThan(0)
    expect(d.barrier.acks).toBe(3)
    expect(d.barrier.quorum).toBe(3)
  })

  it('a member origin counts its own ack: two peers of its group suffice', () => {
    const cardKey = cardWhere((g) => g.has(hex[0]!))
    const v = venue()
    v.cores[0]!.authorize(2, pay(cardKey, 2))
    v.run()
    const d = v.done.get('0:2')!
    expect(d.approved).toBe(true)
    expect(d.barrier.acks).toBe(3)
    for (const r of v.sent.filter((s) => s.from === 0 && s.t === 'req'))
      expect(groups.of(cardKey).has(hex[r.to]!)).toBe(true)
  })

  it('[groups] a responder outside the card group does not ack', () => {
    const cardKey = cardWhere((g) => g.has(hex[0]!) && !g.has(hex[1]!) && g.has(hex[2]!))
    const v = venue()
    v.cores[0]!.authorize(2, pay(cardKey, 3))
    v.run()
    const res = [...v.events.values()].find((e) => e.event.type === 'reservation')!
    // terminal 0 asks terminal 1, outside the group (a faulty origin, or a roster it disagrees on)
    const before = v.sent.length
    v.cores[1]!.message(hex[0]!, { t: 'req', rid: 999, bytes: res.bytes, view: [], online: false })
    v.cores[2]!.message(hex[0]!, { t: 'req', rid: 998, bytes: res.bytes, view: [], online: false })
    const answers = v.sent.slice(before).filter((s) => s.msg.t === 'ans')
    const of = (from: number) => answers.find((a) => a.from === from)!.msg as { ack: Uint8Array | null }
    expect(of(1).ack).toBeNull()
    // a member answers (with the same ack it gave before: it holds the reservation)
    expect(of(2).ack).not.toBeNull()
  })

  it('a card whose group has no reachable majority alone falls back to the isolated rules', () => {
    // take terminals down so that one card's group loses its majority while another card's keeps it
    const cardA = cardWhere((g) => g.has(hex[0]!))
    const gA = groups.of(cardA)
    const others = gA.members.filter((m) => m !== hex[0])
    const down = new Set(others.slice(0, 3).map((m) => hex.indexOf(m))) // 0 + 1 of 5 left
    const cardB = cardWhere((g) => g.members.filter((m) => !down.has(hex.indexOf(m))).length >= 3)
    const v = venue({ down })
    v.advance(10_000) // past the probe time
    v.cores[0]!.authorize(2, pay(cardA, 4))
    v.cores[0]!.authorize(3, pay(cardB, 5))
    v.run()
    expect(v.done.get('0:2')!.mode).toBe('isolated')
    expect(v.done.get('0:2')!.decision).toBe('approved_offline_isolated')
    expect(v.done.get('0:3')!.mode).toBe('quorum')
    expect(v.done.get('0:3')!.approved).toBe(true)
    expect([...v.cores[0]!.noQuorumGroups.keys()]).toEqual([toHex(cardA)])
  })

  it('[connections] group members up but not connected are dialled on demand: a quorum, never the isolated rules', () => {
    // terminal 0 is connected to one terminal only (a gossip neighbour outside the card's group);
    // every member of the card's group is up, and reached only by dialling it now
    const cardKey = cardWhere((g) => !g.has(hex[0]!) && !g.has(hex[1]!))
    const gossipOnly = (i: number, j: number) => i === 0 && j !== 1
    const v = venue({ unconnected: gossipOnly })
    v.advance(10_000) // long past the probe time: "not connected" must not read as "unreachable"
    expect(v.cores[0]!.reach.reachGroup(groups.of(cardKey).members, hex[0]!, 3, 10_000)).toBe('unknown')
    v.cores[0]!.authorize(2, pay(cardKey, 4))
    v.run()
    const d = v.done.get('0:2')!
    expect(d.mode).toBe('quorum')
    expect(d.decision).toBe('approved_offline')
    expect(d.barrier.acks).toBeGreaterThanOrEqual(3)
    // only members of the card's group were dialled
    expect(v.dials.length).toBeGreaterThanOrEqual(3)
    expect(v.dials.every((x) => x.from === 0 && groups.of(cardKey).has(hex[x.to]!))).toBe(true)
    expect(v.cores[0]!.noQuorumGroups.size).toBe(0)
  })

  it('[connections] a refused dial (a live peer at its connection limit) or one cut short by the deadline never counts as unreachable', () => {
    const cardKey = cardWhere((g) => !g.has(hex[0]!))
    const v = venue({ unconnected: (i) => i === 0 })
    v.advance(10_000)
    const core = v.cores[0]!
    const members = groups.of(cardKey).members
    for (const m of members) {
      core.reach.dialStarted(m, 10_000, 1000)
      core.reach.dialEnded(m, 'refused', 10_000)
    }
    // alive but not connected: undecided (a decline at the deadline), never isolated
    expect(core.reach.reachGroup(members, hex[0]!, 3, 10_001)).toBe('unknown')
    // a dial cut short by the decision's deadline proves nothing either
    for (const m of members) core.reach.dialStarted(m, 10_300, 5)
    for (const m of members) core.reach.dialEnded(m, 'unreachable', 10_305)
    expect(core.reach.reachGroup(members, hex[0]!, 3, 10_306)).toBe('unknown')
    // a full-length dial that failed is evidence
    for (const m of members) core.reach.dialStarted(m, 10_600, 1000)
    for (const m of members) core.reach.dialEnded(m, 'unreachable', 10_601)
    expect(core.reach.reachGroup(members, hex[0]!, 3, 10_602)).toBe('isolated')
  })

  it('[groups] the mutant that counts acks from outside the group approves one credential twice; its certificates fail verification', () => {
    // two origins outside the card's group tap one credential use at once: with the group's
    // acks only, the group's majorities intersect and one is refused
    const cardKey = cardWhere((g) => !g.has(hex[0]!) && !g.has(hex[1]!))
    // with the mutant, each origin has reached a different half of the venue first
    const split = (i: number, j: number) => (i === 0 ? j <= 4 : i === 1 ? j === 0 || j >= 5 : true)
    const both = (mutations?: Set<MutationName>, link?: typeof split) => {
      const v = venue({
        ...(mutations === undefined ? {} : { mutations }),
        ...(link === undefined ? {} : { link }),
      })
      v.cores[0]!.authorize(2, pay(cardKey, 6))
      v.cores[1]!.authorize(2, pay(cardKey, 6))
      v.run()
      const ds = [v.done.get('0:2')!, v.done.get('1:2')!]
      expect(ds.every((d) => d !== undefined)).toBe(true)
      return { v, approvals: ds.filter((d) => d.approved) }
    }
    expect(both().approvals).toHaveLength(1)
    expect(both(undefined, split).approvals.filter((d) => d.mode === 'quorum').length).toBeLessThanOrEqual(1)
    const { v, approvals } = both(new Set(['ack-outside-group']), split)
    expect(approvals).toHaveLength(2)
    // and a peer or central rejects such a certificate: an ack is from outside the card's group
    const verdicts = approvals.map((d) => {
      const commit = v.events.get(d.commitId!)!.event as Commit
      return verifyQuorumCertificate(commit, {
        isEnrolled: () => true,
        group: (c) => groups.of(c),
        quorum: 3,
      }).ok
    })
    expect(verdicts).toContain(false)
  })

  describe('escrow of the venue cap', () => {
    // 9 terminals, a cap of 9 × 6,000: each starts with 6,000
    const capped = defaultPolicy('v', { currencies: { EUR: { venueCapMinor: 54_000 } } })

    it('[escrow] a terminal approves offline only within its share; a transfer moves unused share', () => {
      const v = venue({ policy: capped })
      const c0 = v.cores[0]!
      expect(c0.view.escrow!.share(hex[0]!, 'EUR')).toBe(6000)
      c0.authorize(2, { ...pay(card(1), 11), amountMinor: 5000 })
      v.run()
      expect(v.done.get('0:2')!.approved).toBe(true)
      c0.authorize(3, { ...pay(card(2), 12), amountMinor: 2000 })
      v.run()
      expect(v.done.get('0:3')).toMatchObject({ approved: false, declineCode: 'venue_cap_exceeded' })
      // terminal 1 gives 3,000 of its unused share; terminal 0 can approve again
      v.cores[1]!.transferShare(2, hex[0]!, 'EUR', 3000)
      v.run()
      expect(v.cores[1]!.view.escrow!.share(hex[1]!, 'EUR')).toBe(3000)
      expect(c0.view.escrow!.share(hex[0]!, 'EUR')).toBe(9000)
      c0.authorize(4, { ...pay(card(3), 13), amountMinor: 2000 })
      v.run()
      expect(v.done.get('0:4')!.approved).toBe(true)
      // only unused share moves
      v.cores[1]!.transferShare(3, hex[2]!, 'EUR', 3001)
      v.run()
      expect(v.done.get('1:3')).toMatchObject({ ok: false, code: 'ERR_REFUSED' })
    })

    it('[escrow] the giver debits as it signs and sends only once durable: a crash before the fsync creates nothing', () => {
      const v = venue({ policy: capped, holdFsync: true })
      const giver = v.cores[1]!
      const before = v.sent.length
      giver.transferShare(2, hex[0]!, 'EUR', 4000)
      v.run()
      // debited at once (no concurrent approval can spend it), nothing sent before the fsync
      expect(giver.view.escrow!.share(hex[1]!, 'EUR')).toBe(2000)
      expect(v.sent.slice(before).filter((s) => s.from === 1 && s.t === 'push')).toEqual([])
      expect(v.cores[0]!.view.escrow!.share(hex[0]!, 'EUR')).toBe(6000)
      v.release()
      v.run()
      expect(v.cores[0]!.view.escrow!.share(hex[0]!, 'EUR')).toBe(10_000)
    })
  })
})
