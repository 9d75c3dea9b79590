import { defaultPolicy } from '@nullmesh/policy'
import { type KeyPair, keyPairFromSeed, toHex } from '@nullmesh/protocol'
import { type Effect, MeshCore, type MutationName } from '../src/core/index.js'

/**
 * A sans-I/O core of a roster of `size` test keys (seeds 1…size), started with an empty store
 * (so it must learn its history first), with its effects collected for the test to inspect.
 */
export function coreFixture(opts: {
  size: number
  /** our index in the roster */
  me: number
  wall?: number
  mutations?: ReadonlySet<MutationName>
  /** a central keeps our synced events (CoreInit.centralRefill) */
  centralRefill?: boolean
  /** the store's next own seq (default 1: an empty store, so the core must learn its history) */
  nextSeq?: number
  /** leave the relearning mark's first fsync pending (start() waits on it) */
  holdMark?: boolean
}) {
  const keys: KeyPair[] = Array.from({ length: opts.size }, (_, i) =>
    keyPairFromSeed(new Uint8Array(32).fill(i + 1)),
  )
  const hex = keys.map((k) => toHex(k.publicKey))
  const effects: Effect[] = []
  /** `refill` effects asked for (kept apart: the fixture drops other effects as it goes) */
  let refills = 0
  const wall = opts.wall ?? 1_700_000_000_000
  const core = new MeshCore({
    venueId: 'v',
    policy: defaultPolicy('v'),
    key: keys[opts.me]!,
    roster: { size: opts.size, members: hex, isEnrolled: (k) => hex.includes(k) },
    clock: { wall: () => wall, mono: () => 0 },
    rng: () => 0.5,
    effects: (e) => {
      if (e.type === 'refill') refills++
      effects.push(e)
    },
    ...(opts.centralRefill === undefined ? {} : { centralRefill: opts.centralRefill }),
    ...(opts.mutations === undefined ? {} : { mutations: opts.mutations }),
  })
  /** the relearning mark's writes (set, then cleared once learned) made durable; other effects dropped */
  const marks = (): void => {
    for (const e of effects.splice(0))
      if (e.type === 'write' && e.relearning !== undefined) core.durable(e.id)
  }
  /** a peer greets us and its initial catch-up ends (`during` runs while it is open) */
  const learnFrom = (peer: string, during?: () => void): void => {
    core.peerConnected(peer)
    core.peerVerified(peer)
    core.catchupStarted(peer, true)
    during?.()
    core.catchupEnded(peer, true, true)
    marks()
    marks()
  }
  core.load({ events: [], pruned: [], confirmedMarks: {}, nextSeq: opts.nextSeq ?? 1 })
  core.start(1, [])
  if (opts.holdMark !== true) marks()
  return { core, keys, hex, effects, wall, marks, learnFrom, refills: () => refills }
}
