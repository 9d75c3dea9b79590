import {
  type CentralService,
  createCentralService,
  createSimulatedIssuer,
  type EventResult,
  VerifyPool,
} from '@nullmesh/central'
import { decodeEvent, type Reservation, type SignedEvent } from '@nullmesh/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { TempDirs, VenueFixture } from './fixtures/helpers.js'

/** worker threads show up as MessagePort handles of this process */
const ports = (): number => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort').length

const flipLast = (bytes: Uint8Array): Uint8Array => {
  const out = new Uint8Array(bytes)
  out[out.length - 1] = (out[out.length - 1] as number) ^ 0xff
  return out
}

describe('signature verification on worker threads', () => {
  const temp = new TempDirs()
  const services: CentralService[] = []

  afterEach(async () => {
    for (const s of services.splice(0)) await s.stop()
    await temp.cleanup()
  })

  async function central(dir: string, venue: VenueFixture, verifyThreads: number): Promise<CentralService> {
    const c = createCentralService({
      dataDir: `${dir}/central-${verifyThreads}`,
      venues: [venue.bundle],
      issuer: createSimulatedIssuer({ seed: 1 }),
      settleIntervalMs: 0,
      verifyThreads,
    })
    services.push(c)
    await c.start()
    return c
  }

  it('forged signatures inside a large batch are rejected with the same codes and messages as inline', async () => {
    const dir = await temp.make()
    const venue = await VenueFixture.create(dir, 'arena', 3)
    const [t0, t1] = [venue.t(0), venue.t(1)]
    // forged own signature
    const forgedEvent = flipLast(venue.reserve(t0).bytes)
    // a Commit (validly signed itself) embedding a reservation whose signature was forged
    const badRes = decodeEvent(flipLast(venue.reserve(t0).bytes))
    if (!badRes.ok) throw new Error('fixture')
    const forgedEmbedded = venue.commit(t0, badRes.value as SignedEvent<Reservation>, [t0.key, t1.key]).bytes
    // a Commit whose second ack carries a forged signature
    const r = venue.reserve(t0)
    const c = venue.commit(t0, r, [t0.key, t1.key])
    const acks = c.event.acks.map((a, i) => (i === 1 ? { ...a, bytes: flipLast(a.bytes) } : a))
    const forgedAck = venue.commit(t0, r, []).event
    const { signEvent } = await import('@nullmesh/protocol')
    const forgedAckCommit = signEvent(t0.key, { ...forgedAck, mode: 'quorum', acks }).bytes
    // surrounded by enough valid events that the batch is split over every thread
    const good = Array.from({ length: 60 }, (_, i) => venue.pay(venue.t(i % 3))).flatMap((p) => [
      p.reservation.bytes,
      p.commit.bytes,
    ])
    const batch = [
      ...good.slice(0, 40),
      forgedEvent,
      ...good.slice(40, 80),
      forgedEmbedded,
      ...good.slice(80),
      forgedAckCommit,
      r.bytes,
    ]

    const before = ports()
    const pooled = await central(dir, venue, 2)
    expect(ports()).toBe(before + 2)
    const inline = await central(dir, venue, 0)
    const viaPool = await pooled.ingest(batch)
    const viaInline = await inline.ingest(batch)
    const view = (rs: EventResult[]) => rs.map((x) => [x.status, x.code, x.message])
    expect(view(viaPool.results)).toEqual(view(viaInline.results))

    const rejected = viaPool.results.filter((x) => x.status === 'rejected')
    expect(rejected.map((x) => [x.code, x.message])).toEqual([
      ['ERR_BAD_SIGNATURE', 'event signature invalid'],
      ['ERR_BAD_SIGNATURE', 'signature of the committed reservation invalid'],
      ['ERR_QUORUM', expect.stringMatching(/^ack signature of [0-9a-f]{16}… invalid/)],
    ])
    expect(viaPool.results.filter((x) => x.status === 'stored')).toHaveLength(good.length + 1)
    expect(await pooled.store.countEvents()).toBe(good.length + 1)
  })

  it('concurrent syncs of overlapping batches store each event once', async () => {
    const dir = await temp.make()
    const venue = await VenueFixture.create(dir, 'arena', 3)
    const c = await central(dir, venue, 2)
    const events = Array.from({ length: 50 }, (_, i) => venue.pay(venue.t(i % 3))).flatMap((p) => [
      p.reservation.bytes,
      p.commit.bytes,
    ])
    const batches = [events.slice(0, 60), events.slice(30, 100), events.slice(0, 100), events.slice(50)]
    const rs = await Promise.all(batches.map((b) => c.ingest(b)))
    const stored = rs.flatMap((r) => r.results).filter((x) => x.status === 'stored')
    expect(stored).toHaveLength(100)
    expect(new Set(stored.map((x) => x.id)).size).toBe(100)
    expect(rs.flatMap((r) => r.results).every((x) => x.status !== 'rejected')).toBe(true)
    expect(await c.store.countEvents()).toBe(100)
  })

  it('start and stop are idempotent, and stop leaves no worker thread behind', async () => {
    const dir = await temp.make()
    const venue = await VenueFixture.create(dir, 'arena', 3)
    const before = ports()
    const c = await central(dir, venue, 3)
    await c.start()
    expect(ports()).toBe(before + 3)
    await c.ingest([venue.reserve(venue.t(0)).bytes])
    await c.stop()
    await c.stop()
    expect(ports()).toBe(before)

    // the pool alone: a check in flight when it stops fails instead of hanging
    const pool = new VerifyPool({ size: 2 })
    pool.start()
    pool.start()
    expect(pool.threads).toBe(2)
    const many = Array.from({ length: 400 }, () => venue.reserve(venue.t(1)).bytes)
    const inFlight = expect(pool.check(many)).rejects.toThrow(/stopped/)
    await pool.stop()
    await pool.stop()
    await inFlight
    expect(pool.threads).toBe(0)
    expect(ports()).toBe(before)
    await expect(pool.check(many)).rejects.toThrow(/not started/)
  })
})
