import { defineConfig } from 'vitest/config'

// The network-namespace tests (mDNS across namespaces, partitions, a cable back on a new interface,
// the short chaos run) and the compose venue built and run in Docker: one file at a time, after the
// rest of the suite. They skip themselves, saying why, when the process cannot create namespaces
// (not root, no iproute2) or get a Docker engine (not root and `docker info` fails).
export default defineConfig({
  test: {
    include: ['test/netns*.test.ts'],
    setupFiles: ['./test/setup.ts'],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
  },
})
