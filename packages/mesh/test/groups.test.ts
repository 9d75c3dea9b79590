import { type Commit, CustodianGroups, computeCardKey, type SignedEvent, toHex } from '@nullmesh/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { candidate, startVenue, type TestVenue, waitFor } from './helpers.js'

/** Custodian groups on real libp2p sockets: 7 terminals, groups of 5 (the default groupSize). */
let venue: TestVenue | undefined
afterEach(async () => {
  await venue?.cleanup()
  venue = undefined
})

describe('custodian groups on real libp2p sockets (127.0.0.1)', () => {
  it('[groups] a card is certified by a majority of its group only, and its commit reaches every ledger', async () => {
    venue = await startVenue(7, { tapBudgetMs: 10_000 })
    const v = venue
    await waitFor(
      () => v.nodes.every((n) => n.node.status().peers >= 4),
      60_000,
      `every node sees most others (${v.nodes.map((n) => n.node.status().peers).join(',')})`,
    )
    const groups = new CustodianGroups(
      v.bundle.roster.map((r) => r.publicKeyHex),
      5,
    )
    const keyOf = (i: number) => v.bundle.roster[i]!.publicKeyHex
    // a card whose group does not contain T1, tapped at T1: its own ack does not count
    let card = ''
    for (let i = 0; i < 500 && card === ''; i++) {
      const pan = `4000000000${String(100000 + i)}`
      if (!groups.of(computeCardKey(v.bundle.hashingKey, pan)).has(keyOf(0))) card = pan
    }
    const group = groups.of(computeCardKey(v.bundle.hashingKey, card))
    expect(v.nodes[0]!.node.status()).toMatchObject({ groupSize: 5, quorum: 3, roster: 7 })
    // the same credential at every terminal at once: at most one approval
    const results = await Promise.all(
      v.nodes.map((n, i) => n.node.authorize(candidate(v.bundle, card, 1000, { atc: 9, idem: `g-${i}` }))),
    )
    expect(results.filter((r) => r.approved && r.mode === 'quorum').length).toBeLessThanOrEqual(1)
    const d = await v.nodes[0]!.node.authorize(candidate(v.bundle, card, 1000, { atc: 10, idem: 'g-x' }))
    expect(d.approved).toBe(true)
    // every ledger gets the commit; its acks are members of the card's group, none is T1's
    await waitFor(
      async () => {
        for (const n of v.nodes)
          if ((await n.ledger.reservationState(d.reservationId!)) !== 'committed') return false
        return true
      },
      20_000,
      'the commit in every ledger',
    )
    let commit: SignedEvent<Commit> | undefined
    for await (const e of v.nodes[6]!.ledger.events())
      if (e.event.type === 'commit' && e.event.reservation.idHex === d.reservationId)
        commit = e as SignedEvent<Commit>
    expect(commit).toBeDefined()
    const ackers = commit!.event.acks.map((a) => toHex(a.ack.acker))
    expect(ackers.length).toBeGreaterThanOrEqual(3)
    for (const a of ackers) expect(group.has(a)).toBe(true)
    expect(ackers).not.toContain(keyOf(0))
  }, 120_000)
})
