import { randomBytes } from 'node:crypto'
import { cp, mkdir, readdir, rename, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** One result of a statement: its rows and how many rows it changed (or returned). */
export interface SqlResult<Row> {
  rows: Row[]
  rowCount: number
}

/** Where statements run: the database, or one open transaction. Parameters are `$1, $2, …`. */
export interface Sql {
  query<Row = Record<string, unknown>>(text: string, params?: unknown[]): Promise<SqlResult<Row>>
}

/**
 * The one database interface the SQL store runs on: node-postgres (a pool of connections to a
 * PostgreSQL server) or PGlite (PostgreSQL compiled to WASM, in-process). The same SQL runs on both.
 */
export interface SqlDb extends Sql {
  readonly kind: 'pglite' | 'postgres'
  /** Run fn in one READ COMMITTED transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>
  close(): Promise<void>
}

/** SQLSTATE codes that mean "another writer got there first: redo the unit of work". */
const CONFLICT_CODES: ReadonlySet<string> = new Set([
  '23505', // unique_violation
  '40001', // serialization_failure
  '40P01', // deadlock_detected
])

export function isConflictError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && CONFLICT_CODES.has(code)
}

// ── PostgreSQL server (node-postgres) ───────────────────────────────────────────────────────────

export interface PostgresInit {
  /** postgres://user:pass@host:port/db (or a unix socket: postgres:///db?host=/run/postgresql) */
  url: string
  /** connections in the pool (default 8) */
  max?: number
}

export async function openPostgres(init: PostgresInit): Promise<SqlDb> {
  const { default: pg } = await import('pg')
  const pool = new pg.Pool({
    connectionString: init.url,
    max: init.max ?? 8,
    application_name: 'nullmesh-central',
  })
  // an idle connection the server dropped must not crash the process
  pool.on('error', () => {})
  const client = await pool.connect() // fail fast on a bad URL
  client.release()
  const wrap = (c: {
    query: (t: string, p?: unknown[]) => Promise<{ rows: unknown[]; rowCount: number | null }>
  }): Sql => ({
    async query<Row>(text: string, params?: unknown[]): Promise<SqlResult<Row>> {
      const r = await c.query(text, params)
      return { rows: r.rows as Row[], rowCount: r.rowCount ?? r.rows.length }
    },
  })
  const direct = wrap(pool)
  return {
    kind: 'postgres',
    query: (text, params) => direct.query(text, params),
    async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
      const c = await pool.connect()
      let broken = false
      try {
        await c.query('BEGIN')
        const result = await fn(wrap(c))
        await c.query('COMMIT')
        return result
      } catch (err: unknown) {
        await c.query('ROLLBACK').catch(() => {
          broken = true
        })
        throw err
      } finally {
        c.release(broken)
      }
    },
    async close(): Promise<void> {
      await pool.end()
    },
  }
}

// ── PGlite (embedded) ───────────────────────────────────────────────────────────────────────────

export interface PgliteInit {
  /** the database directory; created (from a cached fresh cluster) when missing or empty */
  path: string
  /** where a freshly initialised cluster is kept to copy new databases from (default: node_modules/.cache) */
  templateDir?: string
}

interface PgliteLike {
  query<Row>(text: string, params?: unknown[]): Promise<{ rows: Row[]; affectedRows?: number }>
  transaction<T>(fn: (tx: { query: PgliteLike['query'] }) => Promise<T>): Promise<T>
  close(): Promise<void>
}

function pgliteVersion(): string {
  try {
    const require = createRequire(import.meta.url)
    const pkgPath = require.resolve('@electric-sql/pglite/package.json')
    return (require(pkgPath) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

function defaultTemplateDir(): string {
  const fromEnv = process.env.NULLMESH_PGLITE_CACHE
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  // dist/sql/db.js → the package root's node_modules/.cache (the usual home of tool caches)
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
  return join(root, 'node_modules', '.cache', 'nullmesh-pglite')
}

async function isEmptyDir(path: string): Promise<boolean> {
  try {
    return (await readdir(path)).length === 0
  } catch (err: unknown) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true
    throw err
  }
}

/**
 * initdb inside WASM takes seconds; a new database is a copy of one fresh, cleanly closed cluster
 * made once per PGlite version (the same bytes initdb would write).
 */
async function ensureTemplate(cacheDir: string): Promise<string> {
  const template = join(cacheDir, `cluster-${pgliteVersion()}`)
  if (!(await isEmptyDir(template))) return template
  await mkdir(cacheDir, { recursive: true })
  const building = `${template}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
  const { PGlite } = await import('@electric-sql/pglite')
  const db = (await PGlite.create(building)) as unknown as PgliteLike
  await db.close()
  try {
    await rename(building, template)
  } catch {
    // another process made it first
    await rm(building, { recursive: true, force: true })
  }
  return template
}

export async function openPglite(init: PgliteInit): Promise<SqlDb> {
  let template: string | undefined
  if (await isEmptyDir(init.path)) {
    // the template cache is an optimisation: where it cannot be written (a read-only install, a
    // container running as another user) the database is initialised in place
    template = await ensureTemplate(init.templateDir ?? defaultTemplateDir()).catch(() => undefined)
  }
  if (template !== undefined) {
    await mkdir(dirname(init.path), { recursive: true })
    const staging = `${init.path}.tmp-${randomBytes(4).toString('hex')}`
    await cp(template, staging, { recursive: true })
    await rm(init.path, { recursive: true, force: true })
    await rename(staging, init.path)
  }
  const { PGlite } = await import('@electric-sql/pglite')
  const db = (await PGlite.create(init.path)) as unknown as PgliteLike
  const wrap = (c: { query: PgliteLike['query'] }): Sql => ({
    async query<Row>(text: string, params?: unknown[]): Promise<SqlResult<Row>> {
      const r = await c.query<Row>(text, params)
      return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length }
    },
  })
  const direct = wrap(db)
  return {
    kind: 'pglite',
    query: (text, params) => direct.query(text, params),
    transaction: (fn) => db.transaction((tx) => fn(wrap(tx))),
    close: () => db.close(),
  }
}
