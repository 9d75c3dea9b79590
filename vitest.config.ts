import { defineConfig } from 'vitest/config'

// One config for the workspace. Unit tests live beside each package (packages/*/test),
// cross-package and multi-process tests under test/. Tests import packages by name, which
// resolves to the built dist/ (npm test builds first), so child processes and in-process
// code run the same compiled modules.
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // Multi-host tests in network namespaces run afterwards, alone (vitest.netns.config.ts): each
    // runs a whole venue, and sharing two cores with the rest of the suite only measures contention.
    exclude: ['test/netns*.test.ts', '**/node_modules/**'],
    setupFiles: ['./test/setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // A 2-core machine: multi-process tests already use both cores.
    maxWorkers: 2,
    fileParallelism: true,
  },
})
