import { createLedger, type Ledger, LedgerError } from '@nullmesh/ledger'
import { toHex } from '@nullmesh/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { collect, newBytes, Origin, removeDir, T0, tempDir } from './helpers.js'

export type Backend = 'level' | 'memory'

/** The behaviour every backend must share. Each test gets a fresh, open ledger. */
export function ledgerContract(backend: Backend): void {
  describe(`ledger contract (${backend})`, () => {
    let dir: string
    let ledger: Ledger

    beforeEach(async () => {
      dir = backend === 'level' ? await tempDir() : `memory:${Math.random()}`
      ledger = createLedger({ path: dir, backend })
      await ledger.open()
    })

    afterEach(async () => {
      await ledger.close()
      if (backend === 'level') await removeDir(dir)
    })

    /** close and open the same instance: what survives is what a restart sees */
    async function reopen(): Promise<void> {
      await ledger.close()
      await ledger.open()
    }

    describe('lifecycle', () => {
      it('open and close are idempotent, calls on a closed ledger fail', async () => {
        await ledger.open()
        await Promise.all([ledger.open(), ledger.open()])
        await ledger.close()
        await ledger.close()
        await expect(ledger.nextSeq('aa')).rejects.toMatchObject({ code: 'ERR_LEDGER_NOT_OPEN' })
        await expect(collect(ledger.events())).rejects.toMatchObject({ code: 'ERR_LEDGER_NOT_OPEN' })
        await ledger.open()
        expect(await ledger.stats()).toEqual({ events: 0, payments: 0, origins: 0 })
      })

      it('settles interleaved open and close calls', async () => {
        const calls = [ledger.close(), ledger.open(), ledger.close(), ledger.open(), ledger.open()]
        await Promise.all(calls)
        expect(await ledger.stats()).toEqual({ events: 0, payments: 0, origins: 0 })
        const a = new Origin()
        const writes = Array.from({ length: 20 }, () => ledger.recordEvent(a.reservation()))
        await ledger.close() // waits for the writes already under way
        expect((await Promise.allSettled(writes)).every((r) => r.status === 'fulfilled')).toBe(true)
        await ledger.open()
        expect(await ledger.highWaterMarks()).toEqual({ [a.hex]: 20 })
      })

      it('keeps everything across a reopen', async () => {
        const a = new Origin()
        const r = a.reservation()
        await ledger.recordEvent(r, { held: true, ackGiven: a.ack(r) })
        await ledger.setCursor('central', 'x')
        await reopen()
        expect((await ledger.getEvent(r.idHex))?.idHex).toBe(r.idHex)
        expect(await ledger.highWaterMarks()).toEqual({ [a.hex]: 1 })
        expect(await ledger.isHeld(r.idHex)).toBe(true)
        expect((await ledger.ackGiven(r.idHex))?.ack.ok).toBe(true)
        expect(await ledger.getCursor('central')).toBe('x')
      })

      it('honours an aborted signal', async () => {
        const signal = AbortSignal.abort()
        const a = new Origin()
        await expect(ledger.recordEvent(a.reservation(), { signal })).rejects.toThrow()
        await expect(ledger.getEvent('00', { signal })).rejects.toThrow()
        await expect(collect(ledger.events({ signal }))).rejects.toThrow()
        expect(await ledger.stats()).toMatchObject({ events: 0 })
      })

      it('rejects arguments that would widen a key range', async () => {
        await expect(ledger.nullifier('')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
        await expect(ledger.getEventAt('zz', 1)).rejects.toBeInstanceOf(LedgerError)
        await expect(ledger.getEventAt('aa', 0)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      })
    })

    describe('recording', () => {
      it('is idempotent by (origin, seq) and id', async () => {
        const a = new Origin()
        const r = a.reservation()
        expect(await ledger.recordEvent(r)).toEqual({ inserted: true })
        expect(await ledger.recordEvent(r)).toEqual({ inserted: false })
        const got = await ledger.getEvent(r.idHex)
        expect(got?.bytes).toEqual(r.bytes)
        expect(got?.event).toMatchObject({ type: 'reservation', seq: 1 })
        expect((await ledger.getEventAt(a.hex, 1))?.idHex).toBe(r.idHex)
        expect(await ledger.getEventAt(a.hex, 2)).toBeUndefined()
        expect(await ledger.getEvent('ab'.repeat(32))).toBeUndefined()
        expect(await ledger.stats()).toEqual({ events: 1, payments: 0, origins: 1 })
      })

      it('keeps the first event when an origin equivocates on (origin, seq)', async () => {
        const a = new Origin()
        const first = a.reservation({ seq: 1 })
        const second = a.reservation({ seq: 1 })
        expect(first.idHex).not.toBe(second.idHex)
        await ledger.recordEvent(first)
        const payment = { id: 'p1', idempotencyKey: 'k1', status: 'pending', createdAt: T0 }
        expect(await ledger.recordEvent(second, { held: true, payment })).toEqual({
          inserted: false,
          conflict: first.idHex,
        })
        expect((await ledger.getEventAt(a.hex, 1))?.idHex).toBe(first.idHex)
        expect(await ledger.getEvent(second.idHex)).toBeUndefined()
        expect(await ledger.nullifier(toHex(second.event.nullifier))).toEqual([])
        // the extras of a refused event are not written
        expect(await ledger.getPayment('p1')).toBeUndefined()
        expect(await ledger.isHeld(second.idHex)).toBe(false)
      })

      it('detects equivocation between concurrent writers', async () => {
        const a = new Origin()
        const events = Array.from({ length: 8 }, () => a.reservation({ seq: 1 }))
        const results = await Promise.all(events.map((ev) => ledger.recordEvent(ev)))
        const winners = results.filter((r) => r.inserted)
        expect(winners).toHaveLength(1)
        const kept = (await ledger.getEventAt(a.hex, 1))!.idHex
        for (const r of results) if (!r.inserted) expect(r.conflict).toBe(kept)
      })

      it('maxSeqs: the largest seq per origin past a gap, the high-water mark stays contiguous', async () => {
        const a = new Origin()
        await ledger.recordEvent(a.reservation())
        await ledger.recordEvent(a.reservation())
        await ledger.recordEvent(a.reservation({ seq: 5 }))
        expect(await ledger.highWaterMarks()).toEqual({ [a.hex]: 2 })
        expect(await ledger.maxSeqs()).toEqual({ [a.hex]: 5 })
        await reopen()
        expect(await ledger.maxSeqs()).toEqual({ [a.hex]: 5 })
      })

      it('records the embedded reservation of a Commit when absent', async () => {
        const a = new Origin()
        const r = a.reservation()
        const c = a.commit(r)
        expect(await ledger.recordEvent(c)).toEqual({ inserted: true })
        expect((await ledger.getEvent(r.idHex))?.idHex).toBe(r.idHex)
        expect(await ledger.reservationState(r.idHex)).toBe('committed')
        expect(await ledger.highWaterMarks()).toEqual({ [a.hex]: 2 })
        expect(await ledger.recordEvent(r)).toEqual({ inserted: false })
        expect(await ledger.reservationState(r.idHex)).toBe('committed')
      })

      it('indexes a committed reservation whose (origin, seq) holds another event', async () => {
        const a = new Origin()
        const first = a.reservation({ seq: 1 })
        const other = a.reservation({ seq: 1 })
        await ledger.recordEvent(first)
        const commit = a.commit(other, 'isolated', 2)
        expect(await ledger.recordEvent(commit)).toEqual({ inserted: true })
        // the first event keeps the slot; the Commit still proves the other nullifier was used
        expect((await ledger.getEventAt(a.hex, 1))?.idHex).toBe(first.idHex)
        expect(await ledger.getEvent(other.idHex)).toBeUndefined()
        expect(await ledger.reservationState(other.idHex)).toBe('committed')
        expect(await ledger.nullifier(toHex(other.event.nullifier))).toEqual([
          { reservationId: other.idHex, state: 'committed' },
        ])
        expect(await ledger.cardExposure(toHex(other.event.cardKey), 'EUR', 0)).toEqual({
          amountMinor: 1000,
          count: 1,
        })
        expect((await ledger.pendingReservations(a.hex)).map((e) => e.idHex)).toEqual([first.idHex])
        expect(await ledger.highWaterMarks()).toEqual({ [a.hex]: 2 })
      })

      it('records many events in one batch, with dependencies and duplicates inside it', async () => {
        const a = new Origin()
        const b = new Origin()
        const r1 = a.reservation()
        const c1 = a.commit(r1)
        const r2 = b.reservation()
        const x2 = b.release(r2)
        const r3 = b.reservation()
        const result = await ledger.recordEvents([r1, c1, r2, x2, r3, r1, c1])
        expect(result).toEqual({ inserted: 5, conflicts: 0 })
        expect(await ledger.reservationState(r1.idHex)).toBe('committed')
        expect(await ledger.reservationState(r2.idHex)).toBe('released')
        expect(await ledger.reservationState(r3.idHex)).toBe('reserved')
        expect((await ledger.pendingReservations(b.hex)).map((e) => e.idHex)).toEqual([r3.idHex])
        const forged = b.reservation({ seq: 3 })
        expect(await ledger.recordEvents([forged])).toEqual({ inserted: 0, conflicts: 1 })
        expect(await ledger.highWaterMarks()).toEqual({ [a.hex]: 2, [b.hex]: 3 })
      })
    })

    describe('nullifiers and reservation states', () => {
      it('indexes every reservation of a nullifier with its state', async () => {
        const a = new Origin()
        const b = new Origin()
        const nullifier = newBytes(32)
        const n = toHex(nullifier)
        const r1 = a.reservation({ nullifier })
        await ledger.recordEvent(r1)
        expect(await ledger.nullifier(n)).toEqual([{ reservationId: r1.idHex, state: 'reserved' }])
        expect(await ledger.reservationState(r1.idHex)).toBe('reserved')

        await ledger.recordEvent(a.release(r1))
        expect(await ledger.nullifier(n)).toEqual([{ reservationId: r1.idHex, state: 'released' }])

        const r2 = b.reservation({ nullifier })
        await ledger.recordEvent(r2)
        await ledger.recordEvent(b.commit(r2))
        const uses = await ledger.nullifier(n)
        expect(uses).toHaveLength(2)
        expect(uses).toContainEqual({ reservationId: r1.idHex, state: 'released' })
        expect(uses).toContainEqual({ reservationId: r2.idHex, state: 'committed' })
        expect(await ledger.nullifier(toHex(newBytes(32)))).toEqual([])
        expect(await ledger.reservationState('cd'.repeat(32))).toBeUndefined()
      })

      it('a Commit is final: a later Release does not undo it', async () => {
        const a = new Origin()
        const r = a.reservation()
        await ledger.recordEvent(r)
        await ledger.recordEvent(a.commit(r))
        expect(await ledger.recordEvent(a.release(r))).toEqual({ inserted: true })
        expect(await ledger.reservationState(r.idHex)).toBe('committed')
        expect(await ledger.nullifier(toHex(r.event.nullifier))).toEqual([
          { reservationId: r.idHex, state: 'committed' },
        ])
      })

      it('a Release that arrives before its Reservation wins when the Reservation comes', async () => {
        const a = new Origin()
        const r = a.reservation()
        const x = a.release(r)
        await ledger.recordEvent(x)
        expect(await ledger.reservationState(r.idHex)).toBe('released')
        expect(await ledger.highWaterMarks()).toEqual({ [a.hex]: 0 })
        await ledger.recordEvent(r, { held: true })
        expect(await ledger.reservationState(r.idHex)).toBe('released')
        expect(await ledger.nullifier(toHex(r.event.nullifier))).toEqual([
          { reservationId: r.idHex, state: 'released' },
        ])
        expect(await ledger.pendingReservations(a.hex)).toEqual([])
        expect(await ledger.isHeld(r.idHex)).toBe(false)
        expect(await ledger.cardExposure(toHex(r.event.cardKey), 'EUR', 0)).toEqual({
          amountMinor: 0,
          count: 0,
        })
      })

      it('records held and the ack given, also for an event already present', async () => {
        const a = new Origin()
        const me = new Origin()
        const r = a.reservation()
        await ledger.recordEvent(r)
        expect(await ledger.isHeld(r.idHex)).toBe(false)
        expect(await ledger.ackGiven(r.idHex)).toBeUndefined()
        const ack = me.ack(r)
        expect(await ledger.recordEvent(r, { held: true, ackGiven: ack })).toEqual({ inserted: false })
        expect(await ledger.isHeld(r.idHex)).toBe(true)
        expect((await ledger.ackGiven(r.idHex))?.bytes).toEqual(ack.bytes)
        await ledger.recordEvent(a.release(r))
        expect(await ledger.isHeld(r.idHex)).toBe(false)
      })
    })

    describe('card exposure', () => {
      it('sums committed and held-unreleased reservations of a card in a currency and window', async () => {
        const a = new Origin()
        const b = new Origin()
        const cardKey = newBytes(16)
        const card = toHex(cardKey)
        const committed = a.reservation({ cardKey, ts: T0, amountMinor: 100 })
        const held = b.reservation({ cardKey, ts: T0 + 10, amountMinor: 20 })
        const heldReleased = b.reservation({ cardKey, ts: T0 + 20, amountMinor: 3000 })
        const notHeld = a.reservation({ cardKey, ts: T0 + 30, amountMinor: 4000 })
        const otherCurrency = a.reservation({ cardKey, ts: T0 + 40, amountMinor: 5000, currency: 'USD' })
        const old = a.reservation({ cardKey, ts: T0 - 1000, amountMinor: 6000 })
        const otherCard = a.reservation({ ts: T0, amountMinor: 7000 })

        await ledger.recordEvent(committed)
        await ledger.recordEvent(a.commit(committed))
        await ledger.recordEvent(held, { held: true })
        await ledger.recordEvent(heldReleased, { held: true })
        expect(await ledger.cardExposure(card, 'EUR', T0)).toEqual({ amountMinor: 3120, count: 3 })
        await ledger.recordEvent(b.release(heldReleased))
        await ledger.recordEvent(notHeld)
        await ledger.recordEvent(otherCurrency, { held: true })
        await ledger.recordEvent(old)
        await ledger.recordEvent(a.commit(old))
        await ledger.recordEvent(a.commit(otherCard))

        expect(await ledger.cardExposure(card, 'EUR', T0)).toEqual({ amountMinor: 120, count: 2 })
        expect(await ledger.cardExposure(card, 'EUR', T0 + 5)).toEqual({ amountMinor: 20, count: 1 })
        expect(await ledger.cardExposure(card, 'EUR', T0 - 5000)).toEqual({ amountMinor: 6120, count: 3 })
        expect(await ledger.cardExposure(card, 'EUR', T0 + 11)).toEqual({ amountMinor: 0, count: 0 })
        expect(await ledger.cardExposure(card, 'USD', 0)).toEqual({ amountMinor: 5000, count: 1 })
        // a held reservation that is then committed is counted once
        await ledger.recordEvent(b.commit(held))
        expect(await ledger.cardExposure(card, 'EUR', T0)).toEqual({ amountMinor: 120, count: 2 })
      })
    })

    describe('high-water marks and catch-up', () => {
      it('tracks the contiguous high-water mark across gaps and restarts', async () => {
        const a = new Origin()
        const evs = Array.from({ length: 7 }, () => a.reservation())
        for (const i of [0, 1, 3, 4]) await ledger.recordEvent(evs[i]!)
        expect(await ledger.highWaterMarks()).toEqual({ [a.hex]: 2 })
        expect(await ledger.nextSeq(a.hex)).toBe(6)
        expect(await ledger.nextSeq(new Origin().hex)).toBe(1)
        await ledger.recordEvent(evs[6]!)
        await reopen()
        expect(await ledger.highWaterMarks()).toEqual({ [a.hex]: 2 })
        expect(await ledger.nextSeq(a.hex)).toBe(8)
        await ledger.recordEvent(evs[2]!)
        expect(await ledger.highWaterMarks()).toEqual({ [a.hex]: 5 })
        await ledger.recordEvent(evs[5]!)
        expect(await ledger.highWaterMarks()).toEqual({ [a.hex]: 7 })
        expect(await ledger.stats()).toEqual({ events: 7, payments: 0, origins: 1 })
      })

      it('lists events after marks, ordered by origin then seq, with and without a limit', async () => {
        const origins = [new Origin(), new Origin(), new Origin()].sort((x, y) => (x.hex < y.hex ? -1 : 1))
        const [a, b, c] = origins as [Origin, Origin, Origin]
        const recorded = new Map<string, string[]>()
        for (const o of origins) {
          const evs = Array.from({ length: 4 }, () => o.reservation())
          recorded.set(
            o.hex,
            evs.map((e) => e.idHex),
          )
          // newest first: the order of arrival must not matter
          for (const ev of [...evs].reverse()) await ledger.recordEvent(ev)
        }
        const ids = (evs: { idHex: string }[]): string[] => evs.map((e) => e.idHex)

        const everything = await collect(ledger.eventsAfter({}))
        expect(ids(everything)).toEqual([
          ...recorded.get(a.hex)!,
          ...recorded.get(b.hex)!,
          ...recorded.get(c.hex)!,
        ])
        expect(ids(await collect(ledger.events()))).toEqual(ids(everything))
        expect(ids(await collect(ledger.events({ origin: b.hex })))).toEqual(recorded.get(b.hex))

        const after = await collect(ledger.eventsAfter({ [a.hex]: 3, [b.hex]: 4, [c.hex]: 1 }))
        expect(ids(after)).toEqual([recorded.get(a.hex)![3], ...recorded.get(c.hex)!.slice(1)])

        const limited = await collect(ledger.eventsAfter({ [a.hex]: 1 }, { limit: 5 }))
        expect(ids(limited)).toEqual([...recorded.get(a.hex)!.slice(1), ...recorded.get(b.hex)!.slice(0, 2)])
        expect(await collect(ledger.eventsAfter({}, { limit: 0 }))).toEqual([])
        expect(await collect(ledger.eventsAfter(await ledger.highWaterMarks()))).toEqual([])
      })

      it('states the seqs held past a gap, and leaves them out of the events after the marks [catch-up held ranges]', async () => {
        const [a, b] = [new Origin(), new Origin()].sort((x, y) => (x.hex < y.hex ? -1 : 1)) as [
          Origin,
          Origin,
        ]
        const as = Array.from({ length: 10 }, () => a.reservation())
        const bs = Array.from({ length: 3 }, () => b.reservation())
        // a: 1–2, 4–6, 9 held (3, 7, 8, 10 missing); b: 1–3
        for (const i of [0, 1, 3, 4, 5, 8]) await ledger.recordEvent(as[i]!)
        for (const e of bs) await ledger.recordEvent(e)
        const have = await ledger.catchupSummary(16)
        expect(have).toEqual({ marks: { [a.hex]: 2, [b.hex]: 3 }, held: { [a.hex]: [4, 6, 9, 9] } })
        // capped: the lowest ranges only (a range left out is only resent)
        expect((await ledger.catchupSummary(1)).held).toEqual({ [a.hex]: [4, 6] })
        expect((await ledger.catchupSummary(0)).held).toEqual({})
        await reopen()
        expect(await ledger.catchupSummary(16)).toEqual(have)
        // a peer holding everything answers a request with only what the asker misses, in seq order
        const peerDir = backend === 'level' ? await tempDir() : `memory:${Math.random()}`
        const full = createLedger({ path: peerDir, backend })
        await full.open()
        try {
          for (const e of [...as, ...bs]) await full.recordEvent(e)
          const ids = (evs: { idHex: string }[]): string[] => evs.map((e) => e.idHex)
          const answer = await collect(full.eventsAfter(have.marks, { held: have.held }))
          expect(ids(answer)).toEqual(ids([as[2]!, as[6]!, as[7]!, as[9]!]))
          // without the held ranges (a peer running the code before them): everything past the gap
          expect(ids(await collect(full.eventsAfter(have.marks)))).toEqual(ids(as.slice(2)))
          expect(ids(await collect(full.eventsAfter(have.marks, { held: have.held, limit: 2 })))).toEqual(
            ids([as[2]!, as[6]!]),
          )
          // ranges past the last seq, or past what keys can hold, are harmless
          const far = { [a.hex]: [4, 6, 9, 9, 50, 2 ** 40] }
          expect(ids(await collect(full.eventsAfter(have.marks, { held: far })))).toEqual(ids(answer))
        } finally {
          await full.close()
          if (backend === 'level') await removeDir(peerDir)
        }
      })

      it('lists pending reservations of an origin: neither committed nor released', async () => {
        const me = new Origin()
        const peer = new Origin()
        const r1 = me.reservation()
        const r2 = me.reservation()
        const r3 = me.reservation()
        const r4 = me.reservation()
        for (const r of [r1, r2, r3, r4]) await ledger.recordEvent(r, { held: true })
        await ledger.recordEvent(peer.reservation())
        await ledger.recordEvent(me.commit(r1))
        await ledger.recordEvent(me.release(r3))
        expect((await ledger.pendingReservations(me.hex)).map((e) => e.idHex)).toEqual([r2.idHex, r4.idHex])
        expect(await ledger.pendingReservations(peer.hex)).toHaveLength(1)
        expect(await ledger.pendingReservations(new Origin().hex)).toEqual([])
      })
    })

    describe('payments', () => {
      it('stores records and finds them by id, idempotency key and status', async () => {
        const p1 = {
          id: 'pay-1',
          idempotencyKey: 'idem-1',
          status: 'pending',
          createdAt: T0,
          amountMinor: 100,
        }
        const p2 = {
          id: 'pay-2',
          idempotencyKey: 'idem-2',
          status: 'pending',
          createdAt: T0 + 1,
          meta: { a: [1] },
        }
        await ledger.putPayment(p1)
        await ledger.putPayment(p2)
        expect(await ledger.getPayment('pay-1')).toEqual(p1)
        expect(await ledger.getPaymentByIdempotencyKey('idem-2')).toEqual(p2)
        expect(await ledger.getPayment('nope')).toBeUndefined()
        expect(await ledger.getPaymentByIdempotencyKey('nope')).toBeUndefined()
        expect(await collect(ledger.payments({ status: 'pending' }))).toEqual([p1, p2])

        await ledger.putPayment({ ...p1, status: 'approved' })
        expect((await collect(ledger.payments({ status: 'pending' }))).map((p) => p.id)).toEqual(['pay-2'])
        expect((await collect(ledger.payments({ status: 'approved' }))).map((p) => p.id)).toEqual(['pay-1'])
        expect((await collect(ledger.payments())).map((p) => p.id)).toEqual(['pay-1', 'pay-2'])
        expect(await collect(ledger.payments({ limit: 1 }))).toHaveLength(1)
        expect(await collect(ledger.payments({ status: 'pending', limit: 0 }))).toEqual([])
        expect(await ledger.stats()).toMatchObject({ payments: 2 })

        await expect(
          ledger.putPayment({ id: 'pay-3', idempotencyKey: 'idem-1', status: 'pending', createdAt: T0 }),
        ).rejects.toMatchObject({ code: 'ERR_IDEMPOTENCY_CONFLICT' })
        await expect(
          ledger.putPayment({ id: 'pay-4', idempotencyKey: 'x', status: 'a!b', createdAt: T0 }),
        ).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
        expect(await ledger.getPayment('pay-3')).toBeUndefined()
      })

      it('writes an event and its payment in one batch, or neither', async () => {
        const me = new Origin()
        const r = me.reservation()
        const payment = { id: 'pay-1', idempotencyKey: 'idem-1', status: 'reserved', createdAt: T0 }
        await ledger.recordEvent(r, { held: true, payment })
        await reopen()
        expect(await ledger.getPayment('pay-1')).toEqual(payment)
        expect(await ledger.isHeld(r.idHex)).toBe(true)

        // the payment's idempotency key is taken: the whole batch is refused
        const r2 = me.reservation()
        const clash = { id: 'pay-2', idempotencyKey: 'idem-1', status: 'reserved', createdAt: T0 }
        await expect(ledger.recordEvent(r2, { held: true, payment: clash })).rejects.toMatchObject({
          code: 'ERR_IDEMPOTENCY_CONFLICT',
        })
        expect(await ledger.getEvent(r2.idHex)).toBeUndefined()
        expect(await ledger.nullifier(toHex(r2.event.nullifier))).toEqual([])
        expect(await ledger.highWaterMarks()).toEqual({ [me.hex]: 1 })
        expect(await ledger.nextSeq(me.hex)).toBe(2)
        expect(await ledger.getPayment('pay-2')).toBeUndefined()
        // and it can be recorded afterwards
        expect(await ledger.recordEvent(r2)).toEqual({ inserted: true })
      })
    })

    describe('cursors', () => {
      it('gets and sets named values', async () => {
        expect(await ledger.getCursor('central')).toBeUndefined()
        await ledger.setCursor('central', '42')
        await ledger.setCursor('central', '43', { sync: true })
        await ledger.setCursor('other', '')
        expect(await ledger.getCursor('central')).toBe('43')
        expect(await ledger.getCursor('other')).toBe('')
      })

      it('keeps the relearning mark across a reopen, and orders it after the calls made before it', async () => {
        expect(await ledger.relearning()).toBe(false)
        await ledger.setRelearning(true)
        await reopen()
        expect(await ledger.relearning()).toBe(true)
        // a refill written without fsync, then the mark cleared: the refill's calls finish first
        const a = new Origin()
        const refill = Array.from({ length: 30 }, () => a.reservation())
        const writes = refill.map((e) => ledger.recordEvents([e], { sync: false }))
        let written = 0
        for (const w of writes) void w.then(() => written++)
        await ledger.setRelearning(false)
        expect(written).toBe(refill.length)
        await reopen()
        expect(await ledger.relearning()).toBe(false)
        expect(await ledger.highWaterMarks()).toEqual({ [a.hex]: 30 })
      })

      it('keeps what was learned back with the cleared mark, across a reopen, never lowered', async () => {
        expect(await ledger.learnedThrough()).toBe(0)
        await ledger.setRelearning(true)
        await ledger.setRelearning(false, { learnedThrough: 61 })
        await reopen()
        expect(await ledger.relearning()).toBe(false)
        expect(await ledger.learnedThrough()).toBe(61)
        await ledger.setRelearning(true)
        await ledger.setRelearning(false, { learnedThrough: 4 })
        expect(await ledger.learnedThrough()).toBe(61)
        await expect(ledger.setRelearning(true, { learnedThrough: 5 })).rejects.toMatchObject({
          code: 'ERR_INVALID_ARGUMENT',
        })
        await expect(ledger.setRelearning(false, { learnedThrough: -1 })).rejects.toMatchObject({
          code: 'ERR_INVALID_ARGUMENT',
        })
      })
    })

    describe('confirmation and pruning', () => {
      it('prunes only confirmed bodies, keeps nullifiers, stops at a pending reservation', async () => {
        const a = new Origin()
        const r1 = a.reservation()
        const c1 = a.commit(r1)
        const r2 = a.reservation() // stays pending
        const r3 = a.reservation()
        const x3 = a.release(r3)
        for (const ev of [r1, c1, r2, r3, x3]) await ledger.recordEvent(ev, { ackGiven: a.ack(r1) })

        expect(await ledger.prune()).toEqual({ pruned: 0 })
        await ledger.markConfirmed({ [a.hex]: 5 })
        await ledger.markConfirmed({ [a.hex]: 1 })
        expect(await ledger.confirmedMarks()).toEqual({ [a.hex]: 5 })
        expect(await ledger.prune()).toEqual({ pruned: 2 })
        expect(await ledger.getEvent(r1.idHex)).toBeUndefined()
        expect(await ledger.getEvent(c1.idHex)).toBeUndefined()
        expect(await ledger.ackGiven(r1.idHex)).toBeUndefined()
        expect((await ledger.getEvent(r2.idHex))?.idHex).toBe(r2.idHex)
        expect(await ledger.nullifier(toHex(r1.event.nullifier))).toEqual([
          { reservationId: r1.idHex, state: 'committed' },
        ])
        expect(await ledger.reservationState(r1.idHex)).toBe('committed')
        expect(await ledger.cardExposure(toHex(r1.event.cardKey), 'EUR', 0)).toEqual({
          amountMinor: 1000,
          count: 1,
        })
        expect(await ledger.stats()).toEqual({ events: 3, payments: 0, origins: 1 })
        // a pruned event is known: re-recording it is a no-op
        expect(await ledger.recordEvent(r1)).toEqual({ inserted: false })
        expect(await ledger.highWaterMarks()).toEqual({ [a.hex]: 5 })
        expect(await ledger.nextSeq(a.hex)).toBe(6)
        expect((await collect(ledger.events())).map((e) => e.event.seq)).toEqual([3, 4, 5])

        await ledger.recordEvent(a.commit(r2))
        await reopen()
        expect(await ledger.prune({ limit: 1 })).toEqual({ pruned: 1 })
        expect(await ledger.prune()).toEqual({ pruned: 2 })
        expect((await collect(ledger.events())).map((e) => e.event.seq)).toEqual([6])
        expect(await ledger.stats()).toEqual({ events: 1, payments: 0, origins: 1 })
        expect(await ledger.nullifier(toHex(r3.event.nullifier))).toEqual([
          { reservationId: r3.idHex, state: 'released' },
        ])
      })
    })
  })
}
