import { randomBytes } from 'node:crypto'
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { API_TOKEN_ENV, API_TOKEN_FILE } from './constants.js'

/** The API bearer token: given; else $NULLMESH_API_TOKEN; else generated once into `<dataDir>/api-token` (0600). */
export async function resolveToken(init: { token?: string | undefined; dataDir: string }): Promise<string> {
  if (init.token !== undefined && init.token !== '') return init.token
  const fromEnv = process.env[API_TOKEN_ENV]
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  const path = join(init.dataDir, API_TOKEN_FILE)
  try {
    const existing = (await readFile(path, 'utf8')).trim()
    if (existing !== '') return existing
  } catch (err: unknown) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const token = randomBytes(32).toString('base64url')
  try {
    await writeFile(path, `${token}\n`, { mode: 0o600, flag: 'wx' })
  } catch (err: unknown) {
    // another start raced us: use what it wrote
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await readFile(path, 'utf8')).trim()
    throw err
  }
  await chmod(path, 0o600)
  return token
}
