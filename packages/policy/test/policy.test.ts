import {
  DEFAULT_CURRENCY_LIMITS,
  defaultPolicy,
  effectiveGroupSize,
  groupQuorum,
  MAX_GROUP_SIZE,
  MAX_ROSTER_SIZE,
  PolicyError,
  parsePolicy,
  partitionExposureBound,
  quorumIssues,
  quorumSize,
  rosterSizeIssue,
  signPolicy,
  type VenuePolicy,
  verifySignedPolicy,
} from '@nullmesh/policy'
import { generateKeyPair } from '@nullmesh/protocol'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'

const operator = generateKeyPair()

function messages(json: unknown): string[] {
  const r = parsePolicy(json)
  return r.ok ? [] : r.errors.map((e) => e.message)
}

describe('defaultPolicy', () => {
  it('has the documented defaults and validates', () => {
    const p = defaultPolicy('venue-1')
    expect(Object.keys(p.currencies).sort()).toEqual(['EUR', 'GBP', 'USD'])
    expect(p.currencies.EUR).toEqual({
      floorLimitMinor: 5000,
      cardCapMinor: 15000,
      deviceCapMinor: 200000,
      venueCapMinor: 2000000,
      isolatedFloorLimitMinor: 2500,
      isolatedDeviceCapMinor: 20000,
    })
    expect(p.allowedMethodsOffline).not.toContain('swipe')
    expect(p.allowedMethodsOffline).toContain('chip')
    expect(p.cardWindowMs).toBe(3_600_000)
    expect(p.cardCapCount).toBe(5)
    expect(p.deviceMaxQueued).toBe(200)
    expect(p.queueDurationMs).toBe(86_400_000)
    expect(p.barrier).toEqual({
      quorum: 'majority',
      groupSize: 5,
      timeoutMs: 750,
      retries: 4,
      retryJitterMs: 25,
    })
    expect(p.isolated).toEqual({ enabled: true, maxApprovalsPerCard: 1 })
    expect(p.maxClockSkewMs).toBe(30_000)
    expect(p.tapBudgetMs).toBe(2000)
    expect(parsePolicy(p)).toEqual({ ok: true, policy: p })
  })

  it('merges overrides: currencies replace the set, nested objects merge', () => {
    const p = defaultPolicy('v', {
      currencies: { CHF: { floorLimitMinor: 100, isolatedFloorLimitMinor: 50 } },
      barrier: { timeoutMs: 300 },
      version: 7,
    })
    expect(Object.keys(p.currencies)).toEqual(['CHF'])
    expect(p.currencies.CHF).toEqual({
      ...DEFAULT_CURRENCY_LIMITS,
      floorLimitMinor: 100,
      isolatedFloorLimitMinor: 50,
    })
    expect(p.barrier).toEqual({
      quorum: 'majority',
      groupSize: 5,
      timeoutMs: 300,
      retries: 4,
      retryJitterMs: 25,
    })
    expect(p.version).toBe(7)
  })

  it('returns fresh objects: changing one policy does not change the next', () => {
    const a = defaultPolicy('v')
    a.allowedMethodsOffline.push('swipe')
    a.currencies.EUR!.floorLimitMinor = 1
    const b = defaultPolicy('v')
    expect(b.allowedMethodsOffline).not.toContain('swipe')
    expect(b.currencies.EUR!.floorLimitMinor).toBe(5000)
  })
})

describe('parsePolicy', () => {
  const good = defaultPolicy('venue-1')

  it('names the field and the expectation', () => {
    const bad = structuredClone(good) as unknown as { currencies: { EUR: { floorLimitMinor: unknown } } }
    bad.currencies.EUR.floorLimitMinor = -1
    expect(messages(bad)).toEqual([
      '/currencies/EUR/floorLimitMinor: expected integer in [0, 281474976710655]',
    ])
    bad.currencies.EUR.floorLimitMinor = '5000'
    expect(messages(bad)).toEqual([
      '/currencies/EUR/floorLimitMinor: expected integer in [0, 281474976710655]',
    ])
    bad.currencies.EUR.floorLimitMinor = 1.5
    expect(messages(bad)).toHaveLength(1)
  })

  it('reports every bad field once', () => {
    const bad = {
      ...structuredClone(good),
      version: 70000,
      cardCapCount: -1,
      allowedMethodsOffline: ['chip', 'telepathy'],
      barrier: { quorum: 0, timeoutMs: 750, retries: 2, retryJitterMs: 25 },
      extra: true,
    }
    const r = parsePolicy(bad)
    expect(r.ok).toBe(false)
    if (r.ok) return
    const byPath = Object.fromEntries(r.errors.map((e) => [e.path, e.message]))
    expect(Object.keys(byPath).sort()).toEqual([
      '/allowedMethodsOffline/1',
      '/barrier/quorum',
      '/cardCapCount',
      '/extra',
      '/version',
    ])
    expect(byPath['/version']).toBe('/version: expected integer in [0, 65535]')
    expect(byPath['/cardCapCount']).toBe('/cardCapCount: expected integer ≥ 0')
    expect(byPath['/extra']).toBe('/extra: unknown field')
    expect(byPath['/barrier/quorum']).toBe('/barrier/quorum: expected "majority" or an integer ≥ 1')
    expect(byPath['/allowedMethodsOffline/1']).toMatch(/one of chip, contactless/)
  })

  it('rejects missing fields, bad currency codes, bad card keys and BINs', () => {
    const { maxClockSkewMs: _, ...missing } = good
    expect(messages(missing)).toEqual([
      '/maxClockSkewMs: required field missing (expected integer in [0, 600000] (ms, at most 10 minutes))',
    ])
    expect(messages({ ...good, currencies: { eur: DEFAULT_CURRENCY_LIMITS } })).toEqual([
      '/currencies/eur: expected an ISO 4217 currency code (three capital letters)',
    ])
    expect(messages({ ...good, denylistCardKeys: ['abc'] })[0]).toMatch(
      /^\/denylistCardKeys\/0: expected a card key/,
    )
    expect(messages({ ...good, blockedBins: ['41x'] })[0]).toMatch(/^\/blockedBins\/0: expected a BIN prefix/)
    expect(messages({ ...good, venueId: 'has space' })[0]).toMatch(/^\/venueId: /)
    expect(messages({ ...good, allowedMethodsOffline: ['chip', 'chip'] })[0]).toMatch(
      /^\/allowedMethodsOffline: /,
    )
  })

  it('rejects non-objects without throwing', () => {
    for (const v of [null, undefined, 42, 'policy', [], () => 1]) {
      const r = parsePolicy(v)
      expect(r.ok).toBe(false)
      if (!r.ok) expect(r.errors[0]!.message).toMatch(/^\/: expected a policy object/)
    }
  })

  it('cross-field rules', () => {
    const iso = defaultPolicy('v', {
      currencies: { EUR: { floorLimitMinor: 1000, isolatedFloorLimitMinor: 2000 } },
    })
    expect(messages(iso)).toEqual([
      '/currencies/EUR/isolatedFloorLimitMinor: must be ≤ floorLimitMinor (1000)',
    ])
    const dev = defaultPolicy('v', {
      currencies: { EUR: { deviceCapMinor: 1000, isolatedDeviceCapMinor: 2000 } },
    })
    expect(messages(dev)).toEqual(['/currencies/EUR/isolatedDeviceCapMinor: must be ≤ deviceCapMinor (1000)'])
    expect(messages(defaultPolicy('v', { isolated: { maxApprovalsPerCard: 0 } }))[0]).toMatch(
      /^\/isolated\/maxApprovalsPerCard/,
    )
    expect(messages(defaultPolicy('v', { isolated: { enabled: false, maxApprovalsPerCard: 0 } }))).toEqual([])
  })

  it('bounds maxClockSkewMs to 10 minutes: a larger skew lets an origin backdate out of a card window', () => {
    expect(messages(defaultPolicy('v', { maxClockSkewMs: 600_000 }))).toEqual([])
    expect(messages(defaultPolicy('v', { maxClockSkewMs: 600_001 }))).toEqual([
      '/maxClockSkewMs: expected integer in [0, 600000] (ms, at most 10 minutes)',
    ])
    expect(messages(defaultPolicy('v', { maxClockSkewMs: 365 * 24 * 3600 * 1000 }))).toHaveLength(1)
  })

  it('tapBudgetMs is required, in [200, 10000], and a barrier attempt must fit in it', () => {
    const { tapBudgetMs: _, ...missing } = defaultPolicy('v')
    expect(messages(missing)).toEqual([
      '/tapBudgetMs: required field missing (expected integer in [200, 10000] (ms))',
    ])
    expect(messages(defaultPolicy('v', { tapBudgetMs: 199 }))).toEqual([
      '/tapBudgetMs: expected integer in [200, 10000] (ms)',
    ])
    expect(messages(defaultPolicy('v', { tapBudgetMs: 10_001 }))).toHaveLength(1)
    expect(messages(defaultPolicy('v', { tapBudgetMs: 200, barrier: { timeoutMs: 200 } }))).toEqual([])
    expect(messages(defaultPolicy('v', { tapBudgetMs: 500 }))).toEqual([
      '/barrier/timeoutMs: must be ≤ tapBudgetMs (500): one attempt must fit in a tap',
    ])
  })

  it('returns a normalised copy', () => {
    const input = defaultPolicy('v', { denylistCardKeys: ['ABCDEF0123456789ABCDEF0123456789'] })
    const r = parsePolicy(input)
    expect(r.ok).toBe(true)
    if (!r.ok) return
    expect(r.policy.denylistCardKeys).toEqual(['abcdef0123456789abcdef0123456789'])
    expect(r.policy).not.toBe(input)
    input.currencies.EUR!.floorLimitMinor = 1
    expect(r.policy.currencies.EUR!.floorLimitMinor).toBe(5000)
  })

  it('never throws on random JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(parsePolicy(v).ok).toBe(false)
      }),
      { numRuns: 300 },
    )
  })
})

describe('signPolicy / verifySignedPolicy', () => {
  const policy = defaultPolicy('venue-1', { version: 4 })

  it('round-trips through JSON text', () => {
    const doc = signPolicy(operator, policy)
    const back = verifySignedPolicy(JSON.parse(JSON.stringify(doc, null, 2)), operator.publicKey)
    expect(back.ok).toBe(true)
    if (back.ok) expect(back.policy).toEqual(policy)
  })

  it('fails when tampered, with another key, or malformed', () => {
    const doc = signPolicy(operator, policy)
    const raised = structuredClone(doc)
    raised.payload.currencies.EUR!.floorLimitMinor = 500_000
    const codeOf = (r: ReturnType<typeof verifySignedPolicy>) => (r.ok ? 'ok' : r.error.code)
    expect(codeOf(verifySignedPolicy(raised, operator.publicKey))).toBe('ERR_BAD_SIGNATURE')
    expect(codeOf(verifySignedPolicy(doc, generateKeyPair().publicKey))).toBe('ERR_WRONG_ISSUER')
    expect(codeOf(verifySignedPolicy({ payload: policy }, operator.publicKey))).toBe('ERR_MALFORMED')
    expect(codeOf(verifySignedPolicy(null, operator.publicKey))).toBe('ERR_MALFORMED')
  })

  it('a validly signed but invalid policy is rejected with the schema errors', async () => {
    const { signDocument, DOMAIN } = await import('@nullmesh/protocol')
    const bad = signDocument(DOMAIN.policy, operator, { ...policy, cardCapCount: -5 })
    const r = verifySignedPolicy(bad, operator.publicKey)
    expect(r.ok).toBe(false)
    if (r.ok) return
    expect(r.error).toBeInstanceOf(PolicyError)
    expect(r.error.code).toBe('ERR_INVALID_POLICY')
    expect(r.error.issues.map((i) => i.path)).toEqual(['/cardCapCount'])
  })

  it('refuses to sign an invalid policy', () => {
    const bad = { ...policy, version: -1 } as VenuePolicy
    expect(() => signPolicy(operator, bad)).toThrow(PolicyError)
    try {
      signPolicy(operator, bad)
    } catch (err) {
      expect((err as PolicyError).code).toBe('ERR_INVALID_POLICY')
      expect((err as PolicyError).message).toMatch(/\/version/)
    }
  })

  it('signs a clean copy: undefined fields cannot break the signature after JSON', () => {
    const withUndefined = { ...policy, extra: undefined } as unknown as VenuePolicy
    // an undefined field is not a field: the schema sees it, JSON drops it; refusing is the safe choice
    expect(() => signPolicy(operator, withUndefined)).toThrow(PolicyError)
  })
})

describe('quorumSize', () => {
  it('majority is floor(n/2)+1', () => {
    const p = defaultPolicy('v')
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => quorumSize(p, n))).toEqual([1, 2, 2, 3, 3, 4, 4])
  })

  it('two majorities always intersect', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 500 }), (n) => {
        const q = quorumSize(defaultPolicy('v'), n)
        expect(2 * q).toBeGreaterThan(n)
        expect(q).toBeLessThanOrEqual(n)
      }),
    )
  })

  it('a number is clamped to [majority, n]: never below a majority', () => {
    const p = (quorum: number) => defaultPolicy('v', { barrier: { quorum } })
    expect(quorumSize(p(3), 5)).toBe(3)
    expect(quorumSize(p(4), 5)).toBe(4)
    expect(quorumSize(p(9), 5)).toBe(5)
    expect(quorumSize(p(2), 5)).toBe(3)
    expect(quorumSize(p(0), 5)).toBe(3)
    expect(quorumSize(p(2), 4)).toBe(3)
    expect(() => quorumSize(p(3), 0)).toThrow(RangeError)
  })

  it('any two quorums intersect, whatever number the policy holds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_ROSTER_SIZE }), fc.integer({ min: 1, max: 200 }), (n, q) => {
        const size = quorumSize(defaultPolicy('v', { barrier: { quorum: q } }), n)
        expect(2 * size).toBeGreaterThan(n)
        expect(size).toBeLessThanOrEqual(n)
      }),
    )
  })
})

describe('quorumIssues / rosterSizeIssue', () => {
  const p = (quorum: number | 'majority') => defaultPolicy('v', { barrier: { quorum } })

  it('a numeric quorum must be a strict majority of the roster', () => {
    expect(quorumIssues(p(3), 5)).toEqual([])
    expect(quorumIssues(p(9), 5)).toEqual([]) // clamped to 5, still a majority
    expect(quorumIssues(p('majority'), 100)).toEqual([])
    const issues = quorumIssues(p(2), 4)
    expect(issues.map((i) => i.path)).toEqual(['/barrier/quorum'])
    expect(issues[0]!.message).toMatch(
      /^\/barrier\/quorum: 2 is not a strict majority of 4 terminals \(needs ≥ 3\)/,
    )
    expect(quorumIssues(p(1), 2)).toHaveLength(1)
    expect(quorumIssues(p(1), 1)).toEqual([])
  })

  it('a numeric quorum must fit in one commit (MAX_ACKS acks)', () => {
    const big = (quorum: number) => defaultPolicy('v', { barrier: { quorum, groupSize: 127 } })
    expect(quorumIssues(big(64), 127)).toEqual([])
    expect(quorumIssues(big(65), 127)[0]!.message).toMatch(/65 acks do not fit in a commit \(at most 64\)/)
  })

  it('with a roster above groupSize, a numeric quorum is judged against the custodian group', () => {
    // default groupSize 5: 3 of a group of 5 is a majority whatever the roster
    expect(quorumIssues(p(3), 1000)).toEqual([])
    expect(groupQuorum(p('majority'), 1000)).toBe(3)
    expect(groupQuorum(p(4), 1000)).toBe(4)
    expect(groupQuorum(p(9), 1000)).toBe(5) // clamped to the group
    expect(effectiveGroupSize(p('majority'), 3)).toBe(3) // N ≤ G: the group is the roster
    expect(groupQuorum(p('majority'), 4)).toBe(3)
    const issues = quorumIssues(p(2), 1000)
    expect(issues[0]!.message).toMatch(
      /2 is not a strict majority of a custodian group of 5 terminals \(needs ≥ 3\)/,
    )
  })

  it('groupSize must be odd and its majority fit in a commit', () => {
    const bad = defaultPolicy('v', { barrier: { groupSize: 4 } })
    const even = parsePolicy(bad)
    expect(even.ok).toBe(false)
    if (!even.ok) expect(even.errors[0]!.message).toMatch(/^\/barrier\/groupSize: must be odd, got 4/)
    const huge = parsePolicy(defaultPolicy('v', { barrier: { groupSize: 129 } }))
    expect(huge.ok).toBe(false)
    if (!huge.ok)
      expect(huge.errors[0]!.message).toMatch(/\/barrier\/groupSize: expected integer in \[1, 127\]/)
    expect(MAX_GROUP_SIZE).toBe(127)
    expect(quorumSize(p('majority'), MAX_GROUP_SIZE)).toBe(64)
    // a policy signed before custodian groups (no groupSize) still parses, with the default
    const old = structuredClone(defaultPolicy('v')) as { barrier: Record<string, unknown> }
    delete old.barrier.groupSize
    const parsed = parsePolicy(old)
    expect(parsed.ok && parsed.policy.barrier.groupSize).toBe(5)
  })

  it('a roster has 1 to 1,000 terminals', () => {
    expect(MAX_ROSTER_SIZE).toBe(1000)
    expect(rosterSizeIssue(1)).toBeUndefined()
    expect(rosterSizeIssue(1000)).toBeUndefined()
    expect(rosterSizeIssue(1001)).toMatch(/1 to 1000 terminals/)
    expect(rosterSizeIssue(0)).toBeDefined()
    expect(rosterSizeIssue(1.5)).toBeDefined()
  })
})

describe('partitionExposureBound', () => {
  it('is roster × isolated device cap, 0 when disabled or unsupported', () => {
    expect(partitionExposureBound(defaultPolicy('v'), 5, 'EUR')).toBe(100_000)
    expect(partitionExposureBound(defaultPolicy('v', { isolated: { enabled: false } }), 5, 'EUR')).toBe(0)
    expect(partitionExposureBound(defaultPolicy('v'), 5, 'JPY')).toBe(0)
  })
})
