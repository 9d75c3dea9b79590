import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type CentralService, createCentralService } from '@nullmesh/central'
import { createTerminal, type Terminal, type TerminalInit } from '@nullmesh/terminal'
import { afterEach, expect, test } from 'vitest'
import { http, payment, startVenue, type TestVenue, TOKEN, waitFor } from './helpers.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/terminal-process.js', import.meta.url))

interface Child {
  proc: ChildProcess
  apiUrl: string
  exited: Promise<unknown>
}

/** T1 in a child process, its peers (T2, T3) in this one. */
async function spawnTerminal(init: TerminalInit): Promise<Child> {
  const proc = spawn(process.execPath, [FIXTURE, JSON.stringify(init)], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  let stderr = ''
  proc.stderr!.on('data', (c) => {
    stderr += String(c)
    if (process.env.FIXTURE_LOG) process.stderr.write(String(c))
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

/** A 3-terminal venue whose T1 runs in a child process; returns T1's init (for the restart). */
async function venueWithChildT1(more: Partial<TerminalInit> = {}): Promise<TerminalInit> {
  venue = await startVenue(3, { waitQuorum: false })
  const t1 = venue.terminals[0]!
  await t1.stop()
  const init: TerminalInit = {
    ...venue.inits[0]!,
    discovery: { mdns: false, peers: venue.terminals.slice(1).flatMap((t) => t.multiaddrs()) },
    ...more,
  }
  child = await spawnTerminal(init)
  await waitFor(() => venue!.terminals.slice(1).every((t) => t.status().mesh.peers === 2), 20_000)
  return init
}

async function restartInProcess(init: TerminalInit): Promise<Terminal> {
  const t = createTerminal({
    ...init,
    discovery: { mdns: false, peers: venue!.terminals.slice(1).flatMap((x) => x.multiaddrs()) },
  })
  await t.start()
  extra.push(t)
  return t
}

test('kill -9 right after an approval: the answer was durable, the same key gets it again', async () => {
  const init = await venueWithChildT1()
  const bodies = [payment(), payment(), payment()]
  const answers = []
  for (const body of bodies) {
    const r = await http(`${child!.apiUrl}/v1/payments`, { body })
    expect(r.json.status).toBe('approved_offline')
    answers.push(r.json)
  }
  child!.proc.kill('SIGKILL')
  await child!.exited

  const t1 = await restartInProcess(init)
  for (const [i, body] of bodies.entries()) {
    const again = await t1.pay(body)
    expect(again).toEqual(answers[i])
    expect((await t1.ledger.nullifier(again.nullifier)).filter((u) => u.state === 'committed')).toHaveLength(
      1,
    )
  }
  expect(TOKEN).toBe(t1.token)
})

test('kill -9 mid-sync: after the restart everything reaches central once, nothing is lost', async () => {
  venue = await startVenue(3)
  const paid: string[] = []
  for (let i = 0; i < 40; i++)
    paid.push((await venue.terminals[0]!.pay(payment({ amountMinor: 300 + i }))).paymentId)
  central = createCentralService({
    dataDir: join(venue.dir, 'central'),
    venues: [venue.bundle],
    settleIntervalMs: 50,
  })
  await central.start()
  await venue.terminals[0]!.stop()
  const init: TerminalInit = {
    ...venue.inits[0]!,
    discovery: { mdns: false, peers: venue.terminals.slice(1).flatMap((t) => t.multiaddrs()) },
    centralUrl: central.url,
    sync: { batchSize: 5, intervalMs: 50, statusPollMinIntervalMs: 50 },
    connectivity: { initialDelayMs: 20, maxDelayMs: 100, probeIntervalMs: 100 },
  }
  child = await spawnTerminal(init)
  // kill it as soon as central has seen part of its ledger
  await waitFor(async () => (await central!.summary('test-venue')).payments > 0, 20_000, 5)
  child.proc.kill('SIGKILL')
  await child.exited
  const before = (await central.summary('test-venue')).payments
  expect(before).toBeLessThan(paid.length)

  const t1 = await restartInProcess(init)
  await waitFor(async () => {
    for (const id of paid) if ((await t1.payment(id))?.settlement.status !== 'completed') return false
    return true
  }, 20_000)
  const all = []
  for await (const e of t1.ledger.events()) all.push(e.bytes)
  expect((await central.ingest(all)).results.every((r) => r.status === 'duplicate')).toBe(true)
  const charged = (central.issuer as unknown as { decisions(): { paymentId: string }[] })
    .decisions()
    .map((d) => d.paymentId)
  expect(new Set(charged).size).toBe(charged.length)
  expect(charged.filter((id) => paid.includes(id))).toHaveLength(paid.length)
})
