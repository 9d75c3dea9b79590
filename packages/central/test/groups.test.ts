import { type CentralService, createCentralService, createSimulatedIssuer } from '@nullmesh/central'
import { CustodianGroups, type KeyPair, toHex } from '@nullmesh/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { api, b64, TempDirs, VenueFixture } from './fixtures/helpers.js'

/** Central's quorum-certificate check with custodian groups: acks count only from the card's group. */
describe('ingest: quorum certificates within the card group', () => {
  const temp = new TempDirs()
  let venue: VenueFixture
  let central: CentralService

  beforeEach(async () => {
    const dir = await temp.make()
    venue = await VenueFixture.create(dir, 'stadium', 9) // groupSize 5: quorum 3 of the card's group
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

  it('[groups] refuses a certificate with acks from outside the card group, accepts a majority of the group', async () => {
    const groups = new CustodianGroups(
      venue.bundle.roster.map((r) => r.publicKeyHex),
      5,
    )
    const t0 = venue.t(0)
    const res = venue.reserve(t0)
    const group = groups.of(res.event.cardKey)
    const keyOf = (t: { key: KeyPair }) => toHex(t.key.publicKey)
    const members = venue.terminals.filter((t) => group.has(keyOf(t)))
    const outside = venue.terminals.filter((t) => !group.has(keyOf(t)))
    // five acks, enough for a roster majority, but only two from the card's group
    const wide = venue.commit(
      t0,
      res,
      [...members.slice(0, 2), ...outside.slice(0, 3)].map((t) => t.key),
    )
    const r1 = await api(central.url, 'POST', '/v1/sync', { events: [b64(res), b64(wide)] })
    expect(r1.status).toBe(200)
    expect(r1.body.results[1]).toMatchObject({ status: 'rejected', code: 'ERR_QUORUM' })
    expect(r1.body.results[1].message).toMatch(/not in the card's custodian group/)
    // three members of the group: a majority of it
    const good = venue.commit(
      t0,
      res,
      members.slice(0, 3).map((t) => t.key),
    )
    const r2 = await api(central.url, 'POST', '/v1/sync', { events: [b64(good)] })
    expect(r2.body.results[0]).toMatchObject({ status: 'stored' })
  })
})
