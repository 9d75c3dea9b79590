import {
  type CommitFact,
  duplicateApprovals,
  LedgerUnion,
  makePlan,
  overCapCards,
  peerIdFromEd25519,
} from '@nullmesh/cli'
import { describe, expect, it } from 'vitest'

const base = {
  seed: 's1',
  scenario: 'normal' as const,
  terminals: 3,
  cards: 40,
  payments: 200,
  rate: 50,
  offline: 0.4,
  currency: 'EUR',
  floorLimitMinor: 5_000,
  blockedBin: '670341',
}

describe('sim plan', () => {
  it('is deterministic under a seed and differs across seeds', () => {
    const a = makePlan(base)
    const b = makePlan(base)
    const c = makePlan({ ...base, seed: 's2' })
    expect(JSON.stringify(a)).toBe(JSON.stringify(b))
    expect(JSON.stringify(a.payments)).not.toBe(JSON.stringify(c.payments))
  })

  it('makes exactly the requested payments, with the probing mix', () => {
    const plan = makePlan(base)
    expect(plan.payments).toHaveLength(200)
    expect(new Set(plan.payments.map((p) => p.request.idempotencyKey)).size).toBe(200)
    const kinds = new Set(plan.payments.map((p) => p.kind))
    expect(kinds).toContain('ordinary')
    expect(kinds).toContain('over_floor')
    expect(kinds).toContain('replay')
    for (const p of plan.payments.filter((q) => q.kind === 'over_floor'))
      expect(p.request.amountMinor).toBeGreaterThan(5_000)
    for (const p of plan.payments.filter((q) => q.kind === 'replay')) {
      const original = plan.payments[p.replayOf!]!
      expect(p.request.credentialCounter).toBe(original.request.credentialCounter)
      expect(p.request.cardToken).toBe(original.request.cardToken)
      expect(p.terminal).not.toBe(original.terminal)
    }
    expect(plan.cards.some((c) => c.kind === 'denylisted')).toBe(true)
    expect(
      plan.cards.filter((c) => c.kind === 'blocked_bin').every((c) => c.token.startsWith('670341')),
    ).toBe(true)
    // the venue starts without central and gets it back at 40 % of the load
    const links = plan.steps.filter((s) => s.kind === 'link')
    expect(links.filter((s) => s.kind === 'link' && !s.up && s.atMs === 0)).toHaveLength(3)
  })

  it('double-tap: one credential at every terminal at the same instant', () => {
    const plan = makePlan({ ...base, scenario: 'double-tap' })
    const groups = new Map<number, typeof plan.payments>()
    for (const p of plan.payments)
      if (p.group !== undefined) groups.set(p.group, [...(groups.get(p.group) ?? []), p])
    expect(groups.size).toBeGreaterThan(5)
    for (const g of groups.values()) {
      if (g.length < 3) continue // the last group may be cut short by --payments
      expect(new Set(g.map((p) => p.terminal))).toEqual(new Set([0, 1, 2]))
      expect(new Set(g.map((p) => `${p.request.cardToken}/${p.request.credentialCounter}`)).size).toBe(1)
    }
    const steps = plan.steps.filter((s) => s.kind === 'pay' && s.payments.length === 3)
    expect(steps.length).toBe([...groups.values()].filter((g) => g.length === 3).length)
  })

  it('partition: one terminal cut off and healed, in that order', () => {
    const plan = makePlan({ ...base, scenario: 'partition' })
    const parts = plan.steps.filter((s) => s.kind === 'partition')
    expect(parts.map((s) => s.kind === 'partition' && s.on)).toEqual([true, false])
    expect(parts[0]!.atMs).toBeLessThan(parts[1]!.atMs)
    expect(plan.partitioned).toBe(1)
  })
})

const fact = (over: Partial<CommitFact>): CommitFact => ({
  commitId: 'c',
  reservationId: 'r',
  origin: 'o',
  mode: 'quorum',
  nullifier: 'n',
  cardKey: 'k',
  currency: 'EUR',
  amountMinor: 1_000,
  ts: 0,
  ...over,
})

describe('ledger analysis', () => {
  it('counts a nullifier committed for two reservations, not one reservation seen twice', () => {
    const commits = [
      fact({ commitId: 'c1', reservationId: 'r1', nullifier: 'n1' }),
      fact({ commitId: 'c1b', reservationId: 'r1', nullifier: 'n1' }),
      fact({ commitId: 'c2', reservationId: 'r2', nullifier: 'n2' }),
      fact({ commitId: 'c3', reservationId: 'r3', nullifier: 'n2', mode: 'online', ts: 5 }),
    ]
    const d = duplicateApprovals(commits)
    expect(d.count).toBe(1)
    expect(d.nullifiers).toEqual(['n2'])
    expect(d.extraMinor).toBe(1_000)
  })

  it('over cap: offline commits summed over the worst card window, online ones ignored', () => {
    const hour = 3_600_000
    const commits = [
      fact({ reservationId: 'a', ts: 0, amountMinor: 8_000 }),
      fact({ reservationId: 'b', ts: hour / 2, amountMinor: 8_000, mode: 'isolated' }),
      fact({ reservationId: 'c', ts: hour / 2 + 1, amountMinor: 50_000, mode: 'online' }),
      fact({ reservationId: 'd', ts: 2 * hour, amountMinor: 8_000 }),
      fact({ reservationId: 'e', ts: 0, amountMinor: 14_000, cardKey: 'other' }),
    ]
    const r = overCapCards(commits, { EUR: 15_000 }, hour)
    expect(r.cards).toBe(1)
    expect(r.maxOverMinor).toBe(1_000)
    expect(r.maxWindowTotalMinor).toBe(16_000)
    expect(overCapCards(commits, { EUR: 15_000 }, hour / 4).cards).toBe(0)
  })

  it('LedgerUnion keeps each event once', () => {
    const u = new LedgerUnion()
    expect(u.commits.size).toBe(0)
    expect(u.commitsByMode()).toEqual({ quorum: 0, isolated: 0, online: 0 })
  })
})

describe('peer ids', () => {
  it('matches libp2p for an Ed25519 key', () => {
    const key = Buffer.from('98e9ec372d38bcd9d0c4559b5145bd8a1ecd0a27fb0b5e78b625b604397dbbbd', 'hex')
    expect(peerIdFromEd25519(key)).toBe('12D3KooWL7H2Bvrs6yNGMa1zupCtCgQ2xR29dhry9x2jTps5weyi')
  })
})
