import {
  type CentralService,
  createCentralService,
  createSimulatedIssuer,
  type EventResult,
} from '@nullmesh/central'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { api, b64, reissueCertificate, TempDirs, VenueFixture } from './fixtures/helpers.js'

const HOUR = 60 * 60_000
const SKEW = 30_000 // the default policy's maxClockSkewMs

/**
 * Certificates are judged when a signature was made, not when central sees it: terminals sync
 * hours (or days) after approving offline, and a certificate may expire in between.
 */
describe('enrollment judged at signing time', () => {
  const temp = new TempDirs()
  let venue: VenueFixture
  let central: CentralService
  /** the venue was set up three hours ago; T3's certificate expired one hour after that */
  let t0: number
  let expiry: number

  beforeEach(async () => {
    const dir = await temp.make()
    t0 = Date.now() - 3 * HOUR
    expiry = t0 + HOUR
    venue = await VenueFixture.create(dir, 'hall', 3, undefined, { now: t0 })
    const bundle = await reissueCertificate(venue.bundle, 'T3', { notBefore: t0 - SKEW, notAfter: expiry })
    central = createCentralService({
      dataDir: `${dir}/central`,
      venues: [bundle],
      issuer: createSimulatedIssuer({ seed: 5 }),
      settleIntervalMs: 0,
    })
    await central.start()
  })

  afterEach(async () => {
    await central.stop()
    await temp.cleanup()
  })

  const sync = async (events: { bytes: Uint8Array }[]): Promise<EventResult[]> => {
    const r = await api(central.url, 'POST', '/v1/sync', { events: events.map(b64) })
    expect(r.status).toBe(200)
    return r.body.results
  }
  const codes = (results: EventResult[]): unknown[] => results.map((r) => r.code ?? r.status)

  it("settles commits whose acker's or origin's certificate expired between the signature and the sync", async () => {
    const [a, b, c] = [venue.t(0), venue.t(1), venue.t(2)]
    const at = t0 + HOUR / 2 // half an hour before T3's certificate expired
    // acked by T3 while it was enrolled
    const acked = venue.reserve(a, { ts: at })
    const ackedCommit = venue.commit(a, acked, [a.key, c.key], 'quorum', { ts: at + 200, ackTs: at + 100 })
    // approved by T3 itself while it was enrolled
    const own = venue.reserve(c, { ts: at })
    const ownCommit = venue.commit(c, own, [c.key, b.key], 'quorum', { ts: at + 200, ackTs: at + 100 })

    expect(codes(await sync([acked, ackedCommit, own, ownCommit]))).toEqual([
      'stored',
      'stored',
      'stored',
      'stored',
    ])
    expect((await central.getPayment(acked.idHex))?.status).toBe('queued')
    expect((await central.getPayment(own.idHex))?.status).toBe('queued')
    await central.settleNow()
    expect((await central.getPayment(acked.idHex))?.status).toBe('completed')
    expect((await central.getPayment(own.idHex))?.status).toBe('completed')
  })

  it('rejects what was signed after the certificate expired', async () => {
    const [a, c] = [venue.t(0), venue.t(2)]
    const late = expiry + 60_000
    // T3 signs after its certificate expired
    const orphan = venue.reserve(c, { ts: late })
    // T3 acks after its certificate expired
    const r = venue.reserve(a, { ts: late })
    const commit = venue.commit(a, r, [a.key, c.key], 'quorum', { ts: late + 200, ackTs: late + 100 })
    const results = await sync([orphan, r, commit])
    expect(codes(results)).toEqual(['ERR_NOT_ENROLLED', 'stored', 'ERR_QUORUM'])
    expect(results[2]?.message).toMatch(/not enrolled/)
    expect((await central.getPayment(r.idHex))?.status).toBe('created')
    // online too: the reservation is judged at its ts
    const online = await api(central.url, 'POST', '/v1/authorize', { reservation: b64(venue.reserve(c)) })
    expect([online.status, online.body.code]).toEqual([422, 'ERR_NOT_ENROLLED'])
  })

  it('bounds the signing times: none in the future, acks near their reservation', async () => {
    const [a, b, c] = [venue.t(0), venue.t(1), venue.t(2)]
    const ahead = Date.now() + SKEW + 60_000
    // a reservation dated ahead of central's clock (e.g. to outlive a certificate's notAfter)
    const future = venue.reserve(a, { ts: ahead })
    // an ack dated ahead of central's clock
    const now = venue.reserve(a)
    const futureAck = venue.commit(a, now, [a.key, b.key], 'quorum', { ackTs: ahead })
    // acks given while T3 was enrolled, in a commit of a reservation made long after: not counted
    const at = t0 + HOUR / 2
    const far = venue.reserve(a, { ts: expiry + HOUR })
    const farAck = venue.commit(a, far, [a.key, c.key], 'quorum', { ts: expiry + HOUR, ackTs: at })
    const results = await sync([future, futureAck, farAck])
    expect(codes(results)).toEqual(['ERR_FUTURE_TS', 'ERR_FUTURE_TS', 'ERR_QUORUM'])
    expect(results[2]?.message).toMatch(/2 ack\(s\) dated too far from the reservation not counted/)

    // online: judged at the reservation's ts, which may not lie ahead either
    const signedWhileEnrolled = venue.reserve(c, { ts: at })
    expect(await central.authorize(signedWhileEnrolled.bytes)).toMatchObject({ status: 'approved' })
    const r = await api(central.url, 'POST', '/v1/authorize', {
      reservation: b64(venue.reserve(a, { ts: ahead })),
    })
    expect([r.status, r.body.code]).toEqual([422, 'ERR_FUTURE_TS'])
  })
})
