#!/usr/bin/env node
// The `nullmesh` command as npm links it (node_modules/.bin/nullmesh, `npx nullmesh`).
//
// npm links a workspace's bin when it installs, before anything is built: a bin pointing into dist/
// would not exist then, and npm skips it. This committed file always exists; it runs the compiled
// CLI, and in a fresh checkout, where dist/ is missing, it builds the workspace once first
// (`tsc -b`, the same as `npm run build`). A published package ships dist/, so it never builds.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const entry = join(here, '..', 'dist', 'bin.js')

if (!existsSync(entry)) {
  const root = join(here, '..', '..', '..')
  let tsc
  try {
    tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc')
  } catch {
    tsc = undefined
  }
  if (tsc === undefined || !existsSync(join(root, 'tsconfig.json'))) {
    process.stderr.write(`nullmesh: ${entry} is missing and there is no workspace to build it from\n`)
    process.exit(1)
  }
  process.stderr.write('nullmesh: first run in this checkout: building the workspace (tsc -b)…\n')
  const built = spawnSync(process.execPath, [tsc, '-b'], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  if (built.status !== 0 || !existsSync(entry)) {
    process.stderr.write('nullmesh: the build failed; run `npm run build` to see why\n')
    process.exit(1)
  }
}

await import(pathToFileURL(entry).href)
