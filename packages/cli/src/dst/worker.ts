import { parentPort, workerData } from 'node:worker_threads'
import type { DstArgs } from './main.js'
import { seedOptions } from './main.js'
import { runSeed } from './sim.js'

/** A worker thread of `npm run dst -- --jobs N` (main.ts runManyParallel): runs the seeds it is sent. */
const args = workerData as DstArgs
parentPort!.on('message', (seed: number) => {
  parentPort!.postMessage(runSeed(seedOptions(args, seed)))
})
