import { MUTATIONS, type MutationName } from '@nullmesh/mesh/core'
import { defaultPolicy, type VenuePolicy } from '@nullmesh/policy'
import type { CustodianGroups, KeyPair, SignedAck, SignedEvent } from '@nullmesh/protocol'
import { ONLINE_MUTATIONS, type OnlineMutationName } from '@nullmesh/terminal/core'

/** What a run is given and what it returns, the simulator's venue policy and its constants. */
/** every known-bad mutation: of the mesh core and of the terminal's online core */
export const ALL_MUTATIONS = [...MUTATIONS, ...ONLINE_MUTATIONS] as const
export type AnyMutation = MutationName | OnlineMutationName

export const FAULTS = [
  'loss',
  'dup',
  'reorder',
  'partition',
  'asymmetric',
  'flap',
  'crash',
  'crash-mid-write',
  'wipe',
  'fsync',
  'skew',
  'jump',
  'central-late',
  'central-lost',
  'central-down',
  'outage',
] as const
export type FaultName = (typeof FAULTS)[number]

export interface SimOptions {
  terminals: number
  seed: number
  /** steps (queue events) of the safety phase */
  steps: number
  faults: ReadonlySet<FaultName>
  mutations?: ReadonlySet<AnyMutation>
  /** keep the full step trace (else only the last lines, for a failure report) */
  trace?: boolean
  /** sign with Ed25519 instead of the simulated scheme (signatures.ts): same steps and results, slower */
  realCrypto?: boolean
  /**
   * Start from a formed venue: every pair connected, greeted and caught up at time 0, as setup
   * rather than simulated traffic (the ledgers are empty then, so those catch-ups carry nothing).
   * Reconnections after faults and restarts still take the real path. For large rosters, where
   * forming the full mesh (~N²/2 greetings and N² catch-ups) would take the whole run.
   */
  formed?: boolean
  /** return every terminal's durable store at the end (SimResult.disks): for start-up equivalence checks */
  keepDisks?: boolean
}

/** A terminal's durable store at the end of a run, and what its core was built with. */
export interface SimDisk {
  name: string
  key: KeyPair
  records: { event: SignedEvent; held: boolean; ackGiven?: SignedAck | undefined }[]
  confirmed: Record<string, number>
  relearning: boolean
  /** the largest own seq a finished relearning took back */
  learnedThrough: number
  venueId: string
  policy: VenuePolicy
  members: string[]
  groups: CustodianGroups
}

export interface Violation {
  seed: number
  step: number
  invariant: string
  detail: string
}

/**
 * What the payments cost, summed over every terminal. Barrier: the decision path (requests and
 * answers, sync writes, signature checks while handling them). Dissemination: Commits and Releases
 * pushed or gossiped to the rest of the venue (each terminal receives each once: O(N) venue-wide,
 * constant per terminal).
 */
export interface SimCost {
  barrierMessages: number
  barrierSignatureChecks: number
  fsyncs: number
  disseminationDeliveries: number
  disseminationSignatureChecks: number
  /** catch-up answers, the events they carried, and those the asking peer already held */
  catchups: number
  catchupEvents: number
  catchupEventsHeld: number
}

export function emptyCost(): SimCost {
  return {
    barrierMessages: 0,
    barrierSignatureChecks: 0,
    fsyncs: 0,
    disseminationDeliveries: 0,
    disseminationSignatureChecks: 0,
    catchups: 0,
    catchupEvents: 0,
    catchupEventsHeld: 0,
  }
}

export interface SimResult {
  seed: number
  steps: number
  payments: number
  approvals: number
  cost: SimCost
  faults: Record<string, number>
  /** the fault mix drawn for this seed */
  mix: Record<string, number>
  violation?: Violation | undefined
  /** the last trace lines before the violation (or the full trace with opts.trace) */
  trace: string[]
  /** with opts.keepDisks */
  disks?: SimDisk[]
}

export const VENUE = 'dst-venue'
export const EPOCH = 1_750_000_000_000
export const CURRENCY = 'EUR'
export const ONLINE_TIMEOUT_MS = 800
/**
 * A wiped terminal's refill of its own events from central: asked once, given up without an answer
 * after TIMEOUT ms (the daemon's CENTRAL_REFILL_FIRST_TIMEOUT_MS). Fixed delays: no draw from the
 * rng, so seeds without a wiped disk keep their schedules.
 */
export const CENTRAL_REFILL_TIMEOUT_MS = 2_000
/** the end of a run: everything healed, ledgers sync until this much simulated time passed */
export const DRAIN_MS = 10_000
/** peers' events a terminal forwards to central in one sync, after its own */
export const FORWARD_PER_SYNC = 200
/** one way to central and back for a refill (fixed: see above) */
export const CENTRAL_REFILL_LATENCY_MS = 3
/**
 * Events per catch-up page, each written by the core on its own (production pages hold up to
 * CATCHUP_BATCH = 256 events; the simulator's histories are shorter): a crash between the flushes
 * of two pages leaves a store refilled in part.
 */
export const CATCHUP_PAGE = 32

/** the venue cap per terminal (escrow shares): binding within the 20-second queue window (shorter than the liveness phase, so a venue that used its cap approves again) */
export const VENUE_CAP_PER_TERMINAL = 40_000

export function simPolicy(terminals = 5): VenuePolicy {
  return defaultPolicy(VENUE, {
    currencies: {
      [CURRENCY]: {
        floorLimitMinor: 5000,
        cardCapMinor: 10_000,
        deviceCapMinor: 1_000_000_000,
        venueCapMinor: VENUE_CAP_PER_TERMINAL * terminals,
        isolatedFloorLimitMinor: 3000,
        isolatedDeviceCapMinor: 6000,
      },
    },
    cardWindowMs: 10 * 60_000,
    cardCapCount: 4,
    deviceMaxQueued: 1_000_000,
    // the window of the device and venue caps: short, so escrow shares are used and freed again
    queueDurationMs: 20_000,
    maxClockSkewMs: 30_000,
    tapBudgetMs: 2000,
    barrier: { timeoutMs: 400 },
  })
}
