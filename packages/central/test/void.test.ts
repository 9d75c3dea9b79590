import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import {
  type CentralService,
  createCentralService,
  createSimulatedIssuer,
  type SimulatedIssuer,
} from '@nullmesh/central'
import { toHex } from '@nullmesh/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { api, b64, Receiver, TempDirs, VenueFixture, waitFor } from './fixtures/helpers.js'

const ADMIN = 'void-admin-token'
const FULL = 100_000_000 // the simulated issuer's default balance

/**
 * A terminal whose online authorisation went unanswered either commits the same reservation
 * offline or voids it at central before releasing it: the customer is never charged for a
 * payment the terminal declined.
 */
describe('voiding a reservation (POST /v1/authorize/void)', () => {
  const temp = new TempDirs()
  let venue: VenueFixture
  let issuer: SimulatedIssuer
  let central: CentralService
  let receiver: Receiver
  let journal: string

  beforeEach(async () => {
    const dir = await temp.make()
    venue = await VenueFixture.create(dir, 'pier', 3)
    journal = join(dir, 'issuer.jsonl')
    issuer = createSimulatedIssuer({ seed: 3, journalPath: journal })
    receiver = new Receiver()
    await receiver.listen()
    central = createCentralService({
      dataDir: `${dir}/c`,
      venues: [venue.bundle],
      issuer,
      adminToken: ADMIN,
      settleIntervalMs: 0,
    })
    await central.start()
    expect((await api(central.url, 'POST', '/v1/webhooks', { url: receiver.url }, ADMIN)).status).toBe(201)
  })

  afterEach(async () => {
    await central.stop()
    await receiver.close()
    await temp.cleanup()
  })

  const voidIt = (r: { bytes: Uint8Array }) =>
    api(central.url, 'POST', '/v1/authorize/void', { reservation: b64(r) })
  const authorize = (r: { bytes: Uint8Array }) =>
    api(central.url, 'POST', '/v1/authorize', { reservation: b64(r) })

  it('reverses an online authorisation; idempotent; the reservation stays declined, the card can tap again', async () => {
    const nullifier = randomBytes(32)
    const cardKey = randomBytes(16)
    const card = toHex(cardKey)
    const reservation = venue.reserve(venue.t(0), { nullifier, cardKey, amountMinor: 4200 })
    expect((await authorize(reservation)).body).toMatchObject({ status: 'approved' })
    expect(issuer.balance(card, 'EUR')).toBe(FULL - 4200)

    // the terminal never saw that answer and declined the payment: it voids before releasing
    const v = await voidIt(reservation)
    expect([v.status, v.body]).toEqual([200, { paymentId: reservation.idHex, status: 'voided' }])
    expect(issuer.balance(card, 'EUR')).toBe(FULL)
    expect(await central.getPayment(reservation.idHex)).toMatchObject({
      status: 'voided',
      declineCode: 'voided',
      mode: 'online',
    })
    // a retried void answers the same and refunds nothing more
    expect((await voidIt(reservation)).body).toEqual(v.body)
    expect(issuer.balance(card, 'EUR')).toBe(FULL)
    expect(issuer.reversals()).toEqual([reservation.idHex])
    // a late (retried) authorisation of the same reservation is declined, never charged
    expect((await authorize(reservation)).body).toEqual({
      paymentId: reservation.idHex,
      status: 'declined',
      declineCode: 'voided',
    })
    expect(issuer.balance(card, 'EUR')).toBe(FULL)
    // the customer taps again: a new reservation of the same nullifier authorises
    const again = venue.reserve(venue.t(0), { nullifier, cardKey, amountMinor: 4200 })
    expect((await authorize(again)).body).toEqual({ paymentId: again.idHex, status: 'approved' })
    expect(issuer.balance(card, 'EUR')).toBe(FULL - 4200)

    // merchants saw it charged, then failed with declineCode 'voided'
    await central.flushWebhooks()
    const hooks = await waitFor('webhooks', () => {
      const mine = receiver.received.filter((h) => h.body.data.payment.paymentId === reservation.idHex)
      return mine.length >= 3 && mine
    })
    expect(hooks.map((h) => h.body.type)).toEqual([
      'payment.processing',
      'payment.completed',
      'payment.failed',
    ])
    expect(hooks[2]?.body.data.payment).toMatchObject({ status: 'voided', declineCode: 'voided' })

    // the reversal is journaled like the charges: a restarted issuer knows the balance
    const replayed = createSimulatedIssuer({ seed: 3, journalPath: journal })
    expect(await replayed.authorize({ ...request(reservation.idHex, card), amountMinor: 4200 }, {})).toEqual({
      approved: false,
      code: 'reversed',
    })
    expect(replayed.balance(card, 'EUR')).toBe(FULL - 4200)
  })

  it('voids a reservation central never saw: a late authorisation declines, a late Commit fails', async () => {
    const t0 = venue.t(0)
    const reservation = venue.reserve(t0)
    expect((await voidIt(reservation)).body).toEqual({ paymentId: reservation.idHex, status: 'voided' })
    expect(await central.getPayment(reservation.idHex)).toMatchObject({ status: 'voided' })
    expect((await authorize(reservation)).body).toEqual({
      paymentId: reservation.idHex,
      status: 'declined',
      declineCode: 'voided',
    })
    // a Commit of it anyway (a terminal must not, but one that did is never settled)
    const commit = venue.commit(t0, reservation, [t0.key, venue.t(1).key])
    const sync = await api(central.url, 'POST', '/v1/sync', { events: [b64(commit)] })
    expect(sync.body.results[0].status).toBe('stored')
    expect(sync.body.payments).toEqual([
      expect.objectContaining({
        paymentId: reservation.idHex,
        status: 'failed',
        declineCode: 'offline_sync_failure',
        syncDeclineCode: 'voided',
      }),
    ])
    await central.settleNow()
    expect(issuer.calls).toBe(0)
    // never announced before: silent when voided, then failed once the Commit arrived
    await central.flushWebhooks()
    const hooks = await waitFor('webhook', () => receiver.received.length > 0 && receiver.received)
    expect(hooks.map((h) => [h.body.type, h.body.data.payment.syncDeclineCode])).toEqual([
      ['payment.failed', 'voided'],
    ])

    // a reservation seen (relayed by a peer) without a Commit is voided the same way
    const seen = venue.reserve(t0)
    await central.ingest([seen.bytes])
    expect((await voidIt(seen)).body.status).toBe('voided')
    expect(await central.getPayment(seen.idHex)).toMatchObject({ status: 'voided' })
  })

  it('the same reservation committed offline after an unanswered authorisation is one payment; a void then changes nothing', async () => {
    const t0 = venue.t(0)
    // authorised online, but the terminal timed out and approved it offline (quorum Commit)
    const online = venue.reserve(t0, { amountMinor: 700 })
    expect((await authorize(online)).body.status).toBe('approved')
    const onlineCommit = venue.commit(t0, online, [t0.key, venue.t(1).key])
    await central.ingest([onlineCommit.bytes])
    await central.settleNow()
    expect(issuer.decisions().map((d) => d.paymentId)).toEqual([online.idHex])
    expect(await central.getPayment(online.idHex)).toMatchObject({ status: 'completed', mode: 'online' })
    expect((await voidIt(online)).body).toEqual({ paymentId: online.idHex, status: 'committed' })

    // approved offline only: the Commit was synced before the void arrived
    const offline = venue.pay(venue.t(1))
    await central.ingest([offline.commit.bytes])
    expect((await voidIt(offline.reservation)).body).toEqual({
      paymentId: offline.reservation.idHex,
      status: 'committed',
    })
    expect(await central.getPayment(offline.reservation.idHex)).toMatchObject({ status: 'queued' })
    await central.settleNow()
    expect(await central.getPayment(offline.reservation.idHex)).toMatchObject({ status: 'completed' })
    expect(await central.getPayment(online.idHex)).toMatchObject({ status: 'completed' })
    expect(issuer.reversals()).toEqual([])
  })

  it('a void racing the online authorisation it voids still leaves the card uncharged', async () => {
    const dir = await temp.make()
    const slow = createSimulatedIssuer({ seed: 3, latencyMs: 150 })
    const c = createCentralService({
      dataDir: dir,
      venues: [venue.bundle],
      issuer: slow,
      settleIntervalMs: 0,
    })
    await c.start()
    try {
      const cardKey = randomBytes(16)
      const reservation = venue.reserve(venue.t(2), { cardKey, amountMinor: 990 })
      // the terminal's request is still at the issuer when it gives up and voids
      const late = c.authorize(reservation.bytes)
      await waitFor(
        'processing',
        async () => (await c.getPayment(reservation.idHex))?.status === 'processing',
      )
      expect(await c.void(reservation.bytes)).toEqual({ paymentId: reservation.idHex, status: 'voided' })
      await late
      expect(slow.balance(toHex(cardKey), 'EUR')).toBe(FULL)
      expect(await c.getPayment(reservation.idHex)).toMatchObject({ status: 'voided' })
      await c.settleNow()
      expect(await c.getPayment(reservation.idHex)).toMatchObject({ status: 'voided' })
    } finally {
      await c.stop()
    }
  })

  it('answers bad input with 4xx { code }, recording nothing; lists and summaries know voided', async () => {
    const good = venue.reserve(venue.t(0))
    const forged = Buffer.from(good.bytes)
    forged[forged.length - 1] = forged[forged.length - 1]! ^ 1
    const r1 = await api(central.url, 'POST', '/v1/authorize/void', {
      reservation: forged.toString('base64url'),
    })
    expect([r1.status, r1.body.code]).toEqual([422, 'ERR_BAD_SIGNATURE'])
    const commit = venue.commit(venue.t(0), good, [], 'isolated')
    const r2 = await voidIt(commit)
    expect([r2.status, r2.body.code]).toEqual([422, 'ERR_WRONG_TYPE'])
    const r3 = await api(central.url, 'POST', '/v1/authorize/void', {})
    expect([r3.status, r3.body.code]).toEqual([400, 'ERR_INVALID_REQUEST'])
    expect(await central.store.countEvents()).toBe(0)

    await voidIt(good)
    const list = await api(central.url, 'GET', '/v1/payments?status=voided')
    expect(list.body.payments.map((p: { paymentId: string }) => p.paymentId)).toEqual([good.idHex])
    expect((await central.summary('pier')).byStatus.voided).toBe(1)
    const openapi = (await api(central.url, 'GET', '/openapi.json')).body
    expect(openapi.paths['/v1/authorize/void'].post.requestBody).toBeDefined()
    expect(
      openapi.paths['/v1/payments'].get.parameters.find((p: { name: string }) => p.name === 'status').schema
        .anyOf,
    ).toContainEqual(expect.objectContaining({ const: 'voided' }))
  })
})

function request(paymentId: string, cardKey: string) {
  return { paymentId, venue: 'pier', cardKey, nullifier: '00', amountMinor: 0, currency: 'EUR' }
}
