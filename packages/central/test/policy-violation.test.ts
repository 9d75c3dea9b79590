import { randomBytes } from 'node:crypto'
import {
  type CentralService,
  createCentralService,
  createSimulatedIssuer,
  type EventResult,
} from '@nullmesh/central'
import { toHex } from '@nullmesh/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { TempDirs, VenueFixture } from './fixtures/helpers.js'

// Issue 17, item 1 at central: a Commit outside the policy is failed (never settled, never in the
// offline exposure) and counted as a policy violation of its terminal. Default EUR limits: isolated
// floor 25.00, isolated device cap 200.00, one isolated approval per card.
describe('[policy violation] central judges commits against the policy', () => {
  const temp = new TempDirs()
  let venue: VenueFixture
  let central: CentralService
  let issuer: ReturnType<typeof createSimulatedIssuer>
  let clock = Date.now()

  beforeEach(async () => {
    const dir = await temp.make()
    clock = Date.now()
    venue = await VenueFixture.create(dir, 'arena', 3)
    issuer = createSimulatedIssuer({ seed: 1 })
    central = createCentralService({
      dataDir: `${dir}/central`,
      venues: [venue.bundle],
      issuer,
      settleIntervalMs: 0,
      now: () => clock,
    })
    await central.start()
  })

  afterEach(async () => {
    await central.stop()
    await temp.cleanup()
  })

  const isolated = (t = venue.t(1), o: { amountMinor?: number; cardKey?: Uint8Array; ts?: number } = {}) => {
    const r = venue.reserve(t, { ts: o.ts ?? clock, cardKey: o.cardKey ?? randomBytes(16), ...o })
    return { reservation: r, commit: venue.commit(t, r, [], 'isolated') }
  }

  it('an isolated 99,999.99 commit is failed, never settled, never in the exposure, and reported for its terminal', async () => {
    const t1 = venue.t(1)
    const big = isolated(t1, { amountMinor: 9_999_999 })
    const ok = isolated(t1, { amountMinor: 2_000 })
    const r = await central.ingest([big.commit.bytes, ok.commit.bytes])
    expect(r.results.map((x: EventResult) => x.status)).toEqual(['stored', 'stored'])
    expect(await central.getPayment(big.reservation.idHex)).toMatchObject({
      status: 'failed',
      syncDeclineCode: 'policy_violation',
      mode: 'isolated',
    })
    expect((await central.getPayment(big.reservation.idHex))?.flags).toContain('policy_violation')
    const summary = await central.summary(venue.id)
    // the ordinary one may already be settling; the violating one is never at risk
    expect(summary.offlineExposureMinor.EUR ?? 0).toBeLessThanOrEqual(2_000)
    expect(summary.policyViolations).toEqual({ [toHex(t1.key.publicKey)]: 1 })
    await central.settleNow()
    expect(issuer.decisions().map((d) => d.paymentId)).toEqual([ok.reservation.idHex])
  })

  it('[isolated total] the origin’s isolated commits in one batch beyond its isolated cap', async () => {
    const t1 = venue.t(1)
    const commits = Array.from({ length: 9 }, () => isolated(t1, { amountMinor: 2_500 }))
    // another terminal's isolated commits do not count toward t1's
    const other = isolated(venue.t(2), { amountMinor: 2_500 })
    await central.ingest([other.commit.bytes, ...commits.map((c) => c.commit.bytes)])
    const statuses = await Promise.all(
      commits.map(async (c) => (await central.getPayment(c.reservation.idHex))?.status),
    )
    expect(statuses).toEqual([...Array(8).fill('queued'), 'failed'])
    expect((await central.getPayment(other.reservation.idHex))?.status).toBe('queued')
  })

  it('[isolated total] commits central confirmed before the terminal decided no longer count', async () => {
    const t1 = venue.t(1)
    const first = Array.from({ length: 8 }, () => isolated(t1, { amountMinor: 2_500 }))
    await central.ingest(first.map((c) => c.commit.bytes))
    // two hours later (well past the clock skew) the terminal, told they were confirmed, goes on
    clock += 2 * 3_600_000
    const later = isolated(t1, { amountMinor: 2_500 })
    await central.ingest([later.commit.bytes])
    expect((await central.getPayment(later.reservation.idHex))?.status).toBe('queued')
    // but synced late, the same eight would have counted: arrived after it was made
    const t2 = venue.t(2)
    const late = Array.from({ length: 8 }, () => isolated(t2, { amountMinor: 2_500, ts: clock - 3_600_000 }))
    const after = isolated(t2, { amountMinor: 2_500, ts: clock - 3_600_000 })
    await central.ingest(late.map((c) => c.commit.bytes))
    await central.ingest([after.commit.bytes])
    expect((await central.getPayment(after.reservation.idHex))?.syncDeclineCode).toBe('policy_violation')
  })

  it('[one per card] a second isolated approval of one card by one terminal', async () => {
    const card = randomBytes(16)
    const a = isolated(venue.t(1), { cardKey: card })
    const b = isolated(venue.t(1), { cardKey: card })
    const other = isolated(venue.t(2), { cardKey: card })
    await central.ingest([a.commit.bytes, b.commit.bytes, other.commit.bytes])
    expect((await central.getPayment(a.reservation.idHex))?.status).toBe('queued')
    expect((await central.getPayment(b.reservation.idHex))?.syncDeclineCode).toBe('policy_violation')
    expect((await central.getPayment(other.reservation.idHex))?.status).toBe('queued')
  })

  it('[online] an online commit central never authorised is a violation; one it authorised settles once', async () => {
    const t0 = venue.t(0)
    const never = venue.reserve(t0, { amountMinor: 4_200 })
    await central.ingest([venue.commit(t0, never, [], 'online').bytes])
    expect(await central.getPayment(never.idHex)).toMatchObject({
      status: 'failed',
      syncDeclineCode: 'policy_violation',
    })
    await central.settleNow()
    expect(issuer.decisions()).toHaveLength(0)
    const authorised = venue.reserve(t0, { amountMinor: 4_200 })
    expect(await central.authorize(authorised.bytes)).toMatchObject({ status: 'approved' })
    await central.ingest([venue.commit(t0, authorised, [], 'online').bytes])
    expect((await central.getPayment(authorised.idHex))?.status).toBe('completed')
  })

  it('a quorum commit above the floor limit (acks from a colluding quorum) is a violation', async () => {
    const t0 = venue.t(0)
    const r = venue.reserve(t0, { amountMinor: 9_999_999 })
    const commit = venue.commit(t0, r, [t0.key, venue.t(1).key])
    await central.ingest([commit.bytes])
    expect((await central.getPayment(r.idHex))?.syncDeclineCode).toBe('policy_violation')
  })
})
