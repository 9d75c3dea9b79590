import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type CentralService, createCentralService, createSimulatedIssuer } from '@nullmesh/central'
import {
  generateKeyPair,
  keyPairFromFile,
  signCheckpoint,
  signRevocation,
  toHex,
  verifyAbandonment,
} from '@nullmesh/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { post, TempDirs, VenueFixture } from './fixtures/helpers.js'

// Issue 17, item 5 at central: a reservation is abandoned only once every enrolled, non-revoked
// terminal's signed checkpoint is past it (time + tap budget + clock skew + margin); the list is
// served signed with the operator key; a Commit arriving afterwards is failed, never settled.
describe('[abandon] central', () => {
  const temp = new TempDirs()
  let venue: VenueFixture
  let central: CentralService
  let issuer: ReturnType<typeof createSimulatedIssuer>
  let clock = Date.now()

  beforeEach(async () => {
    const dir = await temp.make()
    clock = Date.now()
    venue = await VenueFixture.create(dir, 'arena', 3)
    // two minutes after the enrollment: reservations a minute old were signed while enrolled
    clock = Date.now() + 120_000
    issuer = createSimulatedIssuer({ seed: 1 })
    central = createCentralService({
      dataDir: `${dir}/central`,
      venues: [venue.bundle],
      issuer,
      settleIntervalMs: 0,
      abandonMarginMs: 0,
      now: () => clock,
    })
    await central.start()
  })

  afterEach(async () => {
    await central.stop()
    await temp.cleanup()
  })

  const checkpoint = (i: number, at: number) =>
    post(`${central.url}/v1/sync/checkpoint`, signCheckpoint(venue.t(i).key, venue.id, at))

  it('abandons only what every live ledger synced past; a late Commit of it is failed, never settled', async () => {
    const [t0, t1] = [venue.t(0), venue.t(1)]
    const old = venue.reserve(t0, { ts: clock - 60_000 })
    const committedLater = venue.reserve(t1, { ts: clock - 60_000 })
    const recent = venue.reserve(t1, { ts: clock - 100 })
    await central.ingest([old.bytes, committedLater.bytes, recent.bytes])
    // two of three terminals synced past: T0 (alive, not revoked) might hold a Commit of `old`
    expect((await checkpoint(1, clock)).json).toMatchObject({ abandoned: 0 })
    expect((await checkpoint(2, clock)).json).toMatchObject({ abandoned: 0 })
    expect((await central.getPayment(old.idHex))?.status).toBe('created')
    // a Commit merged first wins
    await central.ingest([venue.commit(t1, committedLater, [t1.key, venue.t(2).key]).bytes])
    expect((await checkpoint(0, clock)).json).toMatchObject({ abandoned: 1 })
    expect((await central.getPayment(old.idHex))?.status).toBe('abandoned')
    expect((await central.getPayment(committedLater.idHex))?.status).toBe('queued')
    // not yet past the tap budget and clock skew
    expect((await central.getPayment(recent.idHex))?.status).toBe('created')

    // served signed with the operator key
    const listed = await (await fetch(`${central.url}/v1/venues/${venue.id}/abandoned`)).json()
    const verified = verifyAbandonment(listed, {
      operatorPublicKey: venue.bundle.operatorPublicKey,
      venueId: venue.id,
    })
    expect(verified.ok && verified.value.payload.reservations).toEqual([old.idHex])

    // its terminal comes back with a Commit of it: failed, never settled; a late online authorisation declined
    const late = venue.commit(t0, old, [t0.key, t1.key])
    expect((await central.ingest([late.bytes])).results[0]?.status).toBe('stored')
    expect(await central.getPayment(old.idHex)).toMatchObject({
      status: 'failed',
      syncDeclineCode: 'abandoned',
    })
    await central.settleNow()
    expect(issuer.decisions().map((d) => d.paymentId)).toEqual([committedLater.idHex])
  })

  it('a revoked terminal holds nothing back: its reservations are abandoned once the others synced past', async () => {
    const t0 = venue.t(0)
    const r = venue.reserve(t0, { ts: clock - 60_000 })
    await central.ingest([r.bytes])
    await checkpoint(1, clock)
    await checkpoint(2, clock)
    expect((await central.getPayment(r.idHex))?.status).toBe('created')
    const operator = keyPairFromFile(
      JSON.parse(await readFile(join(venue.bundle.dir, 'operator.key.json'), 'utf8')),
    )
    const doc = signRevocation(operator, {
      venueId: venue.id,
      terminal: toHex(t0.key.publicKey),
      effectiveAt: clock,
      reason: 'dead',
      issuedAt: clock,
    })
    expect((await post(`${central.url}/v1/venues/${venue.id}/revocations`, doc)).status).toBe(200)
    expect((await central.getPayment(r.idHex))?.status).toBe('abandoned')
  })

  it('bad checkpoints: 4xx with { code, message }, nothing recorded', async () => {
    const r = venue.reserve(venue.t(0), { ts: clock - 60_000 })
    await central.ingest([r.bytes])
    const good = signCheckpoint(venue.t(0).key, venue.id, clock)
    const cases: [unknown, number, string][] = [
      ['{nope', 400, ''],
      [{ payload: {}, signer: 'x', signature: 'y' }, 400, ''],
      // signed by a key not enrolled in the venue
      [signCheckpoint(generateKeyPair(), venue.id, clock), 422, 'ERR_NOT_ENROLLED'],
      // the payload changed after signing
      [{ ...good, payload: { ...good.payload, at: clock + 1 } }, 422, 'ERR_BAD_SIGNATURE'],
      // dated ahead of central's clock
      [signCheckpoint(venue.t(0).key, venue.id, clock + 3_600_000), 422, 'ERR_FUTURE_TS'],
      [signCheckpoint(venue.t(0).key, 'elsewhere', clock), 404, 'ERR_UNKNOWN_VENUE'],
    ]
    for (const [body, status, code] of cases) {
      const res = await post(`${central.url}/v1/sync/checkpoint`, body)
      expect(res.status, JSON.stringify(body).slice(0, 60)).toBe(status)
      expect(typeof res.json.code).toBe('string')
      expect(typeof res.json.message).toBe('string')
      if (code !== '') expect(res.json.code).toBe(code)
    }
    expect(await central.store.listCheckpoints(venue.id)).toEqual([])
    expect((await central.getPayment(r.idHex))?.status).toBe('created')
  })
})
