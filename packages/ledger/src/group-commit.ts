import { LedgerError } from './errors.js'
import type { BatchOperation, BatchOptions, RootDatabase, Sublevel } from './store.js'

/** A key whose pending value is a deletion. */
const DELETED: unique symbol = Symbol('deleted')

interface Waiter {
  resolve: () => void
  reject: (err: unknown) => void
}

/** One LevelDB batch: the transactions submitted while the previous batch was being written. */
interface Group {
  ops: BatchOperation[]
  sync: boolean
  waiters: Waiter[]
  /** run in submission order once the batch is written, before the waiters are released */
  onWritten: (() => void)[]
}

interface Pending {
  value: unknown
  group: Group
}

export interface GroupCommitStats {
  /** transactions submitted */
  submitted: number
  /** LevelDB batches written */
  batches: number
  /** of which with fsync */
  syncs: number
}

/**
 * Group commit, as databases do it: transactions submitted while a batch is being written wait
 * together and go out as the next batch, with one fsync if any of them asked for it. Each
 * submitter is released only after the batch holding its operations was written (and fsync'd,
 * if it asked), so the durability rule of every write is unchanged; batches are written one at a
 * time in submission order, so a transaction is never durable before one submitted earlier.
 *
 * The ledger releases a transaction's key locks as soon as it is submitted, not when it is
 * durable: the next transaction on the same keys reads this one's not yet written operations
 * through `get` (the overlay), which is what lets writes on one origin share an fsync. A failed
 * batch fails every transaction queued behind it too (they may have read its operations) and
 * stops all writes until the ledger is reopened.
 */
export class GroupCommit {
  readonly #db: RootDatabase
  /** not yet written values, per sublevel and key: the latest submitted wins */
  readonly #overlay = new Map<unknown, Map<string, Pending>>()
  #open: Group | undefined
  #writing: Group | undefined
  #failed: unknown
  readonly stats: GroupCommitStats

  constructor(db: RootDatabase, stats: GroupCommitStats = { submitted: 0, batches: 0, syncs: 0 }) {
    this.#db = db
    this.stats = stats
  }

  /** A key's value as the next transaction must see it: pending writes first, then the store. */
  async get<V>(sublevel: Sublevel<V>, key: string): Promise<V | undefined> {
    const p = this.#overlay.get(sublevel)?.get(key)
    if (p !== undefined) return p.value === DELETED ? undefined : (p.value as V)
    return readOne(sublevel, key)
  }

  async getMany<V>(sublevel: Sublevel<V>, keys: string[]): Promise<(V | undefined)[]> {
    const pending = this.#overlay.get(sublevel)
    if (pending === undefined) return readMany(sublevel, keys)
    const missing = keys.filter((k) => !pending.has(k))
    const stored = missing.length > 0 ? await readMany(sublevel, missing) : []
    const fromStore = new Map(missing.map((k, i) => [k, stored[i]]))
    return keys.map((k) => {
      const p = pending.get(k)
      if (p === undefined) return fromStore.get(k)
      return p.value === DELETED ? undefined : (p.value as V)
    })
  }

  /**
   * Queue a transaction's operations. Resolves once the batch holding them was written, with
   * fsync if `sync` (or if another member of the batch asked for it). A transaction without
   * operations waits for the writes already queued: what it read may be among them.
   */
  submit(ops: BatchOperation[], sync: boolean, onWritten?: () => void): Promise<void> {
    if (this.#failed !== undefined) {
      return Promise.reject(
        new LedgerError('ERR_LEDGER_WRITE_FAILED', 'an earlier batch failed: reopen the ledger', {
          cause: this.#failed,
        }),
      )
    }
    this.stats.submitted++
    if (ops.length === 0 && this.#open === undefined && this.#writing === undefined) {
      onWritten?.()
      return Promise.resolve()
    }
    let group: Group
    if (ops.length === 0 && this.#open === undefined) {
      group = this.#writing!
    } else {
      group = this.#open ??= { ops: [], sync: false, waiters: [], onWritten: [] }
      group.sync ||= sync
      for (const op of ops) {
        group.ops.push(op)
        let pending = this.#overlay.get(op.sublevel)
        if (pending === undefined) {
          pending = new Map()
          this.#overlay.set(op.sublevel, pending)
        }
        pending.set(op.key, { value: op.type === 'put' ? op.value : DELETED, group })
      }
    }
    if (onWritten !== undefined) group.onWritten.push(onWritten)
    const done = new Promise<void>((resolve, reject) => group.waiters.push({ resolve, reject }))
    if (this.#writing === undefined) queueMicrotask(() => this.#drain())
    return done
  }

  /** Resolves when every write queued so far was written (or failed). */
  idle(): Promise<void> {
    const last = this.#open ?? this.#writing
    if (last === undefined) return Promise.resolve()
    return new Promise<void>((resolve) => last.waiters.push({ resolve, reject: () => resolve() }))
  }

  async #drain(): Promise<void> {
    if (this.#writing !== undefined) return
    while (this.#open !== undefined && this.#failed === undefined) {
      const group = this.#open
      this.#open = undefined
      this.#writing = group
      try {
        if (group.ops.length > 0) {
          const options: BatchOptions = { sync: group.sync }
          await this.#db.batch(group.ops, options)
          this.stats.batches++
          if (group.sync) this.stats.syncs++
        }
      } catch (err: unknown) {
        this.#fail(err)
        return
      }
      this.#writing = undefined
      this.#forget(group)
      for (const f of group.onWritten) f()
      for (const w of group.waiters) w.resolve()
    }
  }

  /** Drop the overlay entries this group wrote (unless a later group overwrote them since). */
  #forget(group: Group): void {
    for (const op of group.ops) {
      const pending = this.#overlay.get(op.sublevel)
      if (pending?.get(op.key)?.group === group) {
        pending.delete(op.key)
        if (pending.size === 0) this.#overlay.delete(op.sublevel)
      }
    }
  }

  #fail(err: unknown): void {
    this.#failed = err
    const groups = [this.#writing, this.#open].filter((g): g is Group => g !== undefined)
    this.#writing = undefined
    this.#open = undefined
    this.#overlay.clear()
    for (const g of groups) for (const w of g.waiters) w.reject(err)
  }
}

/**
 * A read by key, inside a write transaction or from the ledger's point lookups. Where the backend
 * reads synchronously (classic-level's getSync: the memtable and block cache, ~1.5 µs), that beats
 * an async get's thread-pool round trip (~30 µs of CPU, and a wait behind fsyncs in the pool); the
 * keys read are few and mostly recently written, hence in memory.
 */
export async function readOne<V>(sublevel: Sublevel<V>, key: string): Promise<V | undefined> {
  return syncReads(sublevel) ? sublevel.getSync(key) : sublevel.get(key)
}

export async function readMany<V>(sublevel: Sublevel<V>, keys: string[]): Promise<(V | undefined)[]> {
  if (!syncReads(sublevel)) return sublevel.getMany(keys)
  return keys.map((k) => sublevel.getSync(k))
}

// abstract-level's typings predate the getSync manifest flag
const syncReads = (sublevel: { supports: object }): boolean =>
  (sublevel.supports as { getSync?: boolean }).getSync === true
