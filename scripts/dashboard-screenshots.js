#!/usr/bin/env node
// Screenshots of the dashboards for the README, from a simulated venue:
//   npm run build && node scripts/dashboard-screenshots.js [--out docs]
// Runs `nullmesh sim --hold` (4 terminals), cuts T4 off the mesh (SIGUSR1) and takes a payment at T4
// while it is isolated, then photographs T1's dashboard (768 px wide: the tablet case), T4's and
// central's with Debian's Chromium (NULLMESH_CHROMIUM to use another) driven by playwright-core.
// Stops the venue with Ctrl-C (SIGINT) and removes its temporary directory.
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { chromium } from 'playwright-core'

const root = resolve(import.meta.dirname, '..')
const outArg = process.argv.indexOf('--out')
const out = resolve(outArg > 0 ? process.argv[outArg + 1] : join(root, 'docs'))
const executablePath = process.env.NULLMESH_CHROMIUM ?? '/usr/bin/chromium'
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

const dir = await mkdtemp(join(tmpdir(), 'nullmesh-shots-'))
const sim = spawn(
  process.execPath,
  [
    join(root, 'packages/cli/dist/bin.js'),
    'sim',
    '--terminals',
    '4',
    '--payments',
    '120',
    '--rate',
    '15',
    '--seed',
    '2016',
    '--hold',
    '--no-progress',
    '--dir',
    dir,
  ],
  { stdio: ['ignore', 'ignore', 'pipe'] },
)
const exited = new Promise((r) => sim.once('exit', r))
const urls = new Map()
let browser
try {
  await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error('the sim did not reach --hold within 180 s')), 180_000)
    exited.then((code) => reject(new Error(`the sim exited (${code})`)))
    createInterface({ input: sim.stderr }).on('line', (line) => {
      const c = /central dashboard (\S+)/.exec(line)
      if (c) urls.set('central', { url: c[1] })
      const t = /(T\d+) dashboard (\S+) \(pid (\d+)/.exec(line)
      if (t) urls.set(t[1], { url: t[2], pid: Number(t[3]) })
      if (line.includes('holding the venue')) {
        clearTimeout(timer)
        resolvePromise()
      }
    })
  })
  // T4 loses the mesh: T1 shows it unreachable, T4 shows itself isolated
  const t4 = urls.get('T4')
  process.kill(t4.pid, 'SIGUSR1')
  await sleep(5_000)
  const api = new URL(t4.url)
  const token = api.searchParams.get('token')
  for (let i = 0; i < 3; i++) {
    await fetch(new URL('/v1/payments', api), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        idempotencyKey: `shot-${Date.now()}-${i}`,
        cardToken: `40000012345600${10 + i}`,
        amountMinor: 1250 + i * 300,
        currency: 'EUR',
        method: 'contactless',
        offlineBehavior: 'force_offline',
      }),
    })
  }
  browser = await chromium.launch({ executablePath, args: FLAGS })
  const shoot = async (url, file, width) => {
    const page = await browser.newPage({ viewport: { width, height: 1000 } })
    await page.goto(url)
    await sleep(2_500)
    await page.screenshot({ path: join(out, file), fullPage: true })
    await page.close()
    console.log(`wrote ${join(out, file)}`)
  }
  await shoot(urls.get('T1').url, 'dashboard-terminal.png', 768)
  await shoot(t4.url, 'dashboard-terminal-isolated.png', 768)
  await shoot(urls.get('central').url, 'dashboard-central.png', 1024)
} finally {
  await browser?.close().catch(() => {})
  sim.kill('SIGINT')
  const code = await Promise.race([exited, sleep(30_000, 'timeout')])
  if (code === 'timeout') sim.kill('SIGKILL')
  await rm(dir, { recursive: true, force: true, maxRetries: 3 })
}
