import { createHmac } from 'node:crypto'
import { signWebhookPayload } from '@nullmesh/central'
import { constructEvent, WebhookVerificationError } from '@nullmesh/client'
import { describe, expect, it } from 'vitest'

// Signs exactly as central does (packages/central/src/webhooks.ts, signWebhookPayload); the
// cross-check against central's own signer runs in packages/central's webhook tests.
function sign(body: string, secret: string, t: number): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.`).update(body).digest('hex')}`
}

const NOW = 1_780_000_000_000
const event = {
  id: 'evt_1',
  type: 'payment.failed',
  createdAt: NOW,
  data: {
    payment: {
      paymentId: 'ab'.repeat(32),
      venue: 'v',
      origin: 'cd'.repeat(32),
      amountMinor: 1250,
      currency: 'EUR',
      status: 'failed',
      declineCode: 'offline_sync_failure',
      syncDeclineCode: 'insufficient_funds',
      queuedAt: NOW - 1000,
      flags: [],
    },
  },
}
const body = JSON.stringify(event)
const code = (fn: () => unknown) => {
  try {
    fn()
  } catch (err) {
    if (err instanceof WebhookVerificationError) return err.code
    throw err
  }
  return 'ok'
}

describe('constructEvent (the merchant’s side of a webhook)', () => {
  it('verifies and parses a signed delivery, narrowed by type', () => {
    const e = constructEvent(body, sign(body, 'whsec_a', NOW), 'whsec_a', { now: NOW })
    expect(e.type).toBe('payment.failed')
    if (e.type === 'payment.failed') expect(e.data.payment.syncDeclineCode).toBe('insufficient_funds')
    // bytes as received are fine too
    expect(constructEvent(Buffer.from(body), sign(body, 'whsec_a', NOW), 'whsec_a', { now: NOW }).id).toBe(
      'evt_1',
    )
  })
  it('verifies what central itself signs', () => {
    expect(constructEvent(body, signWebhookPayload(body, 'whsec_c', NOW), 'whsec_c', { now: NOW }).id).toBe(
      'evt_1',
    )
  })
  it('accepts a header with one signature per secret during a rotation', () => {
    const header = `${sign(body, 'whsec_old', NOW)},v1=${sign(body, 'whsec_new', NOW).split('v1=')[1]}`
    expect(constructEvent(body, header, 'whsec_new', { now: NOW }).id).toBe('evt_1')
    expect(constructEvent(body, header, 'whsec_old', { now: NOW }).id).toBe('evt_1')
  })
  it('refuses, with a code, anything it cannot vouch for', () => {
    expect(code(() => constructEvent(body, undefined, 'whsec_a', { now: NOW }))).toBe('missing_header')
    expect(code(() => constructEvent(body, 't=abc,v1=zz', 'whsec_a', { now: NOW }))).toBe('malformed_header')
    expect(code(() => constructEvent(body, sign(body, 'whsec_b', NOW), 'whsec_a', { now: NOW }))).toBe(
      'signature_mismatch',
    )
    expect(code(() => constructEvent(`${body} `, sign(body, 'whsec_a', NOW), 'whsec_a', { now: NOW }))).toBe(
      'signature_mismatch',
    )
    expect(
      code(() => constructEvent(body, sign(body, 'whsec_a', NOW - 600_000), 'whsec_a', { now: NOW })),
    ).toBe('timestamp_out_of_tolerance')
    const notEvent = '{"hello":1}'
    expect(
      code(() => constructEvent(notEvent, sign(notEvent, 'whsec_a', NOW), 'whsec_a', { now: NOW })),
    ).toBe('invalid_payload')
  })
})
