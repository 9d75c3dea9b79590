// The terminal's online path as a state machine without I/O (core/online.ts): the same class the
// daemon's adapter and the deterministic simulator drive. Logic only; the real-HTTP edges are in
// online-edges.test.ts.
import { describe, expect, test } from 'vitest'
import {
  FALLBACK_RESERVE_MS,
  OnlineCore,
  type OnlineMutationName,
  VOID_RETRY_MS,
} from '../src/core/online.js'

const TAP = 2000
const core = (mutations?: OnlineMutationName[]) =>
  new OnlineCore({
    tapBudgetMs: TAP,
    onlineTimeoutMs: 3000,
    ...(mutations === undefined ? {} : { mutations: new Set(mutations) }),
  })
const types = (effects: { type: string }[]) => effects.map((e) => e.type)

describe('OnlineCore', () => {
  test('[mark before central] central is asked only once the pending mark is durable, with room left for the fallback', () => {
    const c = core()
    expect(c.reserved('r1', { deadline: TAP, requireOnline: false })).toEqual([
      { type: 'mark-pending', id: 'r1', until: TAP },
    ])
    expect(c.unresolved).toBe(0)
    const ask = c.pendingDurable('r1', 100)
    expect(ask).toEqual([{ type: 'authorize', id: 'r1', timeoutMs: TAP - 100 - FALLBACK_RESERVE_MS }])
    expect(c.unresolved).toBe(1)
    // the mutant asks first: a crash before the mark leaves central charged and nothing pending
    expect(
      types(core(['authorize-before-mark']).reserved('r1', { deadline: TAP, requireOnline: false })),
    ).toEqual(['authorize'])
  })

  test('[mark deadline] a mark not durable by the deadline declines now; one durable too late for central skips it', () => {
    // the simulator, seed 216: the mark's fsync stalled past the tap deadline; central was asked
    // with a 1 ms timeout and the fallback decided 8 ms late
    const c = core()
    c.reserved('r1', { deadline: TAP, requireOnline: false })
    expect(c.markLate('r1')).toEqual([{ type: 'decline', id: 'r1', code: 'barrier_timeout' }])
    // the mark may still land: it asks nothing of central; the attempt is voided, then released
    expect(c.pendingDurable('r1', TAP + 5)).toEqual([])
    expect(c.unresolved).toBe(1)
    expect(types(c.tick(TAP + 10))).toEqual(['void'])
    expect(c.voidAnswered('r1', 'voided')).toEqual([
      { type: 'complete', id: 'r1', approved: false, reason: 'voided' },
    ])
    // durable in time, but with less than the fallback's room left: the fallback, central not asked
    const d = core()
    d.reserved('r2', { deadline: TAP, requireOnline: false })
    expect(d.pendingDurable('r2', TAP - FALLBACK_RESERVE_MS + 1)).toEqual([
      { type: 'fallback', id: 'r2', deadline: TAP },
    ])
    expect(d.markLate('r2')).toEqual([])
    // online only, no time left: declined, pending until voided
    const e = core()
    e.reserved('r3', { deadline: TAP, requireOnline: true })
    expect(e.pendingDurable('r3', TAP)).toEqual([{ type: 'decline', id: 'r3', code: 'barrier_timeout' }])
    // the mutant waits for the mark whatever it takes and asks central anyway
    const m = core(['unbounded-mark'])
    m.reserved('r4', { deadline: TAP, requireOnline: false })
    expect(m.markLate('r4')).toEqual([])
    expect(types(m.pendingDurable('r4', TAP - 10))).toEqual(['authorize'])
  })

  test('[answer] approved: commit, then the mark goes, then the POS hears it; a late answer changes nothing', () => {
    const c = core()
    c.reserved('r1', { deadline: TAP, requireOnline: false })
    c.pendingDurable('r1', 0)
    expect(c.answered('r1', true)).toEqual([
      { type: 'complete', id: 'r1', approved: true, reason: undefined },
    ])
    expect(c.completed('r1')).toEqual([
      { type: 'mark-done', id: 'r1' },
      { type: 'answer', id: 'r1', approved: true, declineCode: undefined },
    ])
    expect(c.unresolved).toBe(0)
    expect(c.answered('r1', false)).toEqual([])
  })

  test('[one identity] no answer: decided offline under the same reservation; a late answer after the timeout is ignored', () => {
    const c = core()
    c.reserved('r1', { deadline: TAP, requireOnline: false })
    c.pendingDurable('r1', 0)
    expect(c.unanswered('r1')).toEqual([{ type: 'fallback', id: 'r1', deadline: TAP }])
    expect(c.answered('r1', true)).toEqual([])
    expect(c.fallbackDecided('r1', true)).toEqual([{ type: 'mark-done', id: 'r1' }])
    expect(c.has('r1')).toBe(false)
  })

  test('[void before release] a declined fallback stays pending until central voided it; a lost void is sent again', () => {
    const c = core()
    c.reserved('r1', { deadline: TAP, requireOnline: false })
    c.pendingDurable('r1', 0)
    c.unanswered('r1')
    expect(c.fallbackDecided('r1', false)).toEqual([])
    expect(c.has('r1')).toBe(true)
    expect(c.tick(1000)).toEqual([{ type: 'void', id: 'r1' }])
    expect(c.tick(1000 + VOID_RETRY_MS - 1)).toEqual([])
    expect(c.tick(1000 + VOID_RETRY_MS)).toEqual([{ type: 'void', id: 'r1' }])
    expect(c.voidAnswered('r1', 'voided')).toEqual([
      { type: 'complete', id: 'r1', approved: false, reason: 'voided' },
    ])
    expect(c.completed('r1')).toEqual([{ type: 'mark-done', id: 'r1' }])
    expect(c.unresolved).toBe(0)
    // the mutant releases at once, though central may have charged it
    const m = core(['release-unanswered'])
    m.reserved('r1', { deadline: TAP, requireOnline: false })
    m.pendingDurable('r1', 0)
    m.unanswered('r1')
    expect(types(m.fallbackDecided('r1', false))).toEqual(['complete'])
  })

  test('[committed] a void answered committed: the approval stands, nothing is released', () => {
    const c = core()
    c.recovered('r1')
    c.tick(0)
    expect(c.voidAnswered('r1', 'committed')).toEqual([{ type: 'mark-done', id: 'r1' }])
    expect(c.has('r1')).toBe(false)
  })

  test('[require_online] no answer: declined at once, pending until voided', () => {
    const c = core()
    c.reserved('r1', { deadline: TAP, requireOnline: true })
    expect(c.pendingDurable('r1', 0)).toEqual([{ type: 'authorize', id: 'r1', timeoutMs: TAP }])
    expect(c.unanswered('r1')).toEqual([{ type: 'decline', id: 'r1', code: 'offline_not_allowed' }])
    expect(types(c.tick(0))).toEqual(['void'])
  })

  test('[refused] central refused the request (4xx): released, then the offline path under a new reservation', () => {
    const c = core()
    c.reserved('r1', { deadline: TAP, requireOnline: false })
    c.pendingDurable('r1', 0)
    expect(c.rejected('r1')).toEqual([{ type: 'complete', id: 'r1', approved: false, reason: 'other' }])
    expect(c.completed('r1')).toEqual([
      { type: 'mark-done', id: 'r1' },
      { type: 'offline', id: 'r1' },
    ])
  })

  test('[restart] a pending attempt found at start: a POS retry voids it first when central is reachable, else decides it offline under it', () => {
    const c = core()
    c.recovered('r1')
    expect(c.retried('r1', { deadline: TAP, centralReachable: true }, 0)).toEqual([
      { type: 'void', id: 'r1' },
    ])
    // the resolver leaves an attempt a retry owns alone
    expect(c.tick(VOID_RETRY_MS * 2)).toEqual([])
    c.voidAnswered('r1', 'voided')
    expect(c.completed('r1')).toEqual([
      { type: 'mark-done', id: 'r1' },
      { type: 'afresh', id: 'r1' },
    ])
    const d = core()
    d.recovered('r2')
    expect(d.retried('r2', { deadline: TAP, centralReachable: false }, 0)).toEqual([
      { type: 'fallback', id: 'r2', deadline: TAP },
    ])
    expect(d.fallbackDecided('r2', false)).toEqual([])
    expect(types(d.tick(0))).toEqual(['void'])
  })

  test('[abandoned] a decision that fails before central was asked forgets the attempt; after, it stays pending', () => {
    const c = core()
    c.reserved('r1', { deadline: TAP, requireOnline: false })
    c.abandoned('r1')
    expect(c.has('r1')).toBe(false)
    c.reserved('r2', { deadline: TAP, requireOnline: false })
    c.pendingDurable('r2', 0)
    c.abandoned('r2')
    expect(types(c.tick(0))).toEqual(['void'])
  })
})
