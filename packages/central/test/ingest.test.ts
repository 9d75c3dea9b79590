import { request } from 'node:http'
import {
  type CentralService,
  createCentralService,
  createSimulatedIssuer,
  type EventResult,
  type PaymentStatusView,
} from '@nullmesh/central'
import { generateKeyPair, type Reservation, signEvent } from '@nullmesh/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { api, b64, TempDirs, VenueFixture } from './fixtures/helpers.js'

describe('ingest', () => {
  const temp = new TempDirs()
  let venue: VenueFixture
  let central: CentralService

  beforeEach(async () => {
    const dir = await temp.make()
    venue = await VenueFixture.create(dir, 'arena', 3)
    central = createCentralService({
      dataDir: `${dir}/central`,
      venues: [venue.bundle],
      issuer: createSimulatedIssuer({ seed: 1 }),
      settleIntervalMs: 0,
    })
    await central.start()
  })

  afterEach(async () => {
    await central.stop()
    await temp.cleanup()
  })

  it('stores a batch once: the same batch twice, and the same event relayed by several terminals', async () => {
    const a = venue.pay(venue.t(0))
    const b = venue.pay(venue.t(1))
    const batch = [a.reservation, a.commit, b.reservation, b.commit].map(b64)

    const first = await api(central.url, 'POST', '/v1/sync', { events: batch })
    expect(first.status).toBe(200)
    expect(first.body.results.map((r: EventResult) => r.status)).toEqual([
      'stored',
      'stored',
      'stored',
      'stored',
    ])
    expect(first.body.results[0].id).toBe(a.reservation.idHex)
    expect(first.body.payments.map((p: PaymentStatusView) => p.status).sort()).toEqual(['queued', 'queued'])

    const again = await api(central.url, 'POST', '/v1/sync', { events: batch })
    expect(again.body.results.map((r: EventResult) => r.status)).toEqual([
      'duplicate',
      'duplicate',
      'duplicate',
      'duplicate',
    ])
    expect(again.body.payments).toHaveLength(2)

    // five terminals carry the same gossiped event in their ledgers
    const relayed = Array.from({ length: 5 }, () => b64(a.commit))
    const r = await api(central.url, 'POST', '/v1/sync', { events: relayed })
    expect(r.body.results.every((x: EventResult) => x.status === 'duplicate')).toBe(true)
    // and inside one batch: stored once, then duplicate
    const c = venue.pay(venue.t(2))
    const within = await api(central.url, 'POST', '/v1/sync', {
      events: [b64(c.commit), b64(c.commit), b64(c.reservation)],
    })
    expect(within.body.results.map((x: EventResult) => x.status)).toEqual([
      'stored',
      'duplicate',
      'duplicate',
    ])

    expect(await central.store.countEvents()).toBe(6)
    const summary = await central.settleNow()
    expect(summary).toMatchObject({ completed: 3, failed: 0 })
    expect(await central.settleNow()).toMatchObject({ completed: 0, failed: 0 })
    expect((central.issuer as ReturnType<typeof createSimulatedIssuer>).decisions()).toHaveLength(3)
  })

  it('a batch cut mid-request changes nothing, and its retry stores everything once', async () => {
    const events = Array.from({ length: 40 }, () => venue.pay(venue.t(0))).flatMap((p) => [
      b64(p.reservation),
      b64(p.commit),
    ])
    const body = JSON.stringify({ events })
    const url = new URL(`${central.url}/v1/sync`)
    await new Promise<void>((resolve) => {
      const req = request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      })
      req.on('error', () => resolve())
      req.on('close', () => resolve())
      req.write(body.slice(0, Math.floor(body.length / 2)), () => {
        setTimeout(() => req.destroy(), 50)
      })
    })
    await new Promise((r) => setTimeout(r, 100))
    expect(await central.store.countEvents()).toBe(0)
    expect((await api(central.url, 'GET', '/v1/payments')).body.payments).toEqual([])

    const retry = await api(central.url, 'POST', '/v1/sync', { events })
    expect(retry.status).toBe(200)
    expect(retry.body.results.filter((r: EventResult) => r.status === 'stored')).toHaveLength(80)
    const replay = await api(central.url, 'POST', '/v1/sync', { events })
    expect(replay.body.results.filter((r: EventResult) => r.status === 'duplicate')).toHaveLength(80)
    expect(await central.store.countEvents()).toBe(80)
  })

  it('rejects forged signatures, non-enrolled origins, too few acks and unknown venues, with codes', async () => {
    const t0 = venue.t(0)
    // forged: a valid event with one signature byte flipped
    const good = venue.reserve(t0)
    const forged = new Uint8Array(good.bytes)
    forged[forged.length - 1] = forged[forged.length - 1]! ^ 0xff
    // non-enrolled: a stranger's key, signing as itself
    const stranger = generateKeyPair()
    const foreign = signEvent<Reservation>(stranger, { ...good.event, origin: stranger.publicKey })
    // too few acks: only the origin's own ack where the majority of 3 is 2
    const lonely = venue.reserve(t0)
    const weak = venue.commit(t0, lonely, [t0.key])
    // the same ack twice does not count twice
    const doubled = venue.commit(t0, lonely, [t0.key, t0.key])
    // an ack from a key that is not enrolled
    const strangerAck = venue.commit(t0, lonely, [t0.key, stranger])
    // unknown venue
    const other = signEvent<Reservation>(t0.key, { ...good.event, venue: 'elsewhere' })

    const res = await api(central.url, 'POST', '/v1/sync', {
      events: [
        forged,
        foreign.bytes,
        weak.bytes,
        doubled.bytes,
        strangerAck.bytes,
        other.bytes,
        new Uint8Array([1, 2, 3]),
      ].map((bytes) => Buffer.from(bytes).toString('base64url')),
    })
    expect(res.status).toBe(200)
    const codes = res.body.results.map((r: EventResult) => [r.status, r.code])
    expect(codes).toEqual([
      ['rejected', 'ERR_BAD_SIGNATURE'],
      ['rejected', 'ERR_NOT_ENROLLED'],
      ['rejected', 'ERR_QUORUM'],
      ['rejected', 'ERR_QUORUM'],
      ['rejected', 'ERR_QUORUM'],
      ['rejected', 'ERR_UNKNOWN_VENUE'],
      ['rejected', 'ERR_MALFORMED'],
    ])
    expect(res.body.results[2].message).toMatch(/1 distinct acks, needs 2/)
    expect(await central.store.countEvents()).toBe(0)

    // a different event at an (origin, seq) already stored is a conflict, not an overwrite
    await central.ingest([good.bytes])
    const twin = venue.reserve(t0, { seq: good.event.seq })
    const conflict = await central.ingest([twin.bytes])
    expect(conflict.results[0]).toMatchObject({ status: 'rejected', code: 'ERR_SEQ_CONFLICT' })
    expect(
      (await central.store.getEvent(Buffer.from(t0.key.publicKey).toString('hex'), good.event.seq))?.id,
    ).toBe(good.idHex)
  })

  it('isolated-mode commits are accepted and flagged; reservations without a commit or released are never settled', async () => {
    const t1 = venue.t(1)
    const iso = venue.reserve(t1)
    const isoCommit = venue.commit(t1, iso, [], 'isolated')
    const pending = venue.reserve(t1)
    const abandoned = venue.reserve(t1)
    const release = venue.release(t1, abandoned)
    // the release arrives before the reservation it releases
    const r = await central.ingest([isoCommit.bytes, release.bytes, pending.bytes, abandoned.bytes])
    expect(r.results.map((x: EventResult) => x.status)).toEqual(['stored', 'stored', 'stored', 'stored'])
    await central.settleNow()
    expect(await central.getPayment(iso.idHex)).toMatchObject({
      status: 'completed',
      mode: 'isolated',
      flags: ['isolated'],
    })
    expect(await central.getPayment(pending.idHex)).toMatchObject({ status: 'created' })
    expect(await central.getPayment(abandoned.idHex)).toMatchObject({ status: 'released' })
    // another terminal cannot release t1's reservation
    const hijack = venue.release(venue.t(2), pending)
    expect((await central.ingest([hijack.bytes])).results[0]).toMatchObject({ code: 'ERR_NOT_ORIGIN' })
  })

  it('answers bad HTTP input with 4xx { code, message } naming the field, recording nothing', async () => {
    const p = venue.pay(venue.t(0))
    const tooMany = Array.from({ length: 501 }, () => b64(p.reservation))
    const r1 = await api(central.url, 'POST', '/v1/sync', { events: tooMany })
    expect(r1.status).toBe(400)
    expect(r1.body.code).toBe('ERR_INVALID_REQUEST')
    expect(r1.body.message).toMatch(/events/)

    const r2 = await api(central.url, 'POST', '/v1/sync', { events: [b64(p.reservation), 'not base64url!'] })
    expect(r2.status).toBe(400)
    expect(r2.body.message).toMatch(/events\/1/)

    const r3 = await api(central.url, 'POST', '/v1/sync', { evnts: [] })
    expect(r3.status).toBe(400)
    expect(r3.body.message).toMatch(/events/)

    const r4 = await fetch(`${central.url}/v1/sync`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"events": [',
    })
    expect(r4.status).toBe(400)
    expect(await r4.json()).toHaveProperty('code')

    expect((await api(central.url, 'GET', '/v1/payments?limit=0')).status).toBe(400)
    expect((await api(central.url, 'GET', '/v1/payments?status=lost')).status).toBe(400)
    expect((await api(central.url, 'GET', `/v1/payments/${'0'.repeat(64)}`)).body.code).toBe('ERR_NOT_FOUND')
    expect((await api(central.url, 'GET', '/v1/venues/nowhere/summary')).status).toBe(404)
    expect(await central.store.countEvents()).toBe(0)
  })
})
