import type { ReservationEntry } from '@nullmesh/ledger'
import { defaultPolicy } from '@nullmesh/policy'
import {
  type Commit,
  keyPairFromSeed,
  type Reservation,
  type SignedEvent,
  signAck,
  toHex,
} from '@nullmesh/protocol'
import { describe, expect, it } from 'vitest'
import { type Effect, MeshCore, type MutationName } from '../src/core/index.js'
import * as indexed from '../src/core/indexed.js'
import { coreFixture } from './core-fixture.js'

/**
 * An online payment sent to central while no quorum is reachable is held by no peer, and central's
 * dedup does not know offline approvals of its credential use not synced yet: it is admitted and
 * counted under the isolated rules (docs/protocol.md, "Online without a quorum"). Without it, the
 * simulator's `online-isolated-double-use` went unbounded.
 */

const N = 3
const keys = Array.from({ length: N }, (_, i) => keyPairFromSeed(new Uint8Array(32).fill(i + 1)))
const hex = keys.map((k) => toHex(k.publicKey))
const policy = defaultPolicy('v') // floor 5,000; isolated device cap 20,000; one isolated approval per card
const T0 = 10_000

/** terminal 0 alone: its peers are down (every dial fails), so after the probe time it is isolated */
function lone(
  opts: { mutations?: Set<MutationName>; events?: { signed: SignedEvent; held: boolean }[] } = {},
) {
  let t = T0
  const queue: { at: number; seq: number; fn: () => void }[] = []
  let seq = 0
  const at = (ms: number, fn: () => void) => queue.push({ at: t + ms, seq: seq++, fn })
  const done = new Map<number, { ok: boolean; value?: unknown; message?: string }>()
  const own: SignedEvent[] = []
  const core: MeshCore = new MeshCore({
    venueId: 'v',
    policy,
    key: keys[0]!,
    roster: { size: N, members: hex, isEnrolled: (k) => hex.includes(k) },
    clock: { wall: () => 1_700_000_000_000 + t, mono: () => t },
    rng: () => 0.5,
    effects: (e: Effect) => {
      if (e.type === 'write') {
        if (e.own) for (const r of e.records) own.push(r.event)
        if (e.sync) at(1, () => core.durable(e.id))
      } else if (e.type === 'timer') at(e.afterMs, () => core.timer(e.id))
      else if (e.type === 'dial') at(1, () => core.dialEnded(e.key, 'unreachable'))
      else if (e.type === 'done') done.set(e.op, e.result)
    },
    ...(opts.mutations === undefined ? {} : { mutations: opts.mutations }),
  })
  core.load({ events: opts.events ?? [], pruned: [], confirmedMarks: {}, nextSeq: 2 })
  core.start(1, [])
  const run = () => {
    for (let k = 0; k < 10_000 && queue.length > 0; k++) {
      queue.sort((a, b) => a.at - b.at || a.seq - b.seq)
      const next = queue.shift()!
      t = Math.max(t, next.at)
      next.fn()
    }
  }
  let op = 10
  /** reserve online; approved by central at once when `approve` */
  const online = (n: number, card: number, amountMinor: number, approve = true) => {
    const id = ++op
    core.reserveOnline(id, {
      nullifier: new Uint8Array(32).fill(n),
      cardKey: new Uint8Array(16).fill(card),
      amountMinor,
      currency: 'EUR',
      method: 'contactless',
    })
    run()
    const r = done.get(id)!
    if (!r.ok) return { refused: r.message! }
    const res = r.value as SignedEvent<Reservation>
    if (approve) {
      core.completeOnline(++op, res, true, 'approved_online')
      run()
    }
    return { res }
  }
  const commits = () => own.filter((e): e is SignedEvent<Commit> => e.event.type === 'commit')
  return { core, online, run, own, commits }
}

describe('core: an online payment no quorum holds uses the isolated budget [online without a quorum]', () => {
  it('one per card until central confirms it; its Commit carries no acks', () => {
    const v = lone()
    const first = v.online(1, 7, 9_000)
    expect(first.res).toBeDefined()
    expect(v.commits()).toHaveLength(1)
    expect(v.commits()[0]!.event.mode).toBe('online')
    expect(v.commits()[0]!.event.acks).toEqual([])
    // the same card again (another credential use): refused, it would be a second unbounded exposure
    expect(v.online(2, 7, 1_000).refused).toMatch(/isolated_card_used/)
    // another card is fine, counted at min(amount, floor limit)
    expect(v.online(3, 8, 9_000).res).toBeDefined()
    // central confirms our events up to the first Commit: the card is free again
    v.core.confirmed({ [hex[0]!]: v.commits()[0]!.event.seq })
    expect(v.online(4, 7, 1_000).res).toBeDefined()
  })

  it('the budget counts min(amount, floor limit) and refuses past the isolated device cap', () => {
    const v = lone()
    // 4 × min(9,000, 5,000) = 20,000 = the cap: a fifth card is refused
    for (let c = 1; c <= 4; c++) expect(v.online(c, c, 9_000).res).toBeDefined()
    expect(v.online(5, 5, 100).refused).toMatch(/isolated_limit_exceeded/)
    // isolated offline approvals share the budget: none is left
    expect(v.core.view.exposure.isolatedExposure(hex[0]!, 'EUR').amountMinor).toBe(20_000)
  })

  it('a pending one counts before central answers, and a declined one gives the budget back', () => {
    const v = lone()
    const pending = v.online(1, 7, 4_000, false)
    expect(pending.res).toBeDefined()
    expect(v.online(2, 7, 100).refused).toMatch(/isolated_card_used/)
    v.core.completeOnline(99, pending.res!, false, 'issuer_declined')
    v.run()
    expect(v.online(3, 7, 100).res).toBeDefined()
  })

  it('still counted after a restart, from the replayed events and from the ledger indexes', () => {
    const v = lone()
    v.online(1, 7, 9_000)
    const events = v.own.map((signed) => ({ signed, held: true }))
    // replay
    const replayed = lone({ events })
    expect(replayed.online(2, 7, 100).refused).toMatch(/isolated_card_used/)
    // the ledger's indexes, as load-state.ts streams them
    const res = events[0]!.signed as SignedEvent<Reservation>
    const entry: ReservationEntry = {
      id: res.idHex,
      state: 'committed',
      held: true,
      bodyStored: true,
      summary: {
        id: res.idHex,
        state: 'committed',
        held: true,
        nullifier: toHex(res.event.nullifier),
        cardKey: toHex(res.event.cardKey),
        currency: 'EUR',
        ts: res.event.ts,
        amountMinor: res.event.amountMinor,
        origin: hex[0]!,
        method: 'contactless',
        modes: ['online'],
      },
    }
    const fromIndexes = lone()
    const ids = indexed.loadReservations(fromIndexes.core, [entry], new Map())
    expect(ids).toEqual([res.idHex])
    indexed.loadOwnIsolated(fromIndexes.core, v.commits())
    expect(fromIndexes.online(2, 7, 100).refused).toMatch(/isolated_card_used/)
  })

  it('mutant unheld-online-unbounded: the same card is sent to central again and again', () => {
    const v = lone({ mutations: new Set(['unheld-online-unbounded']) })
    for (let n = 1; n <= 3; n++) expect(v.online(n, 7, 9_000).res).toBeDefined()
  })

  it('an online payment a quorum holds carries the quorum acks in its Commit and uses no isolated budget', () => {
    const f = coreFixture({ size: 3, me: 0 })
    for (const peer of [f.hex[1]!, f.hex[2]!]) f.learnFrom(peer)
    f.effects.length = 0
    f.core.reserveOnline(2, {
      nullifier: new Uint8Array(32).fill(3),
      cardKey: new Uint8Array(16).fill(4),
      amountMinor: 9_000,
      currency: 'EUR',
      method: 'contactless',
    })
    const write = f.effects.find((e) => e.type === 'write' && e.own) as Extract<Effect, { type: 'write' }>
    f.core.durable(write.id)
    const res = write.records[0]!.event as SignedEvent<Reservation>
    for (const e of f.effects.splice(0)) {
      if (e.type !== 'send' || e.msg.t !== 'req') continue
      const peer = f.keys[f.hex.indexOf(e.to)]!
      const ack = signAck(peer, {
        venue: 'v',
        acker: peer.publicKey,
        reservationId: res.id,
        ok: true,
        reason: 'online',
        ts: f.wall,
      })
      f.core.message(e.to, { t: 'ans', rid: e.msg.rid, ack: ack.bytes })
    }
    expect(f.effects.find((e) => e.type === 'done')).toMatchObject({ result: { ok: true } })
    f.core.completeOnline(3, res, true, 'approved_online')
    const commit = f.effects.find(
      (e) => e.type === 'write' && e.own && e.records[0]!.event.event.type === 'commit',
    ) as Extract<Effect, { type: 'write' }> | undefined
    expect((commit!.records[0]!.event.event as Commit).acks).toHaveLength(2)
    expect(f.core.view.exposure.isolatedExposure(f.hex[0]!, 'EUR').amountMinor).toBe(0)
  })
})
