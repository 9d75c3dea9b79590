import {
  burstAmounts,
  type CommitFact,
  duplicateApprovals,
  formatSummary,
  isolatedApprovedMinor,
  LedgerUnion,
  makePlan,
  overCapCards,
  overCountCards,
  peerIdFromEd25519,
  type SimSummary,
  settledNotApproved,
  violations,
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
  cardCapMinor: 15_000,
  cardCapCount: 5,
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
    const steps = plan.steps.filter((s) => s.kind === 'pay' && s.payments[0]?.kind === 'double_tap')
    expect(steps.length).toBe(groups.size)
  })

  it('double-tap: most tapped cards are planned over both card caps, offline, at several terminals at once', () => {
    const plan = makePlan({ ...base, scenario: 'double-tap', payments: 400 })
    const byBurst = new Map<number, typeof plan.payments>()
    for (const p of plan.payments)
      if (p.burst !== undefined) byBurst.set(p.burst, [...(byBurst.get(p.burst) ?? []), p])
    expect(byBurst.size).toBeGreaterThan(5)
    let overBoth = 0
    for (const taps of byBurst.values()) {
      // the double tap counts once (one credential); every other tap is a fresh credential
      const credentials = new Set(taps.map((p) => `${p.request.cardToken}/${p.request.credentialCounter}`))
      const distinct = [...credentials].map((c) =>
        taps.find((p) => `${p.request.cardToken}/${p.request.credentialCounter}` === c),
      )
      const total = distinct.reduce((s, p) => s + p!.request.amountMinor, 0)
      if (distinct.length > base.cardCapCount && total > base.cardCapMinor) overBoth++
      expect(new Set(taps.map((p) => p.card)).size).toBe(1)
      for (const p of taps) expect(p.request.amountMinor).toBeLessThanOrEqual(base.floorLimitMinor)
      for (const p of taps.filter((q) => q.kind === 'cap_burst'))
        expect(p.request.offlineBehavior).toBe('force_offline')
    }
    // all but a burst cut short by --payments
    expect(overBoth).toBeGreaterThanOrEqual(byBurst.size - 1)
    // concurrently: each round taps the card at several terminals at one instant
    const rounds = plan.steps.filter((s) => s.kind === 'pay' && s.payments[0]?.kind === 'cap_burst')
    expect(
      rounds.some((s) => s.kind === 'pay' && new Set(s.payments.map((p) => p.terminal)).size === 3),
    ).toBe(true)
    // and most distinct cards (not the same one again and again)
    expect(new Set([...byBurst.values()].map((t) => t[0]!.card)).size).toBe(byBurst.size)
  })

  it('burstAmounts: over both caps, within the floor; the count profile fits the amount cap up to the count cap', () => {
    for (const caps of [
      { floorLimitMinor: 5_000, cardCapMinor: 15_000, cardCapCount: 5 },
      { floorLimitMinor: 1_000, cardCapMinor: 15_000, cardCapCount: 5 },
      { floorLimitMinor: 5_000, cardCapMinor: 2_000, cardCapCount: 10 },
      { floorLimitMinor: 5_000, cardCapMinor: 0, cardCapCount: 0 },
    ]) {
      for (const profile of ['count', 'amount'] as const) {
        const a = burstAmounts(caps, profile)
        expect(a.length).toBeGreaterThan(caps.cardCapCount)
        expect(a.reduce((s, x) => s + x, 0)).toBeGreaterThan(caps.cardCapMinor)
        for (const x of a) expect(x).toBeLessThanOrEqual(caps.floorLimitMinor)
      }
      const first = burstAmounts(caps, 'count').slice(0, caps.cardCapCount + 1)
      if (caps.cardCapMinor > 0)
        expect(first.reduce((s, x) => s + x, 0)).toBeLessThanOrEqual(caps.cardCapMinor)
    }
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
  unheld: false,
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

  it('over count: offline approvals counted over the worst card window, online ones ignored', () => {
    const hour = 3_600_000
    const commits = [
      ...[0, 1, 2].map((i) => fact({ reservationId: `q${i}`, ts: i * 1000 })),
      fact({ reservationId: 'iso', ts: 4000, mode: 'isolated' }),
      fact({ reservationId: 'on', ts: 5000, mode: 'online' }),
      fact({ reservationId: 'q0', ts: 0 }), // the same reservation seen twice counts once
      fact({ reservationId: 'late', ts: 2 * hour }),
      fact({ reservationId: 'o1', cardKey: 'other' }),
    ]
    const r = overCountCards(commits, 3, hour)
    expect(r.cards).toBe(1)
    expect(r.maxWindowCount).toBe(4)
    expect(r.details).toEqual([{ cardKey: 'k', currency: 'EUR', windowCount: 4, capCount: 3 }])
    expect(overCountCards(commits, 4, hour).cards).toBe(0)
    // another currency is another card total
    expect(overCountCards([...commits, fact({ reservationId: 'usd', currency: 'USD' })], 3, hour).cards).toBe(
      1,
    )
  })

  it('duplicates without an isolated approval are told apart from partition losses', () => {
    const d = duplicateApprovals([
      fact({ reservationId: 'a1', nullifier: 'na' }),
      fact({ reservationId: 'a2', nullifier: 'na', mode: 'isolated' }),
      fact({ reservationId: 'b1', nullifier: 'nb' }),
      fact({ reservationId: 'b2', nullifier: 'nb', mode: 'online' }),
    ])
    expect(d.count).toBe(2)
    expect(d.withoutIsolated).toBe(1)
  })

  it('isolatedApprovedMinor sums isolated commits of one currency, each reservation once', () => {
    const commits = [
      fact({ reservationId: 'i1', mode: 'isolated', amountMinor: 700 }),
      fact({ commitId: 'c2', reservationId: 'i1', mode: 'isolated', amountMinor: 700 }),
      fact({ reservationId: 'i2', mode: 'isolated', amountMinor: 300 }),
      fact({ reservationId: 'i3', mode: 'isolated', amountMinor: 5_000, currency: 'USD' }),
      fact({ reservationId: 'q', amountMinor: 9_000 }),
      fact({ reservationId: 'o', mode: 'online', amountMinor: 9_000 }),
      // online without a quorum holding it: counted at what it uses of the isolated budget
      fact({ reservationId: 'u', mode: 'online', unheld: true, amountMinor: 9_000 }),
    ]
    const floor = (c: CommitFact) => Math.min(c.amountMinor, 5_000)
    expect(isolatedApprovedMinor(commits, 'EUR', floor)).toBe(6_000)
    expect(isolatedApprovedMinor(commits, 'GBP', floor)).toBe(0)
  })

  it('a credential use approved online with no quorum holding it and again offline is covered by the isolated budget', () => {
    const d = duplicateApprovals([
      fact({ reservationId: 'a', nullifier: 'n', mode: 'online', unheld: true }),
      fact({ reservationId: 'b', nullifier: 'n', mode: 'quorum' }),
      fact({ reservationId: 'c', nullifier: 'm', mode: 'online' }),
      fact({ reservationId: 'd', nullifier: 'm', mode: 'quorum' }),
    ])
    expect(d.count).toBe(2)
    expect(d.withoutIsolated).toBe(1)
  })

  it('settledNotApproved: completed at central under an id no client saw approved', () => {
    const central = [
      { paymentId: 'seen', status: 'completed' },
      { paymentId: 'unseen', status: 'completed' },
      { paymentId: 'queued', status: 'queued' },
      { paymentId: 'failed', status: 'failed' },
    ]
    expect(settledNotApproved(central, new Set(['seen']))).toBe(1)
    expect(settledNotApproved(central, new Set(['seen', 'unseen']))).toBe(0)
  })

  it('LedgerUnion keeps each event once', () => {
    const u = new LedgerUnion()
    expect(u.commits.size).toBe(0)
    expect(u.commitsByMode()).toEqual({ quorum: 0, isolated: 0, online: 0 })
  })
})

/** A summary of a run that held every invariant. */
function cleanSummary(over: Partial<SimSummary> = {}): SimSummary {
  return {
    scenario: 'double-tap',
    terminals: 3,
    cards: 60,
    payments: 100,
    approved: 50,
    declined: 50,
    errors: 0,
    errorsByCode: {},
    byStatus: {},
    byMode: {},
    byKind: {},
    declines: {},
    overCapCards: 0,
    maxOverCapMinor: 0,
    maxCardWindowTotalMinor: 14_000,
    cardCapMinor: 15_000,
    overCountCards: 0,
    maxCardWindowCount: 5,
    cardCapCount: 5,
    duplicateApprovals: 0,
    duplicateApprovedMinor: 0,
    duplicatesWithoutIsolated: 0,
    barrierMs: { p50: 10, p99: 50, max: 60, count: 40 },
    latencyMs: { p50: 12, p99: 70 },
    maxDecisionMs: 80,
    overBudgetDecisions: 0,
    maxPosLagMs: 0,
    overBudgetWithinPosLag: 0,
    maxTerminalDecisionMs: 70,
    overBudgetInTerminal: 0,
    tapBudgetMs: 2_000,
    proofBytesMax: 87,
    proofsInvalid: 0,
    isolatedApprovals: 0,
    isolatedExposureMinor: 0,
    commitsByMode: { quorum: 45, isolated: 0, online: 5 },
    exposureBoundMinor: 60_000,
    currency: 'EUR',
    doubleTaps: { groups: 5, maxApprovalsPerGroup: 1 },
    replays: { total: 3, approved: 0 },
    retries: { total: 2, mismatches: 0 },
    settled: { completed: 50, failed: 0 },
    failedByCode: {},
    partitionLosses: 0,
    partitionLossMinor: 0,
    lost: 0,
    settledNotApproved: 0,
    syncTimedOut: false,
    ledgers: { perTerminal: {}, unionEvents: 0, byType: {} },
    crashed: [],
    pids: {},
    violations: [],
    seed: 1,
    loadMs: 1_000,
    durationMs: 5_000,
    dataDir: null,
    ...over,
  }
}

describe('violations', () => {
  it('none for a clean run; the summary prints the new figures', () => {
    expect(violations(cleanSummary())).toEqual([])
    const text = formatSummary(cleanSummary())
    expect(text).toMatch(
      /longest tap → decision 80 ms \(tap budget 2000 ms, 0 over it\); inside the terminal at most 70 ms \(0 over\)/,
    )
    expect(text).toMatch(/0 card\(s\) over the offline count cap \(worst card window 5 of 5 payments\)/)
    expect(text).toMatch(/0 isolated approval\(s\) of 0.00 EUR within the partition bound 600.00/)
  })

  it('a card over the count cap', () => {
    expect(violations(cleanSummary({ overCountCards: 2 }))).toEqual([
      '2 card(s) over their offline count cap',
    ])
    expect(formatSummary(cleanSummary({ overCountCards: 2 }))).toMatch(
      /✘ 2 card\(s\) over the offline count cap/,
    )
  })

  it('a payment settled under an id no client saw approved, in every scenario', () => {
    for (const scenario of ['normal', 'double-tap', 'partition'] as const)
      expect(violations(cleanSummary({ scenario, settledNotApproved: 1 }))).toEqual([
        '1 payment(s) settled under an id no client saw approved',
      ])
  })

  it('isolated approvals beyond the partition exposure bound, in every scenario', () => {
    expect(violations(cleanSummary({ scenario: 'partition', isolatedExposureMinor: 60_000 }))).toEqual([])
    for (const scenario of ['normal', 'partition'] as const)
      expect(violations(cleanSummary({ scenario, isolatedExposureMinor: 60_010 }))).toEqual([
        'isolated approvals of 600.10 EUR exceed the partition exposure bound of 600.00',
      ])
  })

  it('a partition: duplicates and over-cap cards through isolated mode are the bounded loss, others are not', () => {
    const partitionLoss = cleanSummary({
      scenario: 'partition',
      duplicateApprovals: 2,
      overCapCards: 1,
      overCountCards: 1,
      isolatedExposureMinor: 5_000,
    })
    expect(violations(partitionLoss)).toEqual([])
    expect(violations({ ...partitionLoss, duplicatesWithoutIsolated: 1 })).toEqual([
      '1 nullifier(s) approved more than once without isolated mode',
    ])
    // outside a partition none of it is allowed
    expect(violations({ ...partitionLoss, scenario: 'double-tap' })).toEqual([
      '2 nullifier(s) approved more than once',
      '1 card(s) over their offline cap',
      '1 card(s) over their offline count cap',
    ])
  })

  it('the tap budget is reported, not a violation (the terminals enforce it)', () => {
    const slow = cleanSummary({ maxDecisionMs: 2_500, overBudgetDecisions: 3 })
    expect(violations(slow)).toEqual([])
    expect(formatSummary(slow)).toMatch(/⚠ longest tap → decision 2500 ms \(tap budget 2000 ms, 3 over it\)/)
  })
})

describe('peer ids', () => {
  it('matches libp2p for an Ed25519 key', () => {
    const key = Buffer.from('98e9ec372d38bcd9d0c4559b5145bd8a1ecd0a27fb0b5e78b625b604397dbbbd', 'hex')
    expect(peerIdFromEd25519(key)).toBe('12D3KooWL7H2Bvrs6yNGMa1zupCtCgQ2xR29dhry9x2jTps5weyi')
  })
})
