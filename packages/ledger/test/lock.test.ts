import { createLedger, type Ledger, LedgerError } from '@nullmesh/ledger'
import { afterEach, describe, expect, it } from 'vitest'
import { Origin, removeDir, tempDir } from './helpers.js'
import { Fixture } from './processes.js'

describe('one ledger per directory (LEVEL_LOCKED)', () => {
  const ledgers: Ledger[] = []
  const fixtures: Fixture[] = []
  const dirs: string[] = []

  afterEach(async () => {
    await Promise.allSettled(fixtures.splice(0).map((f) => f.kill()))
    await Promise.allSettled(ledgers.splice(0).map((l) => l.close()))
    await Promise.allSettled(dirs.splice(0).map((d) => removeDir(d)))
  })

  async function newDir(): Promise<string> {
    const dir = await tempDir()
    dirs.push(dir)
    return dir
  }

  function ledgerAt(dir: string): Ledger {
    const ledger = createLedger({ path: dir })
    ledgers.push(ledger)
    return ledger
  }

  it('refuses a second instance in the same process, naming the directory', async () => {
    const dir = await newDir()
    const first = ledgerAt(dir)
    await first.open()
    const second = ledgerAt(dir)
    const err = await second.open().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(LedgerError)
    expect(err).toMatchObject({ code: 'ERR_LEDGER_LOCKED' })
    expect((err as Error).message).toBe(`ledger directory ${dir} is already in use by another process`)
    // the refused instance stays closed and usable later; the first is unaffected
    await expect(second.nextSeq('aa')).rejects.toMatchObject({ code: 'ERR_LEDGER_NOT_OPEN' })
    const a = new Origin()
    expect(await first.recordEvent(a.reservation())).toEqual({ inserted: true })
    await first.close()
    await second.open()
    expect(await second.highWaterMarks()).toEqual({ [a.hex]: 1 })
  })

  it('refuses while another process holds the directory, and opens once it is gone', async () => {
    const dir = await newDir()
    const holder = new Fixture('hold-open.js', [dir])
    fixtures.push(holder)
    await holder.waitFor((lines) => lines.includes('ready'))
    const ledger = ledgerAt(dir)
    await expect(ledger.open()).rejects.toMatchObject({
      code: 'ERR_LEDGER_LOCKED',
      message: expect.stringContaining(dir),
    })
    await holder.kill()
    await ledger.open()
    expect(await ledger.stats()).toEqual({ events: 0, payments: 0, origins: 0 })
  })
})
