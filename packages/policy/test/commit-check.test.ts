import {
  checkCommitStateless,
  checkIsolatedCommit,
  createExposureState,
  decideOffline,
  defaultPolicy,
} from '@nullmesh/policy'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CARD_1, CARD_2, facts, ORIGIN_B, T0 } from './helpers.js'

// Issue 17, item 1: a Commit made by someone else is judged against the policy. Defaults (EUR):
// floor 50.00, isolated floor 25.00, isolated device cap 200.00, one isolated approval per card.
const policy = defaultPolicy('v')

describe('checkCommitStateless', () => {
  it('[isolated floor] an isolated commit above the isolated floor limit is a violation', () => {
    expect(checkCommitStateless(policy, facts({ amountMinor: 2_500 }), 'isolated').approve).toBe(true)
    expect(checkCommitStateless(policy, facts({ amountMinor: 9_999_999 }), 'isolated')).toMatchObject({
      approve: false,
      code: 'isolated_limit_exceeded',
    })
  })

  it('a quorum commit above the floor limit, another currency, a method not allowed offline', () => {
    expect(checkCommitStateless(policy, facts({ amountMinor: 5_001 }), 'quorum')).toMatchObject({
      code: 'floor_limit_exceeded',
    })
    expect(checkCommitStateless(policy, facts({ currency: 'XXX' }), 'isolated')).toMatchObject({
      code: 'currency_not_supported',
    })
    expect(checkCommitStateless(policy, facts({ method: 'swipe' }), 'quorum')).toMatchObject({
      code: 'method_not_allowed_offline',
    })
    const off = defaultPolicy('v', { isolated: { enabled: false } })
    expect(checkCommitStateless(off, facts(), 'isolated')).toMatchObject({ code: 'quorum_unavailable' })
  })

  it('online commits are not judged here; quorum commits of another policy version were judged by their acks', () => {
    expect(checkCommitStateless(policy, facts({ amountMinor: 9_999_999 }), 'online').approve).toBe(true)
    const r = { ...facts({ amountMinor: 9_999 }), policyVersion: policy.version + 1 }
    expect(checkCommitStateless(policy, r, 'quorum').approve).toBe(true)
    expect(checkCommitStateless(policy, r, 'isolated').approve).toBe(false)
  })

  it('agrees with decideOffline: whatever decideOffline approves in a mode is no violation (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.constantFrom('EUR', 'USD', 'XXX'),
        fc.constantFrom('chip', 'contactless', 'nfc', 'qr', 'swipe' as const),
        fc.constantFrom('quorum' as const, 'isolated' as const),
        (amountMinor, currency, method, mode) => {
          const r = facts({ amountMinor, currency, method })
          const d = decideOffline(policy, createExposureState(), r, { mode, now: T0 })
          if (d.approve) expect(checkCommitStateless(policy, r, mode).approve).toBe(true)
        },
      ),
    )
  })
})

describe('checkIsolatedCommit', () => {
  it('[isolated total] counts the origin’s unconfirmed isolated commits, not confirmed ones or other origins', () => {
    const state = createExposureState()
    for (let i = 0; i < 8; i++) state.addCommit(facts({ amountMinor: 2_500, cardKey: `c${i}` }), 'isolated')
    state.addCommit(facts({ origin: ORIGIN_B, amountMinor: 2_500, cardKey: 'x' }), 'isolated')
    // 8 × 25.00 = 200.00 used: one cent more is over
    expect(checkIsolatedCommit(policy, state, facts({ amountMinor: 1, cardKey: CARD_2 }))).toMatchObject({
      approve: false,
      code: 'isolated_limit_exceeded',
    })
    const confirmed = facts({ amountMinor: 2_500, cardKey: 'c-confirmed' })
    const fresh = createExposureState()
    fresh.addCommit(confirmed, 'isolated')
    fresh.confirmIsolated(confirmed.id)
    expect(checkIsolatedCommit(policy, fresh, facts({ amountMinor: 2_500, cardKey: CARD_2 })).approve).toBe(
      true,
    )
  })

  it('[one per card] a second unconfirmed isolated approval of one card is a violation', () => {
    const state = createExposureState()
    state.addCommit(facts({ cardKey: CARD_1 }), 'isolated')
    expect(checkIsolatedCommit(policy, state, facts({ cardKey: CARD_1 }))).toMatchObject({
      code: 'isolated_card_used',
    })
    expect(checkIsolatedCommit(policy, state, facts({ cardKey: CARD_2 })).approve).toBe(true)
  })

  it('a commit the state already holds is not counted twice', () => {
    const state = createExposureState()
    const r = facts({ amountMinor: 2_500 })
    state.addCommit(r, 'isolated')
    expect(checkIsolatedCommit(policy, state, r).approve).toBe(true)
  })
})
