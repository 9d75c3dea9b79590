// The online path at its edges, against the real central service over real HTTP: a timeout after
// central said yes, a crash with an online attempt pending. One tap has one payment identity, and
// a payment the terminal declined is never left charged.
import { join } from 'node:path'
import type { CentralService } from '@nullmesh/central'
import { createLedger } from '@nullmesh/ledger'
import { createMeshNode } from '@nullmesh/mesh'
import { loadTerminalKey } from '@nullmesh/policy'
import { computeCardKey, computeNullifier } from '@nullmesh/protocol'
import {
  type CentralLink,
  createHttpCentralLink,
  createTerminal,
  type Terminal,
  TerminalError,
  type TerminalInit,
} from '@nullmesh/terminal'
import { afterEach, describe, expect, test } from 'vitest'
import {
  card,
  FAST,
  payment,
  startCentral,
  startVenue,
  type TestVenue,
  waitFor,
  wrapCentralLink,
} from './helpers.js'

let venue: TestVenue | undefined
let central: CentralService | undefined
afterEach(async () => {
  await venue?.cleanup()
  await central?.stop()
  venue = undefined
  central = undefined
})

/** The real link, except that authorize's answer is lost: central decides, the terminal times out. */
function lostAnswerLink(url: string, seen: string[]): CentralLink {
  const inner = createHttpCentralLink({ url })
  return wrapCentralLink(url, {
    async authorize(r, o) {
      const answer = await inner.authorize(r)
      seen.push(answer.paymentId)
      // the answer never arrives: wait for the terminal's own timeout
      await new Promise<never>((_, reject) => {
        o?.signal?.addEventListener('abort', () =>
          reject(new TerminalError('central_unavailable', 'timeout')),
        )
      })
      throw new Error('unreachable')
    },
  })
}

/** T1 again on its data directory, with another link to central, its peers given. */
async function restartT1(v: TestVenue, link: Partial<TerminalInit>): Promise<Terminal> {
  await v.terminals[0]!.stop()
  const t = createTerminal({
    ...v.inits[0]!,
    discovery: { mdns: false, peers: v.terminals.slice(1).flatMap((x) => x.multiaddrs()) },
    ...link,
    ...FAST,
  })
  await t.start()
  v.terminals[0] = t
  return t
}

describe('online path edges (real central, real HTTP)', () => {
  test('[one identity] central authorised but its answer was lost: the offline fallback approves the same payment, charged once', async () => {
    // the longest tap budget: on a loaded machine the fallback's barrier must still fit after the
    // online timeout (what is tested is the payment's identity, not its speed)
    venue = await startVenue(3, { waitQuorum: true, policy: { tapBudgetMs: 10_000 } })
    central = await startCentral(venue)
    const seen: string[] = []
    const t = await restartT1(venue, { central: lostAnswerLink(central.url, seen) })
    await waitFor(() => t.online && t.status().mesh.mode === 'quorum', 10_000)
    const p = await t.pay(payment({ amountMinor: 1500 }))
    expect(p.status, JSON.stringify(p)).toBe('approved_offline')
    // the payment the POS saw approved is the one central authorised: one identity
    expect(seen).toEqual([p.paymentId])
    await t.syncNow()
    const link = createHttpCentralLink({ url: central.url })
    await waitFor(async () => (await link.payment(p.paymentId))?.status === 'completed', 10_000)
    // nothing else was settled or failed for this tap: one payment at central, completed
    const summary = (await (await fetch(`${central.url}/v1/venues/test-venue/summary`)).json()) as {
      payments: number
      byStatus: Record<string, number>
    }
    expect(summary.payments).toBe(1)
    expect(summary.byStatus.completed).toBe(1)
  })

  test('[void before release] central authorised, the answer was lost and the fallback declined: voided at central, then released', async () => {
    venue = await startVenue(3, { waitQuorum: true })
    central = await startCentral(venue)
    const seen: string[] = []
    const t = await restartT1(venue, { central: lostAnswerLink(central.url, seen) })
    await waitFor(() => t.online && t.status().mesh.mode === 'quorum', 10_000)
    // above the offline floor limit: the fallback must decline
    const p = await t.pay(payment({ amountMinor: 12_345 }))
    expect(p.status).toBe('declined_offline')
    expect(seen).toEqual([p.paymentId])
    // pending (held) until central voided it; then released
    const link = createHttpCentralLink({ url: central.url })
    await waitFor(async () => (await link.payment(p.paymentId))?.status === 'voided', 15_000)
    await waitFor(async () => (await t.ledger.reservationState(p.paymentId)) === 'released', 10_000)
  })

  test('[restart] an online attempt pending at a crash is not released before central voided it', async () => {
    venue = await startVenue(3, { waitQuorum: true })
    const t1 = venue.terminals[0]!
    const bundle = venue.bundle
    // a crash right after the online attempt was recorded and sent: reservation + cursor, no answer
    await t1.stop()
    const ledger = createLedger({ path: join(venue.inits[0]!.dataDir, 'ledger') })
    await ledger.open()
    const key = await loadTerminalKey(bundle.dir, 'T1')
    const mesh = createMeshNode({
      bundle,
      key,
      ledger,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      discovery: { peers: venue.terminals.slice(1).flatMap((x) => x.multiaddrs()) },
    })
    await mesh.start()
    await waitFor(() => mesh.status().mode === 'quorum', 10_000)
    const cardToken = card()
    const res = await mesh.reserveOnline({
      nullifier: computeNullifier(bundle.hashingKey, cardToken, { idempotencyKey: 'crash-1' }),
      cardKey: computeCardKey(bundle.hashingKey, cardToken),
      amountMinor: 20_000,
      currency: 'EUR',
      method: 'contactless',
    })
    await ledger.setCursor(`terminal/online/${res.idHex}`, 'pending', { sync: true })
    await mesh.stop()
    await ledger.close()
    // restart with central down: still pending (it may be charged), not released
    const down = await restartT1(venue, { centralUrl: 'http://127.0.0.1:9' })
    expect(await down.ledger.reservationState(res.idHex)).toBe('reserved')
    expect(down.status().onlineUnresolved).toBe(1)
    // restart with central up: voided there, then released
    central = await startCentral(venue)
    const up = await restartT1(venue, { centralUrl: central.url })
    await waitFor(async () => (await up.ledger.reservationState(res.idHex)) === 'released', 15_000)
    const link = createHttpCentralLink({ url: central.url })
    expect((await link.payment(res.idHex))?.status).toBe('voided')
    expect(up.status().onlineUnresolved).toBe(0)
  })

  test('[online without a quorum] cut off from its peers but reaching central, a terminal sends online payments within its isolated budget only', async () => {
    venue = await startVenue(3, { waitQuorum: true })
    central = await startCentral(venue)
    // T1 has signed before (a terminal with an empty ledger signs nothing until it learned its
    // history from a quorum): one payment while its peers are up
    const before = await venue.terminals[0]!.pay(payment({ amountMinor: 500 }))
    expect(before.status, JSON.stringify(before)).toBe('approved_offline')
    // its peers are down, and central never confirms (sync fails): the budget is not given back
    await venue.terminals[1]!.stop()
    await venue.terminals[2]!.stop()
    const inner = createHttpCentralLink({ url: central.url })
    const link: CentralLink = {
      url: central.url,
      health: (o) => inner.health(o),
      payment: (id, o) => inner.payment(id, o),
      denylist: (v, o) => inner.denylist(v, o),
      authorize: (r, o) => inner.authorize(r, o),
      void: (r, o) => inner.void(r, o),
      // answered, but nothing stored: central confirms none of T1's events
      sync: async () => ({ results: [], payments: [] }),
    }
    const t = await restartT1(venue, { central: link })
    await waitFor(() => t.online && t.status().mesh.mode === 'isolated', 15_000).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}: online ${t.online}, ${JSON.stringify(t.status().mesh)}`)
    })
    // past the probe time after a start (a start is not evidence that the peers are gone):
    // reachability then knows the quorum unreachable, and the tap budget is left to the payment
    await new Promise((r) => setTimeout(r, 2_000))
    const cardA = card()
    // above the offline floor limit: only central can approve it, and no quorum holds it
    const first = await t.pay(payment({ cardToken: cardA, amountMinor: 9_000 }))
    expect(first.status, JSON.stringify(first)).toBe('approved_online')
    // the same card again (another credential use): it would be a second approval no quorum holds
    const again = await t.pay(payment({ cardToken: cardA, amountMinor: 1_000 }))
    expect(again.status, JSON.stringify(again)).toBe('declined_offline')
    expect(again.declineCode).toBe('isolated_card_used')
    // another card: within the budget (counted at the floor limit, 5,000 of 20,000)
    const other = await t.pay(payment({ amountMinor: 9_000 }))
    expect(other.status, JSON.stringify(other)).toBe('approved_online')
  })
})
