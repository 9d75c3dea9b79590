import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type CentralService, createCentralService, createSimulatedIssuer } from '@nullmesh/central'
import { generateKeyPair, keyPairFromFile, signRevocation, toHex } from '@nullmesh/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { post, TempDirs, VenueFixture } from './fixtures/helpers.js'

// Issue 17, item 2 at central: an operator-signed revocation, published over HTTP. What the revoked
// terminal signed at or after the effective time is flagged; its acks so signed certify nothing;
// what it signed before keeps its meaning.
describe('[revocation] central', () => {
  const temp = new TempDirs()
  let venue: VenueFixture
  let central: CentralService
  let clock = Date.now()

  beforeEach(async () => {
    const dir = await temp.make()
    clock = Date.now()
    venue = await VenueFixture.create(dir, 'arena', 3)
    central = createCentralService({
      dataDir: `${dir}/central`,
      venues: [venue.bundle],
      issuer: createSimulatedIssuer({ seed: 1 }),
      settleIntervalMs: 0,
      now: () => clock,
    })
    await central.start()
  })

  afterEach(async () => {
    await central.stop()
    await temp.cleanup()
  })

  const operator = async () =>
    keyPairFromFile(JSON.parse(await readFile(join(venue.bundle.dir, 'operator.key.json'), 'utf8')))

  it('flags what the revoked terminal signed after the effective time; its later acks complete no quorum', async () => {
    const [t0, t1, t2] = [venue.t(0), venue.t(1), venue.t(2)]
    const effectiveAt = clock - 5_000
    // merged before the revocation is published: one signed before the effective time, one after
    const early = venue.pay(t1, { ts: clock - 10_000 })
    const lateMerged = venue.pay(t1, { ts: clock - 1_000 })
    await central.ingest([early.commit.bytes, lateMerged.commit.bytes])

    const doc = signRevocation(await operator(), {
      venueId: venue.id,
      terminal: toHex(t1.key.publicKey),
      effectiveAt,
      reason: 'stolen from the bar',
      issuedAt: clock,
    })
    const published = await post(`${central.url}/v1/venues/${venue.id}/revocations`, doc)
    expect(published.status).toBe(200)
    expect(published.json).toMatchObject({ effectiveAt, changed: true, flagged: 1 })
    expect((await central.getPayment(early.reservation.idHex))?.flags).not.toContain('terminal_revoked')
    expect((await central.getPayment(lateMerged.reservation.idHex))?.flags).toContain('terminal_revoked')
    // terminals get it with the deny list
    const listed = await (await fetch(`${central.url}/v1/venues/${venue.id}/revocations`)).json()
    expect(listed).toEqual({ venueId: venue.id, revocations: [doc] })

    // after the publication: the revoked terminal's own commit is a violation of that terminal
    const own = venue.pay(t1, { ts: clock })
    // another terminal's commit whose second ack is the revoked terminal's, signed after: no quorum
    const r = venue.reserve(t0, { ts: clock })
    const viaRevoked = venue.commit(t0, r, [t0.key, t1.key])
    // the same with an ack the revoked terminal gave before the effective time: it counts
    const r2 = venue.reserve(t0, { ts: clock - 6_000 })
    const ackedBefore = venue.commit(t0, r2, [t0.key, t1.key])
    // and a commit of the revoked terminal signed before the effective time, arriving late
    const lateArrival = venue.pay(t1, { ts: clock - 7_000 })
    const res = await central.ingest([
      own.commit.bytes,
      viaRevoked.bytes,
      ackedBefore.bytes,
      lateArrival.commit.bytes,
    ])
    expect(res.results.map((x) => [x.status, x.code])).toEqual([
      ['stored', undefined],
      ['rejected', 'ERR_QUORUM'],
      ['stored', undefined],
      ['stored', undefined],
    ])
    const ownView = await central.getPayment(own.reservation.idHex)
    expect(ownView).toMatchObject({ status: 'failed', syncDeclineCode: 'policy_violation' })
    expect(ownView?.flags).toContain('terminal_revoked')
    expect((await central.getPayment(ackedBefore.event.reservation.idHex))?.status).toBe('queued')
    expect((await central.getPayment(lateArrival.reservation.idHex))?.status).toBe('queued')
    const summary = await central.summary(venue.id)
    expect(summary.policyViolations).toEqual({ [toHex(t1.key.publicKey)]: 1 })
    // an honest terminal is untouched
    const honest = venue.pay(t2, { ts: clock })
    await central.ingest([honest.commit.bytes])
    expect((await central.getPayment(honest.reservation.idHex))?.status).toBe('queued')
  })

  it('a later revocation of the same terminal does not move its effective time; an earlier one does', async () => {
    const op = await operator()
    const terminal = toHex(venue.t(1).key.publicKey)
    const at = (effectiveAt: number) =>
      signRevocation(op, { venueId: venue.id, terminal, effectiveAt, reason: '', issuedAt: clock })
    const url = `${central.url}/v1/venues/${venue.id}/revocations`
    expect((await post(url, at(clock))).json).toMatchObject({ effectiveAt: clock, changed: true })
    expect((await post(url, at(clock + 1000))).json).toMatchObject({ effectiveAt: clock, changed: false })
    expect((await post(url, at(clock - 1000))).json).toMatchObject({
      effectiveAt: clock - 1000,
      changed: true,
    })
    const listed = (await (await fetch(url)).json()) as {
      revocations: { payload: { effectiveAt: number } }[]
    }
    expect(listed.revocations.map((d) => d.payload.effectiveAt)).toEqual([clock - 1000])
  })

  it('bad input: 4xx with { code, message }, nothing recorded', async () => {
    const url = `${central.url}/v1/venues/${venue.id}/revocations`
    const op = await operator()
    const terminal = toHex(venue.t(1).key.publicKey)
    const payload = { venueId: venue.id, terminal, effectiveAt: clock, reason: 'x', issuedAt: clock }
    const cases: [unknown, number, string][] = [
      ['{not json', 400, ''],
      [{ events: [] }, 400, ''],
      // signed by someone else than the venue's operator
      [signRevocation(generateKeyPair(), payload), 422, 'ERR_BAD_SIGNATURE'],
      // a signature that does not match the payload
      [{ ...signRevocation(op, payload), payload: { ...payload, effectiveAt: 1 } }, 422, 'ERR_BAD_SIGNATURE'],
      // not in the roster
      [
        signRevocation(op, { ...payload, terminal: toHex(generateKeyPair().publicKey) }),
        400,
        'ERR_INVALID_REQUEST',
      ],
      // another venue's revocation
      [signRevocation(op, { ...payload, venueId: 'elsewhere' }), 400, 'ERR_INVALID_REQUEST'],
      // extra fields in the payload
      [signRevocation(op, payload) && { ...signRevocation(op, payload), extra: 1 }, 400, ''],
    ]
    for (const [body, status, code] of cases) {
      const r = await post(url, body)
      expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(status)
      expect(typeof r.json.code).toBe('string')
      expect(typeof r.json.message).toBe('string')
      if (code !== '') expect(r.json.code).toBe(code)
    }
    expect(
      (await post(`${central.url}/v1/venues/nowhere/revocations`, signRevocation(op, payload))).status,
    ).toBe(404)
    expect(await (await fetch(url)).json()).toEqual({ venueId: venue.id, revocations: [] })
  })
})
