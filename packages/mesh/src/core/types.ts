import type { VenuePolicy } from '@nullmesh/policy'
import type {
  CustodianGroups,
  DeclineCode,
  KeyPair,
  PaymentMethod,
  ProofDecision,
  SignedAck,
  SignedEvent,
} from '@nullmesh/protocol'

/**
 * Known-bad mutations of the core, for the simulator's mutation check (`npm run dst:mutants`).
 * Production never sets any: MeshInit has no way to pass them; only the simulator does.
 */
export const MUTATIONS = [
  /** barrier responder: decide offline acks without the origin's view of the card */
  'no-view-check',
  /** barrier responder: send the ack before the hold is durable */
  'ack-before-durable',
  /** barrier origin: send the reservation before the origin's own write is durable */
  'send-before-durable',
  /** barrier origin: count a signed refusal as an ack */
  'refusal-as-ack',
  /** online path: no nullifier check (neither the origin's own nor the peers' online acks) */
  'no-online-nullifier-check',
  /** recovery: release pending online reservations at start without asking central */
  'release-pending-online',
  /** isolated budget measured per time window (card window) instead of until central confirms */
  'isolated-window',
  /** recovery: sign again after a wiped disk without learning the own high-water mark */
  'reuse-seq-after-wipe',
  /** barrier origin: rounds run to the tap deadline, leaving no time to commit (or record a decline) */
  'no-finish-reserve',
  /** barrier origin: take the view sent with a reservation after its fsync, not with the decision */
  'view-after-fsync',
  /** custodian groups: ask every ready peer and count acks from outside the card's group (responders answer them) */
  'ack-outside-group',
  /** escrow: approve offline without checking the terminal's share of the venue cap */
  'escrow-overdraw',
  /** escrow: send a transfer before the giver's debit is durable */
  'transfer-before-durable',
  /** recovery: no durable "relearning" mark, so a crash while relearning leaves a store trusted as intact */
  'no-relearning-mark',
  /** recovery: a terminal relearning after a lost disk signs without its own events central kept */
  'no-central-refill',
  /** recovery: reservations relearned after a lost disk are not held again (seed 7's card-amount-cap) */
  'no-relearned-holds',
  /** recovery: own reservations learned back after a lost disk, without a Commit here, released at start (seed 2449's card-amount-cap) */
  'release-relearned',
  /** online path: send to central without a quorum round and without the isolated budget's admission */
  'unheld-online-unbounded',
] as const
export type MutationName = (typeof MUTATIONS)[number]

/** Injected time: `wall` signs events and judges timestamps, `mono` measures deadlines and timers. */
export interface Clock {
  wall(): number
  mono(): number
}

/** The enrolled terminals, by public key (hex); validity judged at `now`. */
export interface Roster {
  readonly size: number
  /**
   * every roster member's public key (hex), from the signed venue bundle: custodian groups are
   * computed over it, so every terminal and central must use the same list
   */
  readonly members: readonly string[]
  isEnrolled(publicKeyHex: string, now: number): boolean
  /** operator revocation (issue 17): nothing this key signs at or after its effective time counts */
  isRevoked?(publicKeyHex: string, at: number): boolean
}

export interface CoreInit {
  venueId: string
  policy: VenuePolicy
  key: KeyPair
  roster: Roster
  clock: Clock
  /** uniform in [0, 1): back-off jitter and the anti-entropy peer; seeded in the simulator */
  rng: () => number
  /** receives every effect, synchronously, in order */
  effects: (effect: Effect) => void
  /** simulator only: frozen, default empty */
  mutations?: ReadonlySet<MutationName>
  /**
   * The roster's custodian groups, shared by cores that run on one roster in one process (the
   * simulator: a card's group is computed once, not once per core). Default: the core's own.
   */
  groups?: CustodianGroups
  /**
   * A central service keeps this terminal's synced events. A terminal that relearns its history
   * after a lost disk then also takes its own events back from central (effect `refill`) before it
   * signs: an isolated approval synced to central before the disk was lost may be held by no peer
   * (docs/protocol.md, "Lost disks"). Default false: no central.
   */
  centralRefill?: boolean
}

/** Barrier messages between cores (the adapter maps them onto the barrier stream's frames). */
export type WireMsg =
  | { t: 'req'; rid: number; bytes: Uint8Array; view: string[]; online: boolean }
  | { t: 'ans'; rid: number; ack: Uint8Array | null }
  | { t: 'push'; bytes: Uint8Array }

export interface WriteRecord {
  event: SignedEvent
  held: boolean
  ackGiven?: SignedAck | undefined
}

export interface OfflineCandidate {
  nullifier: Uint8Array
  cardKey: Uint8Array
  amountMinor: number
  currency: string
  method: PaymentMethod
  /** issuer identification number, checked at the origin only (never leaves the terminal) */
  bin?: string | undefined
}

export interface BarrierStats {
  acks: number
  quorum: number
  ms: number
  attempts: number
}

export type MeshMode = 'quorum' | 'isolated'

export interface OfflineDecision {
  approved: boolean
  decision: ProofDecision
  declineCode?: DeclineCode | undefined
  message?: string | undefined
  mode: MeshMode
  /** the reservation's content id: the payment id of an offline payment */
  reservationId?: string | undefined
  commitId?: string | undefined
  seq: number
  ts: number
  proof: Uint8Array
  barrier: BarrierStats
}

export type OpResult =
  | { ok: true; value: unknown }
  | { ok: false; code: 'ERR_REFUSED' | 'ERR_ABORTED' | 'ERR_WRITE'; message: string }

export type EventSource = 'self' | 'gossip' | 'catchup' | 'barrier' | 'central'

/**
 * What the core asks its environment to do. `write` completes with `durable(id)` (sync writes
 * only: unsynced ones complete with nothing); a write with `relearning` sets (true) or clears
 * (false) the store's durable "relearning" mark, ordered after every earlier write (recovery.ts);
 * `dial` completes with `dialEnded(key, result)` (a connection then arrives as `peerConnected` like
 * any other); `timer` fires with `timer(id)` after `afterMs` of monotonic time; `done` answers the
 * operation `op`.
 */
export type Effect =
  | { type: 'send'; to: string; msg: WireMsg }
  | { type: 'gossip'; bytes: Uint8Array }
  | {
      type: 'write'
      id: number
      records: WriteRecord[]
      sync: boolean
      own: boolean
      relearning?: boolean | undefined
      /** with relearning false: the largest own seq learned back, kept with the cleared mark */
      learnedThrough?: number | undefined
    }
  | { type: 'timer'; id: number; afterMs: number }
  /** connect to this enrolled peer within timeoutMs; answered with dialEnded(key, result) */
  | { type: 'dial'; key: string; timeoutMs: number }
  | { type: 'done'; op: number; result: OpResult }
  | { type: 'mode'; mode: MeshMode }
  | { type: 'peer'; key: string; state: 'ready' | 'disconnected' }
  | { type: 'event'; event: SignedEvent; source: EventSource }
  | { type: 'log'; message: string }
  /**
   * take our own events back from central (a lost disk): answer with `refillBatch(frames)` for
   * each page and `refillEnded(ok)` (ok false: central could not be asked; learning goes on without)
   */
  | { type: 'refill' }
