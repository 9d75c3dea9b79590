import { randomBytes } from 'node:crypto'
import type { CentralService } from '@nullmesh/central'
import { loadTerminalKey } from '@nullmesh/policy'
import { fromBase64url, fromHex, signEvent, toHex, verifyProof } from '@nullmesh/protocol'
import {
  type CentralLink,
  type CentralSyncResult,
  createHttpCentralLink,
  type Terminal,
  TerminalError,
  type TerminalEvent,
} from '@nullmesh/terminal'
import { afterEach, describe, expect, test } from 'vitest'
import {
  card,
  FAST,
  freePort,
  payment,
  startCentral,
  startVenue,
  type TestVenue,
  waitFor,
  wrapCentralLink,
} from './helpers.js'

interface Recorded {
  batches: Uint8Array[][]
}

/** The HTTP link, recording every sync batch it sends. */
function recordingLink(url: string, rec: Recorded): CentralLink {
  const inner = createHttpCentralLink({ url })
  return wrapCentralLink(url, {
    async sync(events, o): Promise<CentralSyncResult> {
      rec.batches.push(events)
      return inner.sync(events, o)
    },
  })
}

let venue: TestVenue | undefined
let central: CentralService | undefined
afterEach(async () => {
  await venue?.cleanup()
  await central?.stop()
  venue = undefined
  central = undefined
})

function collect(t: Terminal): TerminalEvent[] {
  const events: TerminalEvent[] = []
  t.addEventListener('event', (e) => events.push(e.detail))
  return events
}

describe('sync agent against the real central service', () => {
  test('offline approvals settle exactly once when central comes back, in ordered batches of ≤ 50', async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const recs: Recorded[] = [{ batches: [] }, { batches: [] }, { batches: [] }]
    venue = await startVenue(3, { init: (i) => ({ central: recordingLink(url, recs[i]!), ...FAST }) })
    const [t1] = venue.terminals
    const events = collect(t1!)
    expect(t1!.online).toBe(false)

    // central is down: prefer_online payments take the offline path and queue
    const approved: { terminal: number; paymentId: string }[] = []
    for (let i = 0; i < 36; i++) {
      const r = await venue.terminals[i % 3]!.pay(payment({ amountMinor: 100 + i }))
      expect(r.status).toBe('approved_offline')
      approved.push({ terminal: i % 3, paymentId: r.paymentId })
    }
    expect(t1!.status().queue).toEqual({ count: 12, amountsByCurrency: { EUR: expect.any(Number) } })

    central = await startCentral(venue, port)
    await waitFor(async () => {
      for (const a of approved) {
        const p = await venue!.terminals[a.terminal]!.payment(a.paymentId)
        if (p?.settlement.status !== 'completed') return false
      }
      return true
    }, 20_000)

    // each approval is settled once at central
    const atCentral = await central.listPayments({ venue: 'test-venue', limit: 1000 })
    const byId = new Map(atCentral.map((p) => [p.paymentId, p]))
    for (const a of approved) expect(byId.get(a.paymentId)?.status).toBe('completed')
    expect(atCentral.filter((p) => p.status === 'completed')).toHaveLength(approved.length)

    // a payment can settle through a peer's sync before its own terminal has flushed everything:
    // wait until every terminal's cursor reached the end of every origin's log
    for (const t of venue.terminals) {
      await waitFor(
        async () =>
          JSON.stringify(await t.ledger.confirmedMarks()) === JSON.stringify(await t.ledger.highWaterMarks()),
        10_000,
      )
    }
    // batches of at most 50, each origin's events in seq order, the terminal's own first
    for (const [i, rec] of recs.entries()) {
      expect(rec.batches.length).toBeGreaterThanOrEqual(2)
      const lastSeq = new Map<string, number>()
      for (const batch of rec.batches) {
        expect(batch.length).toBeLessThanOrEqual(50)
        for (const bytes of batch) {
          const { decodeEvent } = await import('@nullmesh/protocol')
          const d = decodeEvent(bytes)
          if (!d.ok) throw d.error
          const origin = toHex(d.value.event.origin)
          expect(d.value.event.seq).toBeGreaterThan(lastSeq.get(origin) ?? 0)
          lastSeq.set(origin, d.value.event.seq)
        }
      }
      const first = (await import('@nullmesh/protocol')).decodeEvent(rec.batches[0]![0]!)
      expect(first.ok && toHex(first.value.event.origin)).toBe(venue.bundle.roster[i]!.publicKeyHex)
      // the cursor reached the end of every origin's log
      const t = venue.terminals[i]!
      expect(await t.ledger.confirmedMarks()).toEqual(await t.ledger.highWaterMarks())
      // the status counters move when a record's write completes, which a reader of the record
      // (a synchronous LevelDB read) can see a moment before: wait for them
      await waitFor(() => t.status().settlement.completed === 12, 10_000)
      expect(t.status().queue.count).toBe(0)
      expect(t.status().settlement).toEqual({ forwarded: 0, completed: 12, failed: 0 })
    }

    // the statuses were surfaced as events
    expect(events.some((e) => e.type === 'connectivity' && e.data.online === true)).toBe(true)
    const types = new Set(events.map((e) => e.type))
    expect(types).toContain('payment.forwarded')
    expect(types).toContain('payment.completed')
  })

  test('a terminal whose data directory is lost after approving: its payments settle from its peers’ ledgers', async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    venue = await startVenue(3, { init: () => ({ central: createHttpCentralLink({ url }), ...FAST }) })
    const [t1, t2, t3] = venue.terminals
    const approved: string[] = []
    for (let i = 0; i < 10; i++) {
      const r = await t3!.pay(payment({ amountMinor: 300 + i }))
      expect(r.status).toBe('approved_offline')
      approved.push(r.paymentId)
    }
    // the quorum holds every reservation, and the commits reach the peers by gossip
    await waitFor(async () => {
      for (const id of approved) {
        if ((await t1!.ledger.reservationState(id)) !== 'committed') return false
        if ((await t2!.ledger.reservationState(id)) !== 'committed') return false
      }
      return true
    }, 10_000)
    // T3 is lost with its disk before it ever reached central
    await t3!.stop()
    const { rm } = await import('node:fs/promises')
    await rm(venue.inits[2]!.dataDir, { recursive: true, force: true })

    central = await startCentral(venue, port)
    await waitFor(async () => {
      for (const id of approved) if ((await central!.getPayment(id))?.status !== 'completed') return false
      return true
    }, 20_000)
    const atCentral = await central.listPayments({ venue: 'test-venue', limit: 1000 })
    expect(atCentral.filter((p) => approved.includes(p.paymentId) && p.status === 'completed')).toHaveLength(
      10,
    )
  })

  test('interrupted batches: nothing lost, nothing settled twice', async () => {
    venue = await startVenue(3, { waitQuorum: true })
    central = await startCentral(venue)
    const url = central.url
    // T1 restarts with a link that fails: before sending, after central stored (answer lost), twice each
    const inner = createHttpCentralLink({ url })
    let calls = 0
    const flaky = wrapCentralLink(url, {
      async sync(events, o) {
        calls++
        if (calls === 1 || calls === 3)
          throw new TerminalError('central_unavailable', 'connection reset before the request')
        const answer = await inner.sync(events.slice(0, calls === 2 ? events.length : events.length), o)
        if (calls === 2 || calls === 4)
          throw new TerminalError('central_unavailable', 'connection reset before the answer')
        return answer
      },
    })
    // payments while T1 has no link at all: they queue
    const paid: string[] = []
    for (let i = 0; i < 30; i++)
      paid.push((await venue.terminals[0]!.pay(payment({ amountMinor: 200 + i }))).paymentId)
    await venue.terminals[0]!.stop()
    venue.inits[0] = { ...venue.inits[0]!, central: flaky, ...FAST }
    const t1 = await venue.restart(0)
    await waitFor(async () => {
      for (const id of paid) if ((await t1.payment(id))?.settlement.status !== 'completed') return false
      return true
    }, 20_000)
    expect(calls).toBeGreaterThan(4)

    // nothing lost: every event of T1's ledger is already at central
    const all = []
    for await (const e of t1.ledger.events()) all.push(e.bytes)
    const again = await central.ingest(all)
    expect(again.results.every((r) => r.status === 'duplicate')).toBe(true)
    // nothing settled twice
    const issuer = central.issuer as unknown as { decisions(): { paymentId: string }[] }
    const charged = issuer.decisions().map((d) => d.paymentId)
    expect(new Set(charged).size).toBe(charged.length)
    for (const id of paid) expect(charged.filter((c) => c === id)).toHaveLength(1)
  })

  test('[status poll batched] settlement states are asked for many payments per request; a central without the route is asked one by one', async () => {
    venue = await startVenue(3, { waitQuorum: true })
    central = await startCentral(venue)
    const url = central.url
    const inner = createHttpCentralLink({ url })
    const calls = { one: 0, many: [] as number[] }
    const counting = (batch: boolean): CentralLink =>
      wrapCentralLink(url, {
        payment(id, o) {
          calls.one++
          return inner.payment(id, o)
        },
        async payments(ids, o) {
          calls.many.push(ids.length)
          if (!batch)
            throw new TerminalError('central_rejected', 'Route POST:/v1/payments/status not found', {
              upstreamStatus: 404,
            })
          return inner.payments!(ids, o)
        },
      })
    for (const batch of [true, false]) {
      calls.one = 0
      calls.many = []
      // payments while T1 has no link: they queue, then settle through the link
      await venue.terminals[0]!.stop()
      venue.inits[0] = { ...venue.inits[0]!, central: undefined, centralUrl: undefined }
      let t1 = await venue.restart(0)
      const paid: string[] = []
      for (let i = 0; i < 12; i++) paid.push((await t1.pay(payment({ amountMinor: 300 + i }))).paymentId)
      await t1.stop()
      venue.inits[0] = { ...venue.inits[0]!, central: counting(batch), ...FAST }
      t1 = await venue.restart(0)
      await waitFor(async () => {
        for (const id of paid) if ((await t1.payment(id))?.settlement.status !== 'completed') return false
        return true
      }, 20_000)
      if (batch) {
        expect(calls.one).toBe(0)
        expect(Math.max(...calls.many)).toBeGreaterThan(1)
      } else {
        expect(calls.many).toHaveLength(1) // tried once, then one by one
        expect(calls.one).toBeGreaterThan(0)
      }
    }
  })

  test('online path, force_offline while online, and the deny list', async () => {
    // the longest tap budget and online timeout: central's answer must not time out on a loaded
    // machine (what is tested is the path taken, not its speed)
    venue = await startVenue(3, { policy: { tapBudgetMs: 10_000 } })
    central = await startCentral(venue)
    // restart T1 with the central link
    await venue.terminals[0]!.stop()
    venue.inits[0] = { ...venue.inits[0]!, centralUrl: central.url, ...FAST, onlineTimeoutMs: 10_000 }
    const t1 = await venue.restart(0)
    await waitFor(() => t1.online, 5_000)

    const online = await t1.pay(payment({ amountMinor: 12_345 }))
    expect(online).toMatchObject({ status: 'approved_online', mode: 'online', queued: false })
    const proof = verifyProof(
      fromBase64url(online.proof),
      fromHex(online.nullifier),
      venue.bundle.roster[0]!.publicKey,
    )
    expect(proof.ok && proof.value.decision).toBe('approved_online')
    expect((await central.getPayment(online.paymentId))?.status).toBe('completed')
    expect((await t1.payment(online.paymentId))?.settlement.status).toBe('completed')

    const required = await t1.pay(payment({ offlineBehavior: 'require_online' }))
    expect(required.status).toBe('approved_online')

    const forced = await t1.pay(payment({ offlineBehavior: 'force_offline' }))
    expect(forced).toMatchObject({ status: 'approved_offline', queued: true })
    await waitFor(async () => (await t1.payment(forced.paymentId))?.settlement.status === 'completed', 10_000)

    // the deny list: central signs it, the terminal verifies it and applies it offline
    const blockedCard = card()
    const { computeCardKey } = await import('@nullmesh/protocol')
    await central.updateDenylist('test-venue', {
      blockedBins: ['55554444'],
      denylistCardKeys: [toHex(computeCardKey(venue.bundle.hashingKey, blockedCard))],
    })
    await t1.syncNow()
    const denied = await t1.pay(payment({ cardToken: blockedCard, offlineBehavior: 'force_offline' }))
    expect(denied).toMatchObject({ status: 'declined_offline', declineCode: 'denylisted_card' })
    const bin = await t1.pay(payment({ cardToken: '5555444412345678', offlineBehavior: 'force_offline' }))
    expect(bin).toMatchObject({ status: 'declined_offline', declineCode: 'blocked_bin' })
    // and it survives a restart (kept in the ledger)
    const again = await venue.restart(0)
    const stillDenied = await again.pay(payment({ cardToken: blockedCard, offlineBehavior: 'force_offline' }))
    expect(stillDenied.declineCode).toBe('denylisted_card')
  })

  test('central goes away: offline at once, back online with backoff, queue flushed', async () => {
    venue = await startVenue(3)
    const port = await freePort()
    central = await startCentral(venue, port, 'central-a')
    await venue.terminals[0]!.stop()
    venue.inits[0] = {
      ...venue.inits[0]!,
      centralUrl: `http://127.0.0.1:${port}`,
      ...FAST,
      sync: { ...FAST.sync, prune: true },
    }
    const t1 = await venue.restart(0)
    const events = collect(t1)
    await waitFor(() => t1.online, 5_000)

    await central.stop()
    central = undefined
    const during = await t1.pay(payment())
    expect(during).toMatchObject({ status: 'approved_offline', queued: true })
    expect(t1.online).toBe(false)
    const refused = await t1.pay(payment({ offlineBehavior: 'require_online' }))
    expect(refused).toMatchObject({ status: 'declined_offline', declineCode: 'offline_not_allowed' })
    expect(events.some((e) => e.type === 'connectivity' && e.data.online === false)).toBe(true)

    central = await startCentral(venue, port, 'central-a')
    // from central answering (not from its start, which a loaded machine makes slow): the backoff is
    // capped at 250 ms in this test (5 s by default), so a few probes find it
    const t0 = Date.now()
    await waitFor(() => t1.online, 5_000)
    expect(Date.now() - t0).toBeLessThan(2_000)
    await waitFor(async () => (await t1.payment(during.paymentId))?.settlement.status === 'completed', 10_000)
    expect(t1.status().queue.count).toBe(0)
    // prune: on, so the bodies central confirmed are gone, and nothing else
    await waitFor(async () => (await t1.ledger.stats()).events === 0, 5_000)
    const confirmed = await t1.ledger.confirmedMarks()
    expect(confirmed).toEqual(await t1.ledger.highWaterMarks())
    expect(await t1.ledger.reservationState(during.paymentId)).toBe('committed')
  })
  test('[past a hole] events past a seq this ledger lacks still reach central; the hole is sent once filled', async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    venue = await startVenue(2, { init: () => ({ centralUrl: url, ...FAST }) })
    central = await startCentral(venue, port)
    // T2 is gone (its disk lost, say); its events live on in T1's ledger, all but seq 3, which
    // never left T2 and died with its disk: no ledger will ever hold it
    await venue.terminals[1]!.stop()
    const t1 = venue.terminals[0]!
    const key = await loadTerminalKey(venue.bundle.dir, 'T2')
    const origin = toHex(key.publicKey)
    const sign = (seq: number) =>
      signEvent(key, {
        type: 'reservation',
        venue: venue!.bundle.venueId,
        origin: key.publicKey,
        seq,
        ts: Date.now(),
        nullifier: randomBytes(32),
        cardKey: randomBytes(16),
        amountMinor: 500,
        currency: 'EUR',
        method: 'contactless',
        policyVersion: venue!.bundle.policy.version,
      })
    const events = [1, 2, 3, 4, 5].map(sign)
    for (const e of events) if (e.event.seq !== 3) await t1.ledger.recordEvent(e)
    const holeAt = Date.now()
    await t1.syncNow()
    const atCentral = async (seq: number) => (await central!.store.getEvent(origin, seq)) !== undefined
    expect([
      await atCentral(1),
      await atCentral(2),
      await atCentral(3),
      await atCentral(4),
      await atCentral(5),
    ]).toEqual([true, true, false, true, true])
    // the durable cursor stays before the hole; what lies past it is not sent again
    expect((await t1.ledger.confirmedMarks())[origin]).toBe(2)
    // and the ledger may checkpoint: everything it holds reached central (abandonment needs every
    // live ledger's checkpoint, so a hole must not keep it from sending one)
    const checkpoints = await central.store.listCheckpoints(venue.bundle.venueId)
    const mine = checkpoints.find((c) => c.terminal === t1.publicKeyHex)
    expect(mine?.at).toBeGreaterThanOrEqual(holeAt)
    expect((await t1.syncNow()).sent).toBe(0)
    // catch-up brings seq 3 after all: it is sent, and the cursor passes the whole run
    await t1.ledger.recordEvent(events[2]!)
    await t1.syncNow()
    expect(await atCentral(3)).toBe(true)
    expect((await t1.ledger.confirmedMarks())[origin]).toBe(5)
    // a long gap (a terminal that missed 600 events) filled at once: sent in batches within the
    // batch size, never one request above central's 500
    const later = Array.from({ length: 602 }, (_, i) => sign(6 + i))
    await t1.ledger.recordEvent(later[601]!)
    await t1.syncNow()
    expect(await atCentral(607)).toBe(true)
    await t1.ledger.recordEvents(later.slice(0, 601))
    await t1.syncNow()
    expect((await t1.ledger.confirmedMarks())[origin]).toBe(607)
    expect(await atCentral(300)).toBe(true)
  })
})
