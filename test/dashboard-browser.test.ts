import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'

/*
 * The dashboards in a real browser: Debian's Chromium (installed by .ci/run; never a downloaded
 * browser) driven over CDP by playwright-core, against a running 3-terminal venue (`nullmesh sim
 * --hold`, the same command a person runs).
 */

const CHROMIUM = process.env.NULLMESH_CHROMIUM ?? '/usr/bin/chromium'
const HAVE_CHROMIUM = existsSync(CHROMIUM)
const BIN = join(import.meta.dirname, '..', 'packages', 'cli', 'dist', 'bin.js')
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

if (!HAVE_CHROMIUM)
  console.warn(
    `dashboard browser test SKIPPED: no Chromium at ${CHROMIUM} (apt-get install chromium, or set NULLMESH_CHROMIUM)`,
  )

interface Venue {
  sim: ChildProcess
  dir: string
  central: string
  terminals: Map<string, { url: string; pid: number }>
  exited: Promise<number | null>
}

async function startVenue(): Promise<Venue> {
  const dir = await mkdtemp(join(tmpdir(), 'nullmesh-dash-test-'))
  const sim = spawn(
    process.execPath,
    [
      BIN,
      'sim',
      '--terminals',
      '3',
      '--payments',
      '6',
      '--rate',
      '10',
      '--offline',
      '0',
      '--settle-timeout',
      '20000',
      '--seed',
      '16',
      '--hold',
      '--no-progress',
      '--dir',
      dir,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  const exited = new Promise<number | null>((resolve) => sim.once('exit', (code) => resolve(code)))
  const terminals = new Map<string, { url: string; pid: number }>()
  let central = ''
  const lines: string[] = []
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`sim not holding after 90 s:\n${lines.join('\n')}`)),
      90_000,
    )
    void exited.then((code) => reject(new Error(`sim exited (${code}):\n${lines.join('\n')}`)))
    createInterface({ input: sim.stderr! }).on('line', (line) => {
      lines.push(line)
      const c = /central dashboard (\S+)/.exec(line)
      if (c) central = c[1]!
      const t = /(T\d+) dashboard (\S+) \(pid (\d+)/.exec(line)
      if (t) terminals.set(t[1]!, { url: t[2]!, pid: Number(t[3]) })
      if (line.includes('holding the venue')) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  return { sim, dir, central, terminals, exited }
}

describe.skipIf(!HAVE_CHROMIUM)('dashboards in Chromium', () => {
  let venue: Venue | undefined
  let browser: Browser | undefined
  let page: Page

  beforeAll(async () => {
    venue = await startVenue()
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS })
    page = await browser.newPage({ viewport: { width: 768, height: 1024 } })
  }, 120_000)

  afterAll(async () => {
    await browser?.close().catch(() => {})
    if (venue !== undefined) {
      // Ctrl-C ends the hold: a clean stop and the summary
      venue.sim.kill('SIGINT')
      const code = await Promise.race([
        venue.exited,
        new Promise((r) => setTimeout(() => r('timeout'), 30_000)),
      ])
      if (code === 'timeout') venue.sim.kill('SIGKILL')
      await rm(venue.dir, { recursive: true, force: true, maxRetries: 3 })
      expect(code).toBe(0)
    }
  }, 60_000)

  test('the terminal dashboard shows the venue live: terminals and modes, a new payment, a cut terminal', async () => {
    const t1 = venue!.terminals.get('T1')!
    const t3 = venue!.terminals.get('T3')!
    expect(venue!.terminals.size).toBe(3)

    // the printed URL signs the browser in, then the address bar is clean
    await page.goto(t1.url)
    expect(new URL(page.url()).search).toBe('')
    const rows = page.locator('#terminals tr[data-terminal]')
    await expect.poll(() => rows.count()).toBe(3)
    for (const id of ['T1', 'T2', 'T3']) {
      const row = page.locator(`#terminals tr[data-terminal="${id}"]`)
      await expect.poll(() => row.getAttribute('data-mode'), { timeout: 15_000 }).toBe('quorum')
      // a state is a word, not only a colour
      expect(await row.innerText()).toContain('QUORUM')
    }

    // a payment through the API appears without a reload
    await page.evaluate(() => {
      ;(window as unknown as { marker: number }).marker = 42
    })
    const base = new URL(t1.url)
    const token = base.searchParams.get('token')!
    const res = await fetch(new URL('/v1/payments', base), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        idempotencyKey: `dash-browser-${Date.now()}`,
        cardToken: '4000001234567899',
        amountMinor: 4242,
        currency: 'EUR',
        method: 'contactless',
        // through the barrier, so the detail shows a quorum certificate
        offlineBehavior: 'force_offline',
      }),
    })
    expect(res.status).toBe(200)
    const paid = (await res.json()) as { paymentId: string; status: string }
    expect(paid.status).toMatch(/^approved/)
    const row = page.locator(`#payments tr[data-payment="${paid.paymentId}"]`)
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(1)
    expect(await row.innerText()).toContain('42.42 EUR')
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42)

    // its detail: nullifier prefix, proof, barrier acks
    await row.click()
    const detail = page.locator('#detail-body')
    await expect.poll(() => detail.innerText(), { timeout: 5_000 }).toContain('proof')
    expect(await detail.innerText()).toMatch(/acks of quorum 2/)
    await page.keyboard.press('Escape')

    // cut T3 off the mesh: T1's dashboard shows it unreachable and says what it cannot know
    process.kill(t3.pid, 'SIGUSR1')
    const t3row = page.locator('#terminals tr[data-terminal="T3"]')
    await expect.poll(() => t3row.getAttribute('data-link'), { timeout: 20_000 }).toBe('disconnected')
    expect(await t3row.innerText()).toContain('UNREACHABLE')
    expect(await page.locator('#alerts').innerText()).toContain('T3 is NOT REACHABLE')
    expect(await page.locator('#alerts').innerText()).toContain('cannot know')
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42)

    // and T3's own dashboard says it is isolated
    const p3 = await browser!.newPage({ viewport: { width: 768, height: 1024 } })
    try {
      await p3.goto(t3.url)
      await expect
        .poll(() => p3.locator('#terminals tr[data-terminal="T3"]').getAttribute('data-mode'), {
          timeout: 15_000,
        })
        .toBe('isolated')
      expect(await p3.locator('#alerts').innerText()).toContain('ISOLATED')
    } finally {
      await p3.close()
    }
    process.kill(t3.pid, 'SIGUSR2')
  }, 90_000)

  test('the central dashboard shows the venue, settlement by status and webhooks', async () => {
    await page.goto(venue!.central)
    expect(new URL(page.url()).search).toBe('')
    const section = page.locator('section.venue[data-venue="sim-venue"]')
    await expect.poll(() => section.count()).toBe(1)
    expect(await section.innerText()).toContain('COMPLETED')
    expect(await page.locator('#webhooks').innerText()).toContain('DEAD LETTERS')
    // without the token: the sign-in page, not data
    const anon = await fetch(new URL('/v1/dashboard', venue!.central))
    expect(anon.status).toBe(401)
  }, 30_000)
})
