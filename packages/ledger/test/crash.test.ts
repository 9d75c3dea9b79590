import { createLedger, type Ledger } from '@nullmesh/ledger'
import type { Reservation, SignedEvent } from '@nullmesh/protocol'
import { toHex } from '@nullmesh/protocol'
import { Level } from 'level'
import { afterEach, describe, expect, it } from 'vitest'
import { collect, Origin, removeDir, tempDir } from './helpers.js'
import { Fixture } from './processes.js'

const ACKS_BEFORE_KILL = 600

describe('crash consistency (SIGKILL mid-run)', () => {
  let dir: string | undefined
  let writer: Fixture | undefined
  let ledger: Ledger | undefined

  afterEach(async () => {
    await writer?.kill()
    await ledger?.close()
    if (dir !== undefined) await removeDir(dir)
    writer = ledger = dir = undefined
  })

  it('keeps every acknowledged event, and the indexes agree with the events', async () => {
    dir = await tempDir()
    writer = new Fixture('crash-writer.js', [dir, '3'])
    await writer.waitFor((lines) => lines.length > ACKS_BEFORE_KILL)
    await writer.kill()
    expect(writer.child.signalCode).toBe('SIGKILL')

    const acked = new Map<string, string>()
    for (const line of writer.lines) {
      if (line === 'ready') continue
      const [origin, seq, id] = line.split(' ')
      acked.set(`${origin}!${seq}`, id!)
    }
    expect(acked.size).toBeGreaterThan(ACKS_BEFORE_KILL - 10)

    ledger = createLedger({ path: dir })
    await ledger.open()

    // 1. every acknowledged event is there, under its id
    for (const [key, id] of acked) {
      const [origin, seq] = key.split('!')
      expect((await ledger.getEventAt(origin!, Number(seq)))?.idHex).toBe(id)
    }

    // 2. ids, hwm and nextSeq agree with the events actually stored
    const events = await collect(ledger.events())
    expect(events.length).toBeGreaterThanOrEqual(acked.size)
    const seqs = new Map<string, number[]>()
    for (const ev of events) {
      const origin = toHex(ev.event.origin)
      seqs.set(origin, [...(seqs.get(origin) ?? []), ev.event.seq])
      expect((await ledger.getEvent(ev.idHex))?.idHex).toBe(ev.idHex)
    }
    const marks = await ledger.highWaterMarks()
    expect(Object.keys(marks).sort()).toEqual([...seqs.keys()].sort())
    for (const [origin, list] of seqs) {
      let contiguous = 0
      while (list.includes(contiguous + 1)) contiguous++
      expect(marks[origin]).toBe(contiguous)
      // each origin writes in order, one at a time: no gaps
      expect(contiguous).toBe(Math.max(...list))
      expect(await ledger.nextSeq(origin)).toBe(Math.max(...list) + 1)
    }

    // 3. nullifiers, states, pending, exposure, acks and payments agree with the events
    const reservations = events.filter((e): e is SignedEvent<Reservation> => e.event.type === 'reservation')
    const fate = new Map<string, 'committed' | 'released'>()
    for (const ev of events) {
      if (ev.event.type === 'commit') fate.set(ev.event.reservation.idHex, 'committed')
      if (ev.event.type === 'release') fate.set(toHex(ev.event.reservationId), 'released')
    }
    const pending = new Map<string, string[]>()
    const exposure = new Map<string, number>()
    let ownPayments = 0
    for (const r of reservations) {
      const state = fate.get(r.idHex) ?? 'reserved'
      const origin = toHex(r.event.origin)
      expect(await ledger.reservationState(r.idHex)).toBe(state)
      expect(await ledger.nullifier(toHex(r.event.nullifier))).toEqual([{ reservationId: r.idHex, state }])
      if (state === 'reserved') pending.set(origin, [...(pending.get(origin) ?? []), r.idHex])
      const payment = await ledger.getPayment(`pay-${r.idHex.slice(0, 16)}`)
      const own = payment !== undefined
      if (own) {
        ownPayments++
        expect(await ledger.isHeld(r.idHex)).toBe(state !== 'released')
        expect((await ledger.ackGiven(r.idHex))?.ack.reservationId).toEqual(r.id)
      }
      const card = toHex(r.event.cardKey)
      const counted = state === 'committed' || (own && state === 'reserved')
      exposure.set(card, (exposure.get(card) ?? 0) + (counted ? r.event.amountMinor : 0))
    }
    for (const origin of seqs.keys()) {
      expect((await ledger.pendingReservations(origin)).map((e) => e.idHex)).toEqual(
        pending.get(origin) ?? [],
      )
    }
    for (const [card, amount] of exposure) {
      expect((await ledger.cardExposure(card, 'EUR', 0)).amountMinor).toBe(amount)
    }
    expect(await ledger.stats()).toEqual({ events: events.length, payments: ownPayments, origins: seqs.size })

    // 4. no index entry outlived its event (raw look at the keyspaces)
    await ledger.close()
    const raw = new Level<string, string>(dir)
    try {
      const count = async (name: string): Promise<number> => (await raw.sublevel(name).keys().all()).length
      expect(await count('ids')).toBe(events.length)
      expect(await count('nullifiers')).toBe(reservations.length)
      expect(await count('reservations')).toBe(reservations.length)
      expect(await count('idem')).toBe(ownPayments)
      expect(await count('pending')).toBe([...pending.values()].flat().length)
    } finally {
      await raw.close()
    }

    // 5. the ledger carries on where the crash left it
    await ledger.open()
    const next = new Origin()
    expect(await ledger.recordEvent(next.reservation())).toEqual({ inserted: true })
  })
})
