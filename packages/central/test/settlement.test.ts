import { randomBytes } from 'node:crypto'
import {
  type AuthorizeRequest,
  type AuthorizeResult,
  type CentralService,
  createCentralService,
  createSimulatedIssuer,
  type IssuerAdapter,
  verifyWebhookSignature,
} from '@nullmesh/central'
import { toHex } from '@nullmesh/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { api, Receiver, TempDirs, VenueFixture, waitFor } from './fixtures/helpers.js'

const ADMIN = 'admin-token-for-tests'

describe('dedup and settlement', () => {
  const temp = new TempDirs()
  const services: CentralService[] = []
  const receivers: Receiver[] = []

  afterEach(async () => {
    await Promise.all(services.splice(0).map((s) => s.stop()))
    await Promise.all(receivers.splice(0).map((r) => r.close()))
    await temp.cleanup()
  })

  it('a nullifier committed in two venues settles once; the second is a partition loss', async () => {
    const dir = await temp.make()
    const north = await VenueFixture.create(dir, 'north', 3)
    const south = await VenueFixture.create(dir, 'south', 2)
    const central = createCentralService({
      dataDir: `${dir}/c`,
      venues: [north.bundle, south.bundle],
      settleIntervalMs: 0,
    })
    services.push(central)
    await central.start()

    const nullifier = randomBytes(32)
    const first = north.pay(north.t(0), { nullifier, amountMinor: 900 })
    const second = south.pay(south.t(1), { nullifier, amountMinor: 700 }, 2)
    const other = south.pay(south.t(0), { amountMinor: 300 }, 2)

    await central.ingest([first.reservation.bytes, first.commit.bytes])
    await central.settleNow()
    // much later, the other venue's ledger arrives with the same card use
    const r = await central.ingest([second.commit.bytes, other.commit.bytes])
    const dup = r.payments.find((p) => p.paymentId === second.reservation.idHex)
    expect(dup).toMatchObject({
      status: 'failed',
      declineCode: 'offline_sync_failure',
      syncDeclineCode: 'duplicate_nullifier',
    })
    await central.settleNow()

    expect(await central.getPayment(first.reservation.idHex)).toMatchObject({ status: 'completed' })
    expect(await central.getPayment(second.reservation.idHex)).toMatchObject({ status: 'failed' })
    expect(await central.getPayment(other.reservation.idHex)).toMatchObject({ status: 'completed' })

    const summary = (await api(central.url, 'GET', '/v1/venues/south/summary')).body
    expect(summary).toMatchObject({
      venueId: 'south',
      payments: 2,
      settled: { completed: 1, failed: 1 },
      failedByCode: { duplicate_nullifier: 1 },
      partitionLosses: 1,
      partitionLossMinor: { EUR: 700 },
      offlineExposureMinor: {},
    })
    expect((await api(central.url, 'GET', '/v1/venues/north/summary')).body.partitionLosses).toBe(0)
    // a replay of the losing ledger changes nothing
    await central.ingest([second.reservation.bytes, second.commit.bytes])
    expect((await api(central.url, 'GET', '/v1/venues/south/summary')).body.partitionLosses).toBe(1)
  })

  it('voids payments queued longer than the policy queue duration; issuer declines fail with their codes and webhooks', async () => {
    const dir = await temp.make()
    // enrolled ten minutes ago: certificates are judged at the (back-dated) payments' times
    const venue = await VenueFixture.create(
      dir,
      'fair',
      3,
      { queueDurationMs: 60_000 },
      { now: Date.now() - 10 * 60_000 },
    )
    const stolen = randomBytes(16)
    const poor = randomBytes(16)
    const issuer = createSimulatedIssuer({
      seed: 7,
      lostOrStolen: [toHex(stolen)],
      balances: { [toHex(poor)]: { EUR: 1000 } },
    })
    const receiver = new Receiver()
    receivers.push(receiver)
    await receiver.listen()
    const central = createCentralService({
      dataDir: `${dir}/c`,
      venues: [venue.bundle],
      issuer,
      adminToken: ADMIN,
      settleIntervalMs: 0,
    })
    services.push(central)
    await central.start()
    const hook = await api(central.url, 'POST', '/v1/webhooks', { url: receiver.url }, ADMIN)
    expect(hook.status).toBe(201)
    const secret: string = hook.body.secret

    const old = venue.pay(venue.t(0), { ts: Date.now() - 61_000 })
    const fresh = venue.pay(venue.t(0), { ts: Date.now() - 59_000 })
    const lost = venue.pay(venue.t(1), { cardKey: stolen })
    const broke = venue.pay(venue.t(2), { cardKey: poor, amountMinor: 1001 })
    const fine = venue.pay(venue.t(2), { cardKey: poor, amountMinor: 1000 })
    const broke2 = venue.pay(venue.t(2), { cardKey: poor, amountMinor: 1 })
    await central.ingest([old, fresh, lost, broke].flatMap((p) => [p.reservation.bytes, p.commit.bytes]))
    await central.settleNow()
    // balances are tracked: after 1000 is charged, even 1 more minor unit is declined
    await central.ingest([fine.commit.bytes])
    await central.settleNow()
    await central.ingest([broke2.commit.bytes])
    await central.settleNow()

    const status = async (p: typeof old) => central.getPayment(p.reservation.idHex)
    expect(await status(old)).toMatchObject({
      status: 'failed',
      declineCode: 'offline_sync_failure',
      syncDeclineCode: 'expired',
    })
    expect(await status(fresh)).toMatchObject({ status: 'completed' })
    expect(await status(lost)).toMatchObject({ status: 'failed', syncDeclineCode: 'lost_or_stolen' })
    expect(await status(broke)).toMatchObject({ status: 'failed', syncDeclineCode: 'insufficient_funds' })
    expect(await status(fine)).toMatchObject({ status: 'completed' })
    expect(await status(broke2)).toMatchObject({ status: 'failed', syncDeclineCode: 'insufficient_funds' })
    expect(issuer.balance(toHex(poor), 'EUR')).toBe(0)
    // an expired payment never reaches the issuer
    expect(issuer.decisions().map((d) => d.paymentId)).not.toContain(old.reservation.idHex)

    // 6 queued + 5 processing + 6 final
    await waitFor('all webhooks', () => receiver.received.length >= 17 || undefined)
    for (const h of receiver.received) {
      expect(verifyWebhookSignature(h.raw, h.headers['nullmesh-signature'] as string, secret)).toBe(true)
    }
    const failed = receiver.received
      .filter((h) => h.body.type === 'payment.failed')
      .map((h) => h.body.data.payment)
    expect(failed.map((p) => p.syncDeclineCode).sort()).toEqual([
      'expired',
      'insufficient_funds',
      'insufficient_funds',
      'lost_or_stolen',
    ])
    for (const p of failed) expect(p.declineCode).toBe('offline_sync_failure')
    const lostHook = failed.find((p) => p.paymentId === lost.reservation.idHex)
    expect(lostHook).toMatchObject({
      venue: 'fair',
      origin: toHex(venue.t(1).key.publicKey),
      amountMinor: 1250,
      currency: 'EUR',
      status: 'failed',
      queuedAt: lost.reservation.event.ts,
    })
    expect(typeof lostHook.completedAt).toBe('number')
    const types = receiver.received
      .filter((h) => h.body.data.payment.paymentId === fresh.reservation.idHex)
      .map((h) => h.body.type)
    expect(types).toEqual(['payment.queued', 'payment.processing', 'payment.completed'])

    const summary = await central.summary('fair')
    expect(summary.failedByCode).toEqual({ expired: 1, lost_or_stolen: 1, insufficient_funds: 2 })
    expect(summary.offlineLossMinor).toEqual({ EUR: 1250 * 2 + 1001 + 1 })
  })

  it('survives a restart mid-settlement: processing payments are re-driven and charged once', async () => {
    const dir = await temp.make()
    const venue = await VenueFixture.create(dir, 'dock', 3)
    const real = createSimulatedIssuer({ seed: 3, journalPath: `${dir}/issuer.jsonl` })
    // an issuer that charges, then "loses the connection" before answering
    const flaky: IssuerAdapter = {
      async authorize(req: AuthorizeRequest, opts): Promise<AuthorizeResult> {
        await real.authorize(req, opts)
        throw new Error('connection reset')
      },
    }
    const first = createCentralService({
      dataDir: `${dir}/c`,
      venues: [venue.bundle],
      issuer: flaky,
      settleIntervalMs: 0,
    })
    services.push(first)
    await first.start()
    const pays = Array.from({ length: 5 }, (_, i) => venue.pay(venue.t(i % 3)))
    await first.ingest(pays.flatMap((p) => [p.reservation.bytes, p.commit.bytes]))
    const s = await first.settleNow()
    expect(s).toMatchObject({ completed: 0, failed: 0, pending: 5 })
    expect(await first.getPayment(pays[0]!.reservation.idHex)).toMatchObject({ status: 'processing' })
    await first.stop()
    await first.stop() // idempotent

    const second = createCentralService({
      dataDir: `${dir}/c`,
      venues: [venue.bundle],
      issuer: real,
      settleIntervalMs: 0,
    })
    services.push(second)
    await second.start()
    await second.settleNow()
    for (const p of pays)
      expect(await second.getPayment(p.reservation.idHex)).toMatchObject({ status: 'completed' })
    expect(real.decisions()).toHaveLength(5)
    expect(real.calls).toBe(10)
  })
})
