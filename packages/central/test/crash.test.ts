import { type ChildProcess, spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { createSqlStore } from '@nullmesh/central'
import { afterEach, describe, expect, it } from 'vitest'
import { api, TempDirs, VenueFixture, waitFor } from './fixtures/helpers.js'

const CHILD = fileURLToPath(new URL('./fixtures/central-child.mjs', import.meta.url))

interface Child {
  proc: ChildProcess
  url: string
  exited: Promise<number | null>
}

function startChild(dataDir: string, venueDir: string): Promise<Child> {
  const proc = spawn(process.execPath, [CHILD, dataDir, venueDir], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  let stderr = ''
  proc.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString()
  })
  return new Promise((resolve, reject) => {
    let out = ''
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /READY (\S+)/.exec(out)
      if (m !== null) resolve({ proc, url: m[1]!, exited })
    })
    void exited.then((code) => reject(new Error(`child exited (${code}) before READY: ${stderr}`)))
  })
}

describe('crash safety', () => {
  const temp = new TempDirs()
  const children: Child[] = []

  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL')
      await c.exited
    }
    await temp.cleanup()
  })

  it('kill -9 mid-ingest and mid-settlement, restart: nothing lost, nothing duplicated, settlement completes once', async () => {
    const dir = await temp.make()
    const venue = await VenueFixture.create(dir, 'stadium', 3)
    const dataDir = `${dir}/central`
    const N = 800
    const events: string[] = []
    for (let i = 0; i < N; i++) {
      const p = venue.pay(venue.t(i % 3))
      events.push(
        Buffer.from(p.reservation.bytes).toString('base64url'),
        Buffer.from(p.commit.bytes).toString('base64url'),
      )
    }
    const batches: string[][] = []
    for (let i = 0; i < events.length; i += 400) batches.push(events.slice(i, i + 400))

    const first = await startChild(dataDir, venue.bundle.dir)
    children.push(first)
    const inflight = batches.map((b) =>
      api(first.url, 'POST', '/v1/sync', { events: b }).catch(() => undefined),
    )
    await Promise.race(inflight)
    first.proc.kill('SIGKILL')
    await first.exited
    const answered = (await Promise.all(inflight)).filter((r) => r?.status === 200)
    // it really was killed mid-way: some batches never got an answer
    expect(answered.length).toBeGreaterThan(0)
    expect(answered.length).toBeLessThan(batches.length)

    const second = await startChild(dataDir, venue.bundle.dir)
    children.push(second)
    let stored = 0
    for (const b of batches) {
      const r = await api(second.url, 'POST', '/v1/sync', { events: b })
      expect(r.status).toBe(200)
      for (const x of r.body.results) {
        expect(x.status === 'stored' || x.status === 'duplicate').toBe(true)
        if (x.status === 'stored') stored++
      }
    }
    expect(stored).toBeGreaterThan(0)
    expect(stored).toBeLessThan(events.length)
    await waitFor(
      'settlement',
      async () => (await api(second.url, 'GET', '/v1/venues/stadium/summary')).body.settled.completed === N,
      30_000,
    )
    second.proc.kill('SIGTERM')
    expect(await second.exited).toBe(0)

    const store = createSqlStore({ kind: 'pglite', path: `${dataDir}/central-pg` })
    await store.open()
    try {
      expect(await store.countEvents()).toBe(events.length)
      expect(await store.listActivePayments()).toEqual([])
      const payments = await store.listPayments({ limit: 1000, status: 'completed' })
      expect(payments).toHaveLength(N)
    } finally {
      await store.close()
    }
    const journal = (await readFile(`${dataDir}/issuer.jsonl`, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).paymentId)
    expect(journal).toHaveLength(N)
    expect(new Set(journal).size).toBe(N)
  })
})
