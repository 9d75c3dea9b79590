import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { type CentralService, createCentralService } from '@nullmesh/central'
import { loadTerminalKey } from '@nullmesh/policy'
import { type Reservation, type SignedEvent, signEvent } from '@nullmesh/protocol'
import { createHttpCentralLink, TerminalError } from '@nullmesh/terminal'
import { afterEach, describe, expect, test } from 'vitest'
import { freePort, makeVenueDir } from './helpers.js'

let central: CentralService | undefined
let dir: string | undefined
afterEach(async () => {
  await central?.stop()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  central = undefined
  dir = undefined
})

describe('HTTP central link: void', () => {
  test('voids a reservation at central (idempotent), which then declines it; bad input is central_rejected', async () => {
    const venue = await makeVenueDir(3)
    dir = venue.dir
    central = createCentralService({
      dataDir: join(venue.dir, 'central'),
      venues: [venue.bundle],
      settleIntervalMs: 0,
    })
    await central.start()
    const key = await loadTerminalKey(venue.bundle.dir, 'T1')
    const reservation: SignedEvent<Reservation> = signEvent<Reservation>(key, {
      type: 'reservation',
      venue: venue.bundle.venueId,
      origin: key.publicKey,
      seq: 1,
      ts: Date.now(),
      nullifier: randomBytes(32),
      cardKey: randomBytes(16),
      amountMinor: 1250,
      currency: 'EUR',
      method: 'contactless',
      policyVersion: venue.bundle.policy.version,
    })
    const link = createHttpCentralLink({ url: central.url })
    const voided = { paymentId: reservation.idHex, status: 'voided' }
    expect(await link.void(reservation.bytes)).toEqual(voided)
    expect(await link.void(reservation.bytes)).toEqual(voided)
    expect(await link.authorize(reservation.bytes)).toEqual({
      paymentId: reservation.idHex,
      status: 'declined',
      declineCode: 'voided',
    })
    expect((await link.payment(reservation.idHex))?.status).toBe('voided')
    // many at once: known ones answered, unknown ones left out
    const several = await link.payments([reservation.idHex, 'f'.repeat(64), reservation.idHex])
    expect(several.map((p) => [p.paymentId, p.status])).toEqual([[reservation.idHex, 'voided']])

    const forged = Uint8Array.from(reservation.bytes)
    forged[forged.length - 1] = forged[forged.length - 1]! ^ 1
    const err = await link.void(forged).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TerminalError)
    expect(err).toMatchObject({ code: 'central_rejected', upstreamStatus: 422 })
    expect((err as Error).message).toMatch(/ERR_BAD_SIGNATURE/)
  })

  test('central unreachable or silent: central_unavailable, after the normal (not the online) timeout', async () => {
    const down = createHttpCentralLink({ url: `http://127.0.0.1:${await freePort()}` })
    await expect(down.void(new Uint8Array([1, 2, 3]))).rejects.toMatchObject({ code: 'central_unavailable' })

    // a central that never answers: the request gives up after timeoutMs, not authorizeTimeoutMs
    const silent = createHttpCentralLink({
      url: 'http://central.invalid',
      timeoutMs: 50,
      authorizeTimeoutMs: 60_000,
      fetch: (_url, init) =>
        new Promise((_resolve, reject) =>
          init?.signal?.addEventListener('abort', () => reject(init.signal?.reason)),
        ),
    })
    await expect(silent.void(new Uint8Array([1, 2, 3]))).rejects.toMatchObject({
      code: 'central_unavailable',
      message: expect.stringMatching(/no answer within 50 ms/),
    })
  })
})
