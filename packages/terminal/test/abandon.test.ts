import { type ChildProcess, spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type CentralService, createCentralService } from '@nullmesh/central'
import { keyPairFromFile, signRevocation } from '@nullmesh/protocol'
import { createTerminal, type Terminal, type TerminalInit } from '@nullmesh/terminal'
import { afterEach, expect, test } from 'vitest'
import { http, payment, startVenue, type TestVenue, waitFor } from './helpers.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/terminal-process.js', import.meta.url))

interface Child {
  proc: ChildProcess
  apiUrl: string
  exited: Promise<unknown>
}

async function spawnTerminal(init: TerminalInit): Promise<Child> {
  const proc = spawn(process.execPath, [FIXTURE, JSON.stringify(init)], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  let stderr = ''
  proc.stderr!.on('data', (c) => {
    stderr += String(c)
  })
  const ready = await new Promise<{ apiUrl: string }>((resolve, reject) => {
    let buffer = ''
    proc.stdout!.on('data', (chunk) => {
      buffer += String(chunk)
      const line = buffer.split('\n').find((l) => l.startsWith('{'))
      if (line !== undefined) resolve(JSON.parse(line) as { apiUrl: string })
    })
    proc.once('exit', () => reject(new Error(`terminal process exited: ${stderr}`)))
  })
  return { proc, apiUrl: ready.apiUrl, exited }
}

let venue: TestVenue | undefined
let central: CentralService | undefined
let child: Child | undefined
const extra: Terminal[] = []
afterEach(async () => {
  if (child !== undefined && child.proc.exitCode === null && child.proc.signalCode === null) {
    child.proc.kill('SIGKILL')
    await child.exited
  }
  child = undefined
  for (const t of extra.splice(0)) await t.stop()
  await venue?.cleanup()
  await central?.stop()
  venue = undefined
  central = undefined
})

const FAST_SYNC: Partial<TerminalInit> = {
  sync: { intervalMs: 100, denylistRefreshMs: 200, statusPollMinIntervalMs: 100 },
  connectivity: { initialDelayMs: 20, maxDelayMs: 100, probeIntervalMs: 100 },
}

/** Hold every ledger write of this terminal until the returned function is called. */
function gateWrites(t: Terminal): () => void {
  const ledger = t.ledger as { recordEvent: Terminal['ledger']['recordEvent'] }
  const original = ledger.recordEvent.bind(t.ledger)
  let open!: () => void
  const gate = new Promise<void>((r) => {
    open = r
  })
  ledger.recordEvent = async (...args) => {
    await gate
    return original(...args)
  }
  return () => {
    ledger.recordEvent = original
    open()
  }
}

// Issue 17, item 5: a terminal killed mid-barrier leaves its reservation held by the peers that
// acked it and `created` at central. While that terminal might still hold a Commit of it, nothing
// frees it; once the operator revoked it (its ledger written off) and every other ledger synced
// past the reservation, central abandons it and the peers release its headroom and nullifier.
test('the reservation of a terminal killed mid-barrier: held, then abandoned by central and released by the peers', async () => {
  venue = await startVenue(4, {
    policy: {
      // a quorum of 3 of 4: T1 with only T2 answering waits (T3 and T4 are slow)
      barrier: { quorum: 3, timeoutMs: 2_000, retries: 3, retryJitterMs: 25 },
      tapBudgetMs: 6_000,
      maxClockSkewMs: 500,
      isolated: { enabled: false, maxApprovalsPerCard: 1 },
    },
  })
  central = createCentralService({
    dataDir: join(venue.dir, 'central'),
    venues: [venue.bundle],
    settleIntervalMs: 50,
    abandonMarginMs: 0,
  })
  await central.start()
  // T2..T4 sync with central; T1 runs in a child process (no central link) to be killed
  for (const i of [1, 2, 3]) {
    venue.inits[i] = { ...venue.inits[i]!, centralUrl: central.url, ...FAST_SYNC }
    await venue.restart(i)
  }
  const t1Init = venue.inits[0]!
  await venue.terminals[0]!.stop()
  const [, t2, t3, t4] = venue.terminals as Terminal[]
  child = await spawnTerminal({
    ...t1Init,
    discovery: { mdns: false, peers: [t2!, t3!, t4!].flatMap((t) => t.multiaddrs()) },
  })
  await waitFor(() => [t2!, t3!, t4!].every((t) => t.status().mesh.peers === 3), 20_000)
  const t1Key = venue.bundle.roster[0]!.publicKeyHex

  // T3 and T4 are slow to write: T1's barrier has T2's ack only, and waits for more
  const openT3 = gateWrites(t3!)
  const openT4 = gateWrites(t4!)
  const body = payment({ cardToken: '4000000000009999', credentialCounter: 41, amountMinor: 1500 })
  void http(`${child.apiUrl}/v1/payments`, { body }).catch(() => {})
  let reservationId = ''
  await waitFor(async () => {
    const pending = await t2!.ledger.pendingReservations(t1Key)
    if (pending.length === 0 || !(await t2!.ledger.isHeld(pending[0]!.idHex))) return false
    reservationId = pending[0]!.idHex
    return true
  }, 10_000)
  child.proc.kill('SIGKILL')
  await child.exited
  openT3()
  openT4()

  // the same card and credential use at a peer: refused while the dead terminal's reservation holds it
  const retry = () =>
    payment({
      cardToken: '4000000000009999',
      credentialCounter: 41,
      amountMinor: 1500,
      offlineBehavior: 'force_offline',
    })
  await waitFor(() => [t2!, t3!, t4!].every((t) => t.status().mesh.peers === 2), 20_000)
  const refused = await t2!.pay(retry())
  expect(refused.status).toBe('declined_offline')
  await waitFor(async () => (await central!.getPayment(reservationId))?.status === 'created', 20_000)

  // every live ledger has synced past it, but T1 (enrolled, not revoked) never will: T1 might hold
  // a Commit of it, so central does not abandon it
  const reservedAt = (await central.store.getPayment(reservationId))!.queuedAt
  const policy = venue.bundle.policy
  const horizon = reservedAt + policy.tapBudgetMs + policy.maxClockSkewMs
  const live = [t2!, t3!, t4!].map((t) => t.publicKeyHex)
  await waitFor(async () => {
    const checkpoints = await central!.store.listCheckpoints(venue!.bundle.venueId)
    return live.every((k) => (checkpoints.find((c) => c.terminal === k)?.at ?? 0) > horizon)
  }, 30_000)
  expect(await central.abandonNow(venue.bundle.venueId)).toEqual([])
  expect((await central.getPayment(reservationId))?.status).toBe('created')
  expect((await t2!.pay(retry())).status).toBe('declined_offline')

  // the operator revokes T1: its ledger is written off, central abandons, the peers release
  const operator = keyPairFromFile(
    JSON.parse(await readFile(join(venue.bundle.dir, 'operator.key.json'), 'utf8')),
  )
  const revocation = signRevocation(operator, {
    venueId: venue.bundle.venueId,
    terminal: t1Key,
    effectiveAt: Date.now(),
    reason: 'dead: replaced',
    issuedAt: Date.now(),
  })
  const published = await http(`${central.url}/v1/venues/${venue.bundle.venueId}/revocations`, {
    body: revocation,
    token: null,
  })
  expect(published.status).toBe(200)
  await waitFor(async () => (await central!.getPayment(reservationId))?.status === 'abandoned', 20_000)
  await waitFor(
    async () =>
      (
        await Promise.all(
          [t2!, t3!, t4!].map(async (t) =>
            (await t.ledger.getCursor('terminal/abandoned'))?.includes(reservationId),
          ),
        )
      ).every(Boolean),
    20_000,
  )
  const approved = await t2!.pay(retry())
  expect(approved.status).toBe('approved_offline')

  // T1 comes back on its disk: recovery releases its own pending reservation, it never commits it;
  // at its first sync it learns it is revoked: its status says so and it refuses payments
  const back = createTerminal({
    ...t1Init,
    centralUrl: central.url,
    ...FAST_SYNC,
    discovery: { mdns: false, peers: [t2!, t3!, t4!].flatMap((t) => t.multiaddrs()) },
  })
  await back.start()
  extra.push(back)
  expect(await back.ledger.reservationState(reservationId)).toBe('released')
  await waitFor(() => back.status().revoked !== undefined, 20_000)
  expect(back.status().revoked).toEqual({
    effectiveAt: revocation.payload.effectiveAt,
    reason: 'dead: replaced',
  })
  const refusedByRevoked = await http(`${back.apiUrl}/v1/payments`, { body: payment() })
  expect(refusedByRevoked.status).toBe(403)
  expect(refusedByRevoked.json.code).toBe('terminal_revoked')
  expect((await central.getPayment(reservationId))?.status).toBe('abandoned')
}, 120_000)
