import { defaultPolicy, EscrowBook, initialShare } from '@nullmesh/policy'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'

const members = Array.from({ length: 7 }, (_, i) => `m${i}`)

describe('escrow shares of the venue cap', () => {
  it('initial shares add up to exactly the cap', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 1, max: 1000 }), (cap, n) => {
        const ms = Array.from({ length: n }, (_, i) => `t${String(i).padStart(4, '0')}`)
        let sum = 0
        for (const m of ms) sum += initialShare(cap, ms, m)
        expect(sum).toBe(cap)
      }),
      { numRuns: 50 },
    )
    expect(initialShare(100, members, 'stranger')).toBe(0)
  })

  /**
   * The invariant across crashes: a giver debits as it signs and sends only once durable; a
   * receiver credits only what it holds. Model: each transfer is signed (debit at the giver, kept
   * only if made durable before a crash), maybe delivered (only if durable), maybe lost. Whatever
   * happens, the shares each terminal acts on add up to at most the cap.
   */
  it('shares never add up to more than the cap, whatever transfers are lost or crashed', () => {
    const policy = defaultPolicy('v', { currencies: { EUR: { venueCapMinor: 70_000 } } })
    const step = fc.record({
      from: fc.integer({ min: 0, max: 6 }),
      to: fc.integer({ min: 0, max: 6 }),
      amount: fc.integer({ min: 1, max: 30_000 }),
      durable: fc.boolean(),
      delivered: fc.boolean(),
    })
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        // each terminal's own book: what it signed durably and what it received
        const books = members.map(() => new EscrowBook(policy, members))
        steps.forEach((s, k) => {
          if (s.from === s.to) return
          const giver = books[s.from]!
          const unused = giver.share(members[s.from]!, 'EUR')
          if (s.amount > unused) return // a giver only moves unused share
          const t = {
            id: `x${k}`,
            from: members[s.from]!,
            to: members[s.to]!,
            currency: 'EUR',
            amountMinor: s.amount,
          }
          if (!s.durable) return // crashed before the fsync: the debit is gone, nothing was sent
          giver.apply(t)
          if (s.delivered) books[s.to]!.apply(t)
        })
        let sum = 0
        for (const [i, m] of members.entries()) sum += books[i]!.share(m, 'EUR')
        expect(sum).toBeLessThanOrEqual(70_000)
      }),
    )
  })

  it('applies a transfer once', () => {
    const book = new EscrowBook(defaultPolicy('v', { currencies: { EUR: { venueCapMinor: 700 } } }), members)
    const t = { id: 'a', from: 'm0', to: 'm1', currency: 'EUR', amountMinor: 50 }
    book.apply(t)
    book.apply(t)
    expect(book.share('m0', 'EUR')).toBe(50)
    expect(book.share('m1', 'EUR')).toBe(150)
    expect(book.share('m1', 'USD')).toBe(0)
  })
})
