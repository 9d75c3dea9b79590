import { randomBytes } from 'node:crypto'
import {
  CustodianGroups,
  custodianGroup,
  generateKeyPair,
  type KeyPair,
  toHex,
  verifyQuorumCertificate,
} from '@nullmesh/protocol'
import { describe, expect, it } from 'vitest'
import { ack, alice, commit, reservation } from './fixtures.js'

// deterministic pseudo-keys: groups only need distinct hex member ids
function members(n: number, tag = 'm'): string[] {
  return Array.from({ length: n }, (_, i) =>
    Buffer.from(`${tag}${i}`.padEnd(32, '.')).toString('hex').slice(0, 64),
  )
}
function cardKeys(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => {
    const k = new Uint8Array(16)
    new DataView(k.buffer).setUint32(0, i * 2654435761)
    new DataView(k.buffer).setUint32(8, i)
    return k
  })
}

describe('custodianGroup (rendezvous hashing)', () => {
  it('is stable: the same group whatever the order of the roster, and sorted', () => {
    const roster = members(40)
    const shuffled = [...roster].reverse()
    for (const card of cardKeys(200)) {
      const g = custodianGroup(card, roster, 5)
      expect(g).toHaveLength(5)
      expect(new Set(g).size).toBe(5)
      expect(g).toEqual([...g].sort())
      expect(custodianGroup(card, shuffled, 5)).toEqual(g)
    }
  })

  it('a roster of at most G is one group, the whole roster', () => {
    const roster = members(4)
    expect(custodianGroup(cardKeys(1)[0]!, roster, 5)).toEqual([...roster].sort())
    expect(custodianGroup(cardKeys(1)[0]!, members(5), 5)).toEqual([...members(5)].sort())
  })

  it('is balanced: each member custodies about G/N of the cards', () => {
    const roster = members(50)
    const groups = new CustodianGroups(roster, 5)
    const load = new Map<string, number>(roster.map((m) => [m, 0]))
    const cards = cardKeys(20_000)
    for (const card of cards) for (const m of groups.of(card).members) load.set(m, load.get(m)! + 1)
    const mean = (cards.length * 5) / roster.length // 2,000
    for (const n of load.values()) {
      expect(n).toBeGreaterThan(mean * 0.85)
      expect(n).toBeLessThan(mean * 1.15)
    }
  })

  it('moves few cards when a member is added or removed, each by that one member', () => {
    const roster = members(100)
    const cards = cardKeys(5_000)
    const added = [...roster, members(1, 'new')[0]!]
    const removedMember = roster[17]!
    const removed = roster.filter((m) => m !== removedMember)
    const [g0, gAdd, gRemove] = [roster, added, removed].map((r) => new CustodianGroups(r, 5))
    let movedOnAdd = 0
    let movedOnRemove = 0
    for (const card of cards) {
      const before = g0!.of(card).members
      const a = gAdd!.of(card).members
      if (a.join() !== before.join()) {
        movedOnAdd++
        // the newcomer replaced exactly one member
        expect(a).toContain(added.at(-1))
        expect(a.filter((m) => !before.includes(m))).toEqual([added.at(-1)])
      }
      const r = gRemove!.of(card).members
      if (r.join() !== before.join()) {
        movedOnRemove++
        // only groups that held the removed member change, and only it is replaced
        expect(before).toContain(removedMember)
        expect(before.filter((m) => !r.includes(m))).toEqual([removedMember])
      } else expect(before).not.toContain(removedMember)
    }
    // expected ≈ G/(N+1) and G/N of the cards: ~250 of 5,000
    expect(movedOnAdd).toBeLessThan(400)
    expect(movedOnRemove).toBeLessThan(400)
    expect(movedOnAdd).toBeGreaterThan(100)
  })

  it('CustodianGroups memoises and agrees with custodianGroup', () => {
    const roster = members(30)
    const groups = new CustodianGroups(roster, 5)
    for (const card of cardKeys(50)) {
      const g = groups.of(card)
      expect(g.members).toEqual(custodianGroup(card, roster, 5))
      expect(groups.of(toHex(card))).toBe(g)
      for (const m of roster) expect(g.has(m)).toBe(g.members.includes(m))
    }
  })
})

describe('verifyQuorumCertificate within the card group', () => {
  const keys: KeyPair[] = [alice, ...Array.from({ length: 8 }, () => generateKeyPair())]
  const roster = keys.map((k) => toHex(k.publicKey))
  const groups = new CustodianGroups(roster, 5)
  const res = reservation(alice, { cardKey: randomBytes(16) })
  const group = groups.of(res.event.cardKey)
  const inGroup = keys.filter((k) => group.has(toHex(k.publicKey)))
  const outside = keys.filter((k) => !group.has(toHex(k.publicKey)))
  const opts = { isEnrolled: () => true, quorum: 3, group: (c: Uint8Array) => groups.of(c) }

  it('accepts a majority of the group', () => {
    const r = verifyQuorumCertificate(
      commit(
        res,
        'quorum',
        inGroup.slice(0, 3).map((k) => ack(k, res.id)),
      ).event,
      opts,
    )
    expect(r.ok).toBe(true)
  })

  it('[groups] refuses an ack from outside the group, even with enough acks', () => {
    const acks = [...inGroup.slice(0, 2), ...outside.slice(0, 2)].map((k) => ack(k, res.id))
    const r = verifyQuorumCertificate(commit(res, 'quorum', acks).event, opts)
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.error.message).toMatch(/not in the card's custodian group of 5/)
  })

  it('refuses fewer than a majority of the group', () => {
    const r = verifyQuorumCertificate(
      commit(
        res,
        'quorum',
        inGroup.slice(0, 2).map((k) => ack(k, res.id)),
      ).event,
      opts,
    )
    expect(r.ok).toBe(false)
  })
})
