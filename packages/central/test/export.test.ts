import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import {
  createCentralService,
  createSimulatedIssuer,
  LEDGER_EXPORT_FORMAT,
  readLedgerExport,
  writeLedgerExport,
} from '@nullmesh/central'
import { toHex } from '@nullmesh/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { api, b64, TempDirs, VenueFixture } from './fixtures/helpers.js'

describe('ledger export files', () => {
  const temp = new TempDirs()
  afterEach(() => temp.cleanup())

  it('round-trips: a header line, then one base64url event per line', async () => {
    const dir = await temp.make()
    const venue = await VenueFixture.create(dir, 'cabin', 3)
    const p = venue.pay(venue.t(0))
    async function* events() {
      yield p.reservation.bytes
      yield p.commit.bytes
    }
    const path = `${dir}/T1.ledger`
    expect(await writeLedgerExport(path, { venue: 'cabin', terminal: 'T1' }, events())).toBe(2)
    const lines = (await readFile(path, 'utf8')).trimEnd().split('\n')
    expect(JSON.parse(lines[0]!)).toMatchObject({
      format: LEDGER_EXPORT_FORMAT,
      version: 1,
      venue: 'cabin',
      terminal: 'T1',
    })
    expect(lines.slice(1)).toEqual([b64(p.reservation), b64(p.commit)])
    const back = await readLedgerExport(path)
    expect(back.header.terminal).toBe('T1')
    expect(back.events.map((e) => Buffer.from(e).toString('base64url'))).toEqual(lines.slice(1))

    await writeFile(`${dir}/bad1`, '{"format":"something-else","version":1}\n')
    await expect(readLedgerExport(`${dir}/bad1`)).rejects.toMatchObject({ code: 'ERR_INVALID_EXPORT' })
    await writeFile(`${dir}/bad2`, `${lines[0]}\n${lines[1]}\nnot base64!\n`)
    await expect(readLedgerExport(`${dir}/bad2`)).rejects.toThrow(/line 3/)
    await expect(readLedgerExport(`${dir}/missing`)).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' })
  })

  it('importing exports gives the same statuses as syncing the same ledgers', async () => {
    const dir = await temp.make()
    // enrolled ten minutes ago: certificates are judged at the (back-dated) payments' times
    const venue = await VenueFixture.create(
      dir,
      'flight',
      3,
      { queueDurationMs: 60_000 },
      { now: Date.now() - 10 * 60_000 },
    )
    const stolen = randomBytes(16)
    const dupNullifier = randomBytes(32)
    const ledgers: Uint8Array[][] = [[], [], []]
    const add = (i: number, ...evs: { bytes: Uint8Array }[]) => ledgers[i]!.push(...evs.map((e) => e.bytes))
    for (let i = 0; i < 30; i++) {
      const t = i % 3
      const p = venue.pay(venue.t(t), {
        ...(i === 4 ? { cardKey: stolen } : {}),
        ...(i === 5 || i === 9 ? { nullifier: dupNullifier } : {}),
        ...(i === 7 ? { ts: Date.now() - 120_000 } : {}),
      })
      add(t, p.reservation, p.commit)
      // gossip: the other terminals hold copies too
      add((t + 1) % 3, p.reservation, p.commit)
    }
    const unanswered = venue.reserve(venue.t(0))
    add(0, unanswered, venue.release(venue.t(0), unanswered))
    const issuerInit = { seed: 5, lostOrStolen: [toHex(stolen)], declineRate: 0.4 }

    const statuses = async (central: ReturnType<typeof createCentralService>) =>
      (await central.listPayments({ limit: 1000 }))
        .map((p) => [p.paymentId, p.status, p.declineCode, p.syncDeclineCode])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0])))

    const viaSync = createCentralService({
      dataDir: `${dir}/a`,
      venues: [venue.bundle],
      issuer: createSimulatedIssuer(issuerInit),
      settleIntervalMs: 0,
    })
    const viaFile = createCentralService({
      dataDir: `${dir}/b`,
      venues: [venue.bundle],
      issuer: createSimulatedIssuer(issuerInit),
      settleIntervalMs: 0,
    })
    await viaSync.start()
    await viaFile.start()
    try {
      for (const ledger of ledgers) {
        const r = await api(viaSync.url, 'POST', '/v1/sync', {
          events: ledger.map((bytes) => Buffer.from(bytes).toString('base64url')),
        })
        expect(r.status).toBe(200)
      }
      await viaSync.settleNow()
      for (const [i, ledger] of ledgers.entries()) {
        const path = `${dir}/T${i}.ledger`
        await writeLedgerExport(path, { venue: 'flight', terminal: `T${i}` }, ledger)
        const r = await viaFile.importFile(path)
        expect(r.header.terminal).toBe(`T${i}`)
        expect(r.results).toHaveLength(ledger.length)
      }
      await viaFile.settleNow()
      const a = await statuses(viaSync)
      expect(a).toHaveLength(31)
      expect(a).toEqual(await statuses(viaFile))
      const codes = a.map((s) => s[3]).filter((c) => c !== undefined)
      expect(codes).toContain('lost_or_stolen')
      expect(codes).toContain('duplicate_nullifier')
      expect(codes).toContain('expired')
      expect(codes).toContain('issuer_declined')
      expect(a.find((s) => s[0] === unanswered.idHex)?.[1]).toBe('released')
      // importing the same file again changes nothing
      const again = await viaFile.importFile(`${dir}/T0.ledger`)
      expect(again.results.every((r) => r.status === 'duplicate')).toBe(true)
    } finally {
      await viaSync.stop()
      await viaFile.stop()
    }
  })
})
