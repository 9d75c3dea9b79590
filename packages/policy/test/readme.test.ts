import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createExposureState,
  createVenueBundle,
  decideAck,
  decideOffline,
  loadVenueBundle,
  originView,
} from '@nullmesh/policy'
import { computeCardKey, computeNullifier, toHex } from '@nullmesh/protocol'
import { expect, it } from 'vitest'

// The README example, kept working.
it('README example', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'nullmesh-readme-'))
  try {
    const outDir = join(dir, 'cafe')
    await createVenueBundle({
      outDir,
      terminals: 3,
      venueId: 'cafe-1',
      policy: { currencies: { EUR: { floorLimitMinor: 3000 } } },
    })
    const venue = await loadVenueBundle(outDir)

    const card = '4111 1111 1111 1111'
    const now = Date.now()
    const payment = {
      origin: venue.roster[0]!.publicKeyHex,
      nullifier: toHex(
        computeNullifier(venue.hashingKey, card, { credentialCounter: 41, idempotencyKey: 'order-7' }),
      ),
      cardKey: toHex(computeCardKey(venue.hashingKey, card)),
      amountMinor: 1250,
      currency: 'EUR',
      method: 'contactless' as const,
      ts: now,
    }

    const mine = createExposureState()
    const verdict = decideOffline(venue.policy, mine, payment, { mode: 'quorum', now })
    expect(verdict).toEqual({ approve: true })

    const reservation = { ...payment, id: 'ab'.repeat(32) }
    const view = originView(venue.policy, mine, reservation)
    mine.addReservation(reservation, true)

    const peer = createExposureState()
    const ack = decideAck(venue.policy, peer, reservation, { now, originView: view })
    expect(ack).toEqual({ approve: true })
    if (ack.approve) peer.addReservation(reservation, true)

    // the same credential use again is refused everywhere
    const again = { ...payment, id: 'cd'.repeat(32) }
    expect(decideAck(venue.policy, peer, again, { now })).toMatchObject({
      approve: false,
      code: 'nullifier_seen',
    })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
