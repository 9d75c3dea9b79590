import type { MeshCore, WireMsg } from '@nullmesh/mesh/core'
import type { OnlineCore } from '@nullmesh/terminal/core'
import type { Violation } from './config.js'
import { type KeyPair, type Reservation, type SignedEvent, toHex } from './deps.js'
import type { Disk } from './disk.js'

/** The simulated world's types: payments, terminals (nodes), scheduled events, approvals. */
export interface Payment {
  id: number
  node: number
  nullifier: Uint8Array
  nullHex: string
  card: number
  amountMinor: number
  online: boolean
  /** the POS wants online only (declined rather than decided offline) */
  requireOnline: boolean
  attempt: number
  /** the tap budget's end (simulated monotonic ms), set when the terminal takes it */
  deadline?: number
}

export interface ClientOp {
  kind: 'offline' | 'reserve' | 'fallback' | 'complete' | 'start'
  payment?: Payment | undefined
  reservation?: SignedEvent<Reservation> | undefined
  approved?: boolean
  /** offline decisions: the tap deadline the core was given (or its own: start + tap budget) */
  deadline?: number
}

export interface Node {
  i: number
  name: string
  key: KeyPair
  hex: string
  up: boolean
  inc: number
  core?: MeshCore | undefined
  disk: Disk
  skew: number
  jump: number
  /** effects of the core waiting to be carried out (never re-entered synchronously) */
  ops: Map<number, ClientOp>
  /** write id of the core → disk write */
  writes: Map<number, number>
  /** the terminal's online path: the same core the daemon runs (@nullmesh/terminal/core) */
  online: OnlineCore
  /** what the simulator knows of each online attempt (for the checkers), by reservation id */
  attempts: Map<string, OnlineAttempt>
  started: boolean
  /** payments in flight, retried by the POS after a crash */
  inflight: Map<number, Payment>
  /** when (effect number) this incarnation's core first applied each event: the view checker */
  knownAt: Map<string, number>
  /** own reservations whose first barrier request was sent */
  requested: Set<string>
  /** this incarnation started without knowing its own history: the checker snapshots it when learnt */
  relearnPending?: boolean
  /** after a wipe: 1 until a catch-up refills the disk, 2 while the refill is not all on disk */
  refill?: 0 | 1 | 2 | undefined
  /** the refill of own events from central (core effect `refill`) is in flight */
  refilling?: boolean
  /** own event ids central gave back to this incarnation (the checker counts them as learnt) */
  refilledIds?: Set<string> | undefined
  /** this incarnation asked central for its own events (a core that never asks is judged as if
   * central had given them all back: the refill is the protocol's, its absence no residual) */
  refillAsked?: boolean
}

export interface OnlineAttempt {
  /** the payment a decision is answering; undefined for an attempt found pending at start */
  payment?: Payment | undefined
  res: SignedEvent<Reservation>
  /** reserved without a quorum round (the quorum really unreachable): central's dedup is the only guard */
  isolated: boolean
  /** the Commit's seq once completed */
  seq?: number
}

export type Ev =
  | {
      at: number
      seq: number
      k: 'deliver'
      to: number
      from: number
      msg: WireMsg
      toInc: number
      /** the sender's incarnation (stream messages): an ack it gave before its disk was wiped */
      fromInc?: number
    }
  | { at: number; seq: number; k: 'timer'; node: number; inc: number; id: number }
  | { at: number; seq: number; k: 'fsync'; node: number; inc: number; w: number; coreW: number[] }
  | { at: number; seq: number; k: 'flush'; node: number; inc: number; w: number }
  | { at: number; seq: number; k: 'hello'; a: number; b: number; epoch: number }
  | { at: number; seq: number; k: 'dialed'; node: number; inc: number; key: string; ok: boolean }
  | {
      at: number
      seq: number
      k: 'catchreq'
      from: number
      to: number
      epoch: number
      marks: Record<string, number>
      /** seqs the asker holds past its marks (CatchupHave.held) */
      held: Record<string, number[]>
      initial: boolean
    }
  | {
      at: number
      seq: number
      k: 'catchans'
      to: number
      from: number
      epoch: number
      frames: Uint8Array[]
      initial: boolean
    }
  | { at: number; seq: number; k: 'central'; node: number; req: CentralReq }
  | {
      at: number
      seq: number
      k: 'centralAns'
      node: number
      inc: number
      req: CentralReq
      ok: boolean
      /** central refused the request itself (4xx: an authorisation dated ahead of its clock) */
      rejected?: boolean
      marks?: number
      voidStatus?: 'voided' | 'committed'
      unreachable?: boolean
      /** a refill's answer: the origin's events central holds, in seq order */
      events?: SignedEvent[]
    }
  | { at: number; seq: number; k: 'onlineTimeout'; node: number; inc: number; resId: string }
  | { at: number; seq: number; k: 'mark'; node: number; inc: number; resId: string }
  | { at: number; seq: number; k: 'markLate'; node: number; inc: number; resId: string }
  | { at: number; seq: number; k: 'pay' }
  | { at: number; seq: number; k: 'retry'; payment: Payment }
  | { at: number; seq: number; k: 'fault' }
  | { at: number; seq: number; k: 'heal'; what: string; a: number; b: number }
  | { at: number; seq: number; k: 'restart'; node: number; wipe: boolean; connected?: boolean }
  | { at: number; seq: number; k: 'net' }
  | { at: number; seq: number; k: 'tick'; node: number; inc: number }
  /** a refill from central still unanswered is given up */
  | { at: number; seq: number; k: 'refill'; node: number; inc: number }
  | { at: number; seq: number; k: 'centralUp' }
  | { at: number; seq: number; k: 'crash'; node: number; inc: number; why: string; wipe: boolean }
  | { at: number; seq: number; k: 'aimed'; what: 'relearn-wipe' | 'relearn-heal'; node: number }

type DistOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never
/** an event as scheduled (Sim.at stamps its time and sequence number) */
export type EvInit = DistOmit<Ev, 'at' | 'seq'>
/** the event of one kind (a role's handler) */
export type EvOf<K extends Ev['k']> = Extract<Ev, { k: K }>

export type CentralReq =
  | { t: 'authorize'; res: SignedEvent<Reservation>; inc: number }
  | { t: 'void'; resId: string; res: SignedEvent<Reservation>; inc: number }
  | { t: 'sync'; events: SignedEvent[]; inc: number }
  | { t: 'refill'; inc: number }

export interface Approval {
  resId: string
  nullifier: string
  card: number
  amountMinor: number
  ts: number
  mode: 'quorum' | 'isolated' | 'online'
  /** an online approval reserved without a quorum round */
  isolatedOnline?: boolean
  /** what it uses of its terminal's isolated budget (isolated approvals, online ones no quorum held) */
  isolatedMinor?: number
  node: number
  seq: number
  step: number
}

/** an event's origin in hex, once per event object: the simulator scans whole disks per tick */
export const originHexes = new WeakMap<SignedEvent, string>()
export function originOf(e: SignedEvent): string {
  let hex = originHexes.get(e)
  if (hex === undefined) {
    hex = toHex(e.event.origin)
    originHexes.set(e, hex)
  }
  return hex
}

export class Stop extends Error {
  constructor(readonly violation: Violation) {
    super(violation.invariant)
  }
}
