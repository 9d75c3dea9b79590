import { existsSync, readdirSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createLedger, type Ledger } from '@nullmesh/ledger'
import { existingDir } from './args.js'
import { UserError } from './errors.js'

function isLevelDir(dir: string): boolean {
  return existsSync(join(dir, 'CURRENT'))
}

/**
 * The LevelDB directory of a terminal's ledger, given the terminal's data directory (which holds
 * it as a subdirectory, normally `ledger/`) or the ledger directory itself.
 */
export function findLedgerDir(data: string): string {
  const dir = existingDir(data, '--data')
  for (const candidate of [join(dir, 'ledger'), dir]) if (isLevelDir(candidate)) return candidate
  const subdirs = readdirSync(dir)
    .map((name) => join(dir, name))
    .filter((p) => statSync(p).isDirectory())
  const found = subdirs.filter((p) => isLevelDir(p) && !/central/i.test(p))
  if (found.length === 1) return found[0]!
  if (found.length > 1)
    throw new UserError(
      `${data} holds several databases (${found.join(', ')}): pass the ledger directory itself`,
    )
  throw new UserError(
    `no ledger in ${resolve(data)} (expected a terminal data directory, or its ledger/ directory)`,
  )
}

/** Open a ledger for reading; a running terminal holding it becomes a one-line user error. */
export async function openLedger(data: string): Promise<Ledger> {
  const path = findLedgerDir(data)
  const ledger = createLedger({ path })
  try {
    await ledger.open()
  } catch (err: unknown) {
    if ((err as { code?: unknown }).code === 'ERR_LEDGER_LOCKED') {
      throw new UserError(
        `the ledger in ${path} is in use (a terminal is running on it): stop the terminal first`,
        1,
      )
    }
    throw err
  }
  return ledger
}
