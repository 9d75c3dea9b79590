#!/usr/bin/env node
// Node 20 lacks Promise.withResolvers, which libp2p uses: the shim must load before anything else.
import '@nullmesh/protocol/shim'

// `nullmesh … | head`: a closed pipe ends the command quietly instead of with a stack trace
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0)
    throw err
  })
}

const { main } = await import('./main.js')
const code = await main(process.argv)
if (code !== undefined) process.exitCode = code
