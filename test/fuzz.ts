/**
 * Budget of the fuzz tests (issue 17, item 7): `npm test` runs a bounded pass (a few seconds per
 * target); `npm run fuzz` sets NULLMESH_FUZZ_RUNS for a long one, and NULLMESH_FUZZ_SEED replays a
 * failure fast-check reported.
 */
export const FUZZ_SCALE = Number(process.env.NULLMESH_FUZZ_RUNS ?? '1')
export const runs = (bounded: number): number => Math.max(1, Math.round(bounded * FUZZ_SCALE))
export const fuzzTimeout = (boundedMs: number): number => Math.max(boundedMs, boundedMs * FUZZ_SCALE)
const seed = process.env.NULLMESH_FUZZ_SEED
export const fcOptions = (bounded: number) => ({
  numRuns: runs(bounded),
  ...(seed === undefined ? {} : { seed: Number(seed) }),
})
