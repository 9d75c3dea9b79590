import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createCentralService } from '@nullmesh/central'
import { afterEach, describe, expect, it } from 'vitest'
import { api, Receiver, TempDirs, VenueFixture, waitFor } from './fixtures/helpers.js'

const ADMIN = 'webhook-lanes-admin-token'

/** An endpoint that accepts connections and never answers, until recover(). */
class HungEndpoint {
  hung = true
  readonly received: Array<{ type: string; paymentId: string }> = []
  private readonly held = new Set<ServerResponse>()
  private readonly server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (this.hung) {
        this.held.add(res)
        res.on('close', () => this.held.delete(res))
        return
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      this.received.push({ type: body.type, paymentId: body.data.payment.paymentId })
      res.writeHead(200).end()
    })
  })

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()))
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`
  }

  recover(): void {
    this.hung = false
  }

  async close(): Promise<void> {
    for (const res of this.held) res.destroy()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

function p99(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]!
}

describe('per-endpoint delivery lanes', () => {
  const temp = new TempDirs()
  const cleanups: Array<() => Promise<void>> = []

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
    await temp.cleanup()
  })

  it('an endpoint that never answers does not delay another; its events all arrive, in order, once it recovers', async () => {
    const dir = await temp.make()
    const venue = await VenueFixture.create(dir, 'lanes', 3)
    const healthy = new Receiver()
    cleanups.push(() => healthy.close())
    await healthy.listen()
    const hung = new HungEndpoint()
    cleanups.push(() => hung.close())
    const hungUrl = await hung.listen()
    const central = createCentralService({
      dataDir: `${dir}/c`,
      venues: [venue.bundle],
      adminToken: ADMIN,
      settleIntervalMs: 20,
      webhookRetry: {
        // long enough that the hung endpoint is not disabled during the test
        scheduleMs: [200, 400, 800, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
        timeoutMs: 2_000,
      },
    })
    cleanups.push(() => central.stop())
    await central.start()
    // delivery latency: arrival at the endpoint − the event's creation (the transition's commit)
    const latencies = (from: number): number[] =>
      healthy.received.slice(from).map((h) => h.at - h.body.createdAt)
    expect((await api(central.url, 'POST', '/v1/webhooks', { url: healthy.url }, ADMIN)).status).toBe(201)

    const N = 12
    const pay = async (): Promise<string[]> => {
      const ids: string[] = []
      for (let i = 0; i < N; i++) {
        const p = venue.pay(venue.t(i % 3))
        ids.push(p.reservation.idHex)
        await central.ingest([p.reservation.bytes, p.commit.bytes])
        await new Promise((r) => setTimeout(r, 200))
      }
      return ids
    }

    // baseline: the healthy endpoint alone
    await pay()
    await waitFor('baseline deliveries', () => healthy.received.length >= 3 * N, 30_000)
    const baseline = p99(latencies(0))

    // the same load with an endpoint that accepts connections and never answers
    const reg = await api(central.url, 'POST', '/v1/webhooks', { url: hungUrl }, ADMIN)
    expect(reg.status).toBe(201)
    const ids = await pay()
    await waitFor('deliveries beside the hung endpoint', () => healthy.received.length >= 6 * N, 30_000)
    const withHung = p99(latencies(3 * N))
    console.log(
      `healthy endpoint delivery p99: ${baseline} ms alone, ${withHung} ms beside an endpoint that never answers`,
    )
    expect(withHung).toBeLessThanOrEqual(baseline + 1_000)
    expect(hung.received).toHaveLength(0)
    const stuck = (await api(central.url, 'GET', `/v1/webhooks/${reg.body.id}`, undefined, ADMIN)).body
    expect(stuck.delivery.pending).toBeGreaterThan(0)
    expect(stuck.delivery.lastError).toMatch(/timed out/)
    expect(stuck.disabled).toBe(false)

    // it recovers: every event arrives, each payment's in order
    hung.recover()
    await waitFor('the recovered endpoint catches up', () => hung.received.length >= 3 * N, 60_000)
    expect(hung.received).toHaveLength(3 * N)
    for (const id of ids) {
      expect(hung.received.filter((h) => h.paymentId === id).map((h) => h.type)).toEqual([
        'payment.queued',
        'payment.processing',
        'payment.completed',
      ])
    }
    expect(healthy.received).toHaveLength(6 * N)
  }, 120_000)
})
