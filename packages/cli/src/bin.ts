#!/usr/bin/env node
// Node 20 lacks Promise.withResolvers, which libp2p uses: the shim must load before anything else.
import '@nullmesh/protocol/shim'

const { main } = await import('./main.js')
const code = await main(process.argv)
if (code !== undefined) process.exitCode = code
