import { afterAll, beforeAll, expect, test } from 'vitest'
import { card, payment, startVenue, type TestVenue } from './helpers.js'

let venue: TestVenue
beforeAll(async () => {
  venue = await startVenue(3, { init: () => ({ mode: 'floor-limit-only', api: false }) })
})
afterAll(async () => {
  await venue?.cleanup()
})

test('floor-limit-only: each terminal decides alone, so a double tap is approved at every terminal', async () => {
  const token = card()
  const answers = await Promise.all(
    venue.terminals.map((t, i) =>
      t.pay(payment({ cardToken: token, credentialCounter: 3, idempotencyKey: `ft-${token}-${i}` })),
    ),
  )
  expect(answers.map((a) => a.status)).toEqual(['approved_offline', 'approved_offline', 'approved_offline'])
  expect(answers.every((a) => a.mode === 'floor_limit' && a.barrier === undefined && !a.queued)).toBe(true)
  expect(venue.terminals[0]!.status().decisionMode).toBe('floor-limit-only')
})

test('floor-limit-only: the floor limit and the card cap hold per terminal, across a restart', async () => {
  const t = venue.terminals[0]!
  expect((await t.pay(payment({ amountMinor: 999_999 }))).declineCode).toBe('floor_limit_exceeded')
  const token = card()
  // default card cap: 150.00 per hour, floor 50.00
  for (let i = 0; i < 3; i++)
    expect((await t.pay(payment({ cardToken: token, amountMinor: 5000 }))).status).toBe('approved_offline')
  const t1 = await venue.restart(0)
  expect((await t1.pay(payment({ cardToken: token, amountMinor: 100 }))).declineCode).toBe(
    'card_cap_exceeded',
  )
  // the same credential use twice at one terminal is still caught
  const again = payment({ cardToken: card(), credentialCounter: 9 })
  expect((await t1.pay(again)).status).toBe('approved_offline')
  expect((await t1.pay({ ...again, idempotencyKey: `${again.idempotencyKey}-2` })).declineCode).toBe(
    'nullifier_seen',
  )
})
