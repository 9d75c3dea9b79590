import { randomBytes } from 'node:crypto'
import {
  type CentralService,
  createCentralService,
  createSimulatedIssuer,
  type EventResult,
  type SimulatedIssuer,
} from '@nullmesh/central'
import { generateKeyPair, type Reservation, signEvent, toHex, verifyDocument } from '@nullmesh/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { api, b64, TempDirs, VenueFixture } from './fixtures/helpers.js'

const ADMIN = 'online-admin-token'

describe('online authorisation and venue data', () => {
  const temp = new TempDirs()
  let venue: VenueFixture
  let issuer: SimulatedIssuer
  let central: CentralService
  let dataDir: string
  const poor = randomBytes(16)

  beforeEach(async () => {
    const dir = await temp.make()
    venue = await VenueFixture.create(dir, 'club', 3, { blockedBins: ['411111'] })
    issuer = createSimulatedIssuer({ seed: 11, balances: { [toHex(poor)]: { EUR: 500 } } })
    dataDir = `${dir}/c`
    central = createCentralService({
      dataDir,
      venues: [venue.bundle],
      issuer,
      adminToken: ADMIN,
      settleIntervalMs: 0,
    })
    await central.start()
  })

  afterEach(async () => {
    await central.stop()
    await temp.cleanup()
  })

  it('authorises online once; the same payment later forwarded from a ledger is not charged again', async () => {
    const t0 = venue.t(0)
    const reservation = venue.reserve(t0, { amountMinor: 4200 })
    const r = await api(central.url, 'POST', '/v1/authorize', { reservation: b64(reservation) })
    expect(r.status).toBe(200)
    expect(r.body).toEqual({ paymentId: reservation.idHex, status: 'approved' })
    // a retried request answers the same, without another charge
    expect((await api(central.url, 'POST', '/v1/authorize', { reservation: b64(reservation) })).body).toEqual(
      r.body,
    )

    // the terminal's ledger holds the reservation and its online commit; several terminals forward it
    const commit = venue.commit(t0, reservation, [], 'online')
    const sync = await api(central.url, 'POST', '/v1/sync', {
      events: [b64(reservation), b64(commit), b64(commit)],
    })
    expect(sync.body.results.map((x: EventResult) => x.status)).toEqual(['duplicate', 'stored', 'duplicate'])
    expect(sync.body.payments).toEqual([
      expect.objectContaining({ paymentId: reservation.idHex, status: 'completed' }),
    ])
    await central.settleNow()

    expect(issuer.decisions()).toHaveLength(1)
    // central never asked the issuer again: not for the retried request, not for the forwarded ledger
    expect(issuer.calls).toBe(1)
    expect(issuer.balance(toHex(reservation.event.cardKey), 'EUR')).toBe(100_000_000 - 4200)
    expect(await central.getPayment(reservation.idHex)).toMatchObject({
      status: 'completed',
      mode: 'online',
      flags: [],
    })
  })

  it('declines online: insufficient funds, and a nullifier already committed offline', async () => {
    const broke = venue.reserve(venue.t(1), { cardKey: poor, amountMinor: 501 })
    expect(await central.authorize(broke.bytes)).toEqual({
      paymentId: broke.idHex,
      status: 'declined',
      declineCode: 'insufficient_funds',
    })
    const nullifier = randomBytes(32)
    const offline = venue.pay(venue.t(0), { nullifier })
    await central.ingest([offline.commit.bytes])
    const online = venue.reserve(venue.t(2), { nullifier })
    const r = await api(central.url, 'POST', '/v1/authorize', { reservation: b64(online) })
    expect(r.body).toEqual({
      paymentId: online.idHex,
      status: 'declined',
      declineCode: 'duplicate_nullifier',
    })
    // the offline one is still settled
    await central.settleNow()
    expect(await central.getPayment(offline.reservation.idHex)).toMatchObject({ status: 'completed' })
  })

  it('rejects an online reservation that is forged, from a non-enrolled key, or not a reservation', async () => {
    const good = venue.reserve(venue.t(0))
    const forged = Buffer.from(good.bytes)
    forged[forged.length - 1] = forged[forged.length - 1]! ^ 1
    const r1 = await api(central.url, 'POST', '/v1/authorize', { reservation: forged.toString('base64url') })
    expect(r1.status).toBe(422)
    expect(r1.body.code).toBe('ERR_BAD_SIGNATURE')
    const stranger = generateKeyPair()
    const foreign = signEvent<Reservation>(stranger, { ...good.event, origin: stranger.publicKey })
    expect((await api(central.url, 'POST', '/v1/authorize', { reservation: b64(foreign) })).body.code).toBe(
      'ERR_NOT_ENROLLED',
    )
    const commit = venue.commit(venue.t(0), good, [], 'isolated')
    expect((await api(central.url, 'POST', '/v1/authorize', { reservation: b64(commit) })).body.code).toBe(
      'ERR_WRONG_TYPE',
    )
    expect((await api(central.url, 'POST', '/v1/authorize', {})).body.message).toMatch(/reservation/)
    expect(await central.store.countEvents()).toBe(0)
  })

  it('serves the signed policy, the roster and a signed deny list that admins update', async () => {
    const policy = await api(central.url, 'GET', '/v1/venues/club/policy')
    expect(policy.status).toBe(200)
    expect(verifyDocument('nullmesh/policy/v1', policy.body, venue.bundle.operatorPublicKey).ok).toBe(true)

    const roster = (await api(central.url, 'GET', '/v1/venues/club/roster')).body
    expect(roster.terminals.map((t: { publicKey: string }) => t.publicKey)).toEqual(
      venue.bundle.roster.map((r) => r.publicKeyHex),
    )

    const d1 = (await api(central.url, 'GET', '/v1/venues/club/denylist')).body
    expect(verifyDocument('nullmesh/denylist/v1', d1, venue.bundle.operatorPublicKey).ok).toBe(true)
    expect(d1.payload).toEqual({ venueId: 'club', version: 1, blockedBins: ['411111'], denylistCardKeys: [] })

    const card = toHex(randomBytes(16))
    expect(
      (await api(central.url, 'POST', '/v1/venues/club/denylist', { denylistCardKeys: [card] })).status,
    ).toBe(401)
    const bad = await api(
      central.url,
      'POST',
      '/v1/venues/club/denylist',
      { denylistCardKeys: ['XYZ'] },
      ADMIN,
    )
    expect(bad.status).toBe(400)
    expect(bad.body.message).toMatch(/denylistCardKeys\/0/)
    const up = await api(central.url, 'POST', '/v1/venues/club/denylist', { denylistCardKeys: [card] }, ADMIN)
    expect(up.status).toBe(200)
    expect(up.body.payload).toEqual({
      venueId: 'club',
      version: 2,
      blockedBins: ['411111'],
      denylistCardKeys: [card],
    })

    // durable across a restart
    await central.stop()
    central = createCentralService({
      dataDir,
      venues: [venue.bundle],
      issuer,
      adminToken: ADMIN,
      settleIntervalMs: 0,
    })
    await central.start()
    const d2 = (await api(central.url, 'GET', '/v1/venues/club/denylist')).body
    expect(d2.payload.version).toBe(2)
    expect(verifyDocument('nullmesh/denylist/v1', d2, venue.bundle.operatorPublicKey).ok).toBe(true)
    expect((await api(central.url, 'GET', '/v1/venues/nope/denylist')).body.code).toBe('ERR_UNKNOWN_VENUE')
    expect((await api(central.url, 'GET', '/healthz')).body).toEqual({ ok: true })
    const openapi = (await api(central.url, 'GET', '/openapi.json')).body
    expect(
      openapi.paths['/v1/sync'].post.requestBody.content['application/json'].schema.properties.events
        .maxItems,
    ).toBe(500)
    expect(openapi.paths['/v1/venues/{id}/denylist'].post.security).toEqual([{ admin: [] }])
  })
})
