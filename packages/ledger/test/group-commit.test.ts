import { join } from 'node:path'
import { toHex } from '@nullmesh/protocol'
import { Level } from 'level'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { GroupCommit } from '../src/group-commit.js'
import { createLedger, type Ledger } from '../src/index.js'
import { openStore, put, type RootDatabase } from '../src/store.js'
import { collect, Origin, removeDir, tempDir } from './helpers.js'

/** Real LevelDB whose batches wait at a gate the test opens; records each batch's options. */
function gatedLevel(path: string) {
  const db = new Level<string, string>(path) as unknown as RootDatabase
  const batches: { ops: number; sync: boolean; done: boolean }[] = []
  let open!: () => void
  let gate = new Promise<void>((resolve) => {
    open = resolve
  })
  const batch = db.batch.bind(db) as (ops: unknown[], options: { sync?: boolean }) => Promise<void>
  ;(db as unknown as { batch: unknown }).batch = async (ops: unknown[], options: { sync?: boolean }) => {
    const entry = { ops: ops.length, sync: options.sync === true, done: false }
    batches.push(entry)
    await gate
    await batch(ops, options)
    entry.done = true
  }
  return {
    db,
    batches,
    release: () => {
      open()
      gate = new Promise<void>((resolve) => {
        open = resolve
      })
    },
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve))

describe('group commit [group-commit]', () => {
  let dir: string
  beforeEach(async () => {
    dir = await tempDir()
  })
  afterEach(async () => {
    await removeDir(dir)
  })

  it('writes the transactions queued behind a batch as one fsync, releasing each only after its batch', async () => {
    const { db, batches, release } = gatedLevel(join(dir, 'db'))
    await db.open()
    try {
      const store = openStore(db)
      const group = new GroupCommit(db)
      const released: number[] = []
      const first = group.submit([put(store.cursors, 'k0', 'v0')], true).then(() => released.push(0))
      await tick()
      // the first batch is being written (held at the gate); 9 more writers arrive meanwhile
      expect(batches).toHaveLength(1)
      const rest = Array.from({ length: 9 }, (_, i) =>
        group
          .submit([put(store.cursors, `k${i + 1}`, `v${i + 1}`)], i % 2 === 0)
          .then(() => released.push(i + 1)),
      )
      // a later writer reads the queued value before it is written
      expect(await group.get(store.cursors, 'k5')).toBe('v5')
      expect(await store.cursors.get('k5')).toBeUndefined()
      await tick()
      expect(released).toEqual([])
      release()
      await first
      expect(batches[0]!.done).toBe(true)
      await tick()
      // the other nine: one batch, fsync'd because some asked for it, not yet written
      expect(batches).toHaveLength(2)
      expect(batches[1]).toMatchObject({ ops: 9, sync: true, done: false })
      expect(released).toEqual([0])
      release()
      await Promise.all(rest)
      expect(batches[1]!.done).toBe(true)
      expect(released.slice(1).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9])
      expect(group.stats).toEqual({ submitted: 10, batches: 2, syncs: 2 })
      expect(await store.cursors.get('k9')).toBe('v9')
    } finally {
      release()
      await db.close()
    }
  })

  it('fails every transaction queued behind a failed batch, and refuses writes until reopened', async () => {
    const db = new Level<string, string>(join(dir, 'db')) as unknown as RootDatabase
    await db.open()
    const store = openStore(db)
    const group = new GroupCommit(db)
    const batch = db.batch.bind(db)
    let calls = 0
    ;(db as unknown as { batch: unknown }).batch = async (...args: unknown[]) => {
      if (calls++ === 0) {
        await tick()
        throw new Error('disk full')
      }
      return (batch as (...a: unknown[]) => Promise<void>)(...args)
    }
    try {
      const a = group.submit([put(store.cursors, 'a', '1')], true)
      await Promise.resolve()
      const b = group.submit([put(store.cursors, 'b', '2')], true)
      await expect(a).rejects.toThrow('disk full')
      await expect(b).rejects.toThrow('disk full')
      await expect(group.submit([put(store.cursors, 'c', '3')], true)).rejects.toMatchObject({
        code: 'ERR_LEDGER_WRITE_FAILED',
      })
      expect(await store.cursors.get('b')).toBeUndefined()
    } finally {
      await db.close()
    }
  })

  describe('in the ledger (LevelDB)', () => {
    let ledger: Ledger
    beforeEach(async () => {
      ledger = createLedger({ path: join(dir, 'ledger') })
      await ledger.open()
    })
    afterEach(async () => {
      await ledger.close()
    })

    it('concurrent reservations, acks and commits share fsyncs, and index as if written one by one', async () => {
      const me = new Origin()
      const peers = Array.from({ length: 4 }, () => new Origin())
      const before = ledger.commitStats()
      // one terminal's concurrent work: its own reservations and commits (one origin, one lock),
      // and acks for its peers' reservations
      const own = Array.from({ length: 10 }, () => me.reservation())
      const commits = own.slice(0, 5).map((r) => me.commit(r))
      const acked = peers.flatMap((p) => [p.reservation(), p.reservation()])
      const writes = [
        ...own.map((r) => ledger.recordEvent(r, { held: true })),
        ...commits.map((c) => ledger.recordEvent(c, { held: true })),
        ...acked.map((r) => ledger.recordEvent(r, { held: true })),
      ]
      const n = writes.length
      await Promise.all(writes)
      const after = ledger.commitStats()
      expect(after.submitted - before.submitted).toBe(n)
      expect(after.syncs - before.syncs).toBeLessThan(n)
      expect(after.syncs - before.syncs).toBeGreaterThan(0)
      // the indexes: commits read the reservations they commit from the queue, not the disk
      expect(await ledger.highWaterMarks()).toMatchObject({ [me.hex]: 15 })
      for (const r of own.slice(0, 5)) expect(await ledger.reservationState(r.idHex)).toBe('committed')
      for (const r of own.slice(5)) expect(await ledger.reservationState(r.idHex)).toBe('reserved')
      expect((await ledger.pendingReservations(me.hex)).map((e) => e.idHex)).toEqual(
        own.slice(5).map((r) => r.idHex),
      )
      for (const r of acked) expect(await ledger.isHeld(r.idHex)).toBe(true)
      expect(await collect(ledger.events({ origin: me.hex }))).toHaveLength(15)
      // durable: a reopened ledger holds the same
      await ledger.close()
      await ledger.open()
      expect(await ledger.nextSeq(me.hex)).toBe(16)
      expect(await ledger.nullifier(toHex(own[0]!.event.nullifier))).toEqual([
        { reservationId: own[0]!.idHex, state: 'committed' },
      ])
    })
  })
})
