import { MAX_EVENT_BYTES, type SignedEvent, seqRanges, toHex } from '@nullmesh/protocol'
import { CATCHUP_MAX_HELD_RANGES, MAX_GOSSIP_BYTES } from '../constants.js'
import { EventValidationError } from '../errors.js'
import { validateEventBytes } from '../validation.js'
import type { MeshCore } from './core.js'
import * as recovery from './recovery.js'
import * as responder from './responder.js'

/**
 * Catch-up (anti-entropy) and dissemination, receiving side: events pushed, gossiped or caught
 * up are validated alike and applied to the view; they are written without fsync (no approval
 * waits for them). The serving side reads the store (catchupSummary / eventsAfter below are the
 * pure rules the simulator's store uses; the LevelDB ledger implements the same).
 */

/**
 * While we relearn after a lost disk, an unsettled reservation of a card whose group we are in (or
 * our own) may be one we acked, or signed, before the disk was lost: that hold died with the disk.
 * Learned as "not held", a later quorum that meets the certifying one only in us would not see it,
 * and the card passes its cap (simulator, seed 7: `card-amount-cap`). So it is held again, until
 * its Commit or Release is known (or central abandons it). See docs/protocol.md, "Holds relearned
 * after a lost disk".
 */
export function heldOnRelearn(core: MeshCore, signed: SignedEvent): boolean {
  if (core.view.seqKnown || signed.event.type !== 'reservation') return false
  if (core.view.settled.has(signed.idHex) || core.mut('no-relearned-holds')) return false
  const r = signed.event
  return toHex(r.origin) === core.me || core.groupOf(r.cardKey).has(core.me)
}

/** a validated event from a peer: into the view now, into the store soon (not on an approval path) */
export function applyRemote(core: MeshCore, signed: SignedEvent, source: 'gossip' | 'catchup'): void {
  if (core.view.known.has(signed.idHex)) return
  const held = heldOnRelearn(core, signed)
  core.view.apply(signed, held)
  core.write([{ event: signed, held }], { sync: false, own: false })
  core.out({ type: 'event', event: signed, source })
}

export function receive(core: MeshCore, bytes: Uint8Array): unknown {
  try {
    const signed = validateEventBytes(core.validationContext(), bytes, MAX_GOSSIP_BYTES)
    applyRemote(core, signed, 'gossip')
    return undefined
  } catch (err: unknown) {
    if (err instanceof EventValidationError && err.action === 'REJECT')
      core.log(`reject ${err.code}: ${err.message}`)
    return err
  }
}

export function started(core: MeshCore, key: string, initial: boolean): void {
  if (initial) core.catchups.set(key, (core.catchups.get(key) ?? 0) + 1)
}

/** one frame of a catch-up answer: validated and applied; returns how many were new */
export function batch(core: MeshCore, _key: string, frames: Uint8Array[]): number {
  return applyFrames(core, frames, 'catchup')
}

/**
 * One page of our own events that central kept (a lost disk's refill, recovery.ts): validated and
 * applied like a catch-up. Only our own events, and only while we have not learned: once we sign
 * again a late page could only repeat what we know, or contradict what we signed since.
 */
export function refillBatch(core: MeshCore, frames: Uint8Array[]): number {
  if (core.view.seqKnown || core.refill !== 'awaiting') return 0
  return applyFrames(core, frames, 'central', (signed) => toHex(signed.event.origin) === core.me)
}

/**
 * Validate and apply events that arrived in bulk (written without fsync: no approval waits for
 * them); an event `accept` refuses is left out. Returns how many were new.
 */
function applyFrames(
  core: MeshCore,
  frames: Uint8Array[],
  source: 'catchup' | 'central',
  accept?: (signed: SignedEvent) => boolean,
): number {
  const valid: { event: SignedEvent; held: boolean }[] = []
  const ctx = core.validationContext()
  for (const bytes of frames) {
    try {
      const signed = validateEventBytes(ctx, bytes, MAX_EVENT_BYTES)
      if (accept !== undefined && !accept(signed)) {
        core.log(`${source} event of another origin left out`)
        continue
      }
      const held = heldOnRelearn(core, signed)
      core.view.apply(signed, held)
      valid.push({ event: signed, held })
    } catch (err: unknown) {
      if (!(err instanceof EventValidationError) || err.action !== 'IGNORE')
        core.log(`${source} event rejected: ${(err as Error).message}`)
    }
  }
  if (valid.length > 0) {
    core.write(valid, { sync: false, own: false })
    for (const { event } of valid) core.out({ type: 'event', event, source })
  }
  return valid.length
}

/**
 * A catch-up finished. After the initial one (the one behind a hello) succeeded, the peer counts
 * toward the quorum, and once a quorum of peers taught us our own history we may sign again.
 */
export function ended(core: MeshCore, key: string, ok: boolean, initial: boolean): void {
  if (initial) {
    const n = (core.catchups.get(key) ?? 1) - 1
    if (n <= 0) core.catchups.delete(key)
    else core.catchups.set(key, n)
  }
  const peer = core.reach.get(key)
  if (initial && ok && peer?.verified) {
    core.reach.markCaughtUp(key)
    core.learnedFrom.add(key)
    // any event of ours that a roster quorum certified is held by one of these peers
    // (intersection, not counting ourselves: a lost disk holds nothing; counting ourselves let a
    // wiped terminal of 5 learn from 2 peers that missed its certified seq 1, DST seed 14); with
    // custodian groups see docs/protocol.md ("Custodian groups", lost disks)
    recovery.maybeLearned(core)
    core.out({ type: 'peer', key, state: 'ready' })
    core.updateMode()
  }
  responder.wake(core)
}

// ---- the serving side's rules, for stores without an index (the simulator) ------------------------

/** an event's origin in hex, computed once per event object (these rules scan whole stores) */
const originHexes = new WeakMap<SignedEvent, string>()
function originHex(e: SignedEvent): string {
  let hex = originHexes.get(e)
  if (hex === undefined) {
    hex = toHex(e.event.origin)
    originHexes.set(e, hex)
  }
  return hex
}

/**
 * What a catch-up request states the asker holds: per origin its contiguous mark, and the seqs
 * it holds past the first gap as ascending inclusive ranges, flat [from, to, from, to, …] (at
 * most CATCHUP_MAX_HELD_RANGES in all). The answer leaves those out: a peer that missed one event
 * is sent that event, not everything after it. A range left out of the summary (the cap) only
 * costs resending it. See docs/protocol.md, "Catch-up (anti-entropy)".
 */
export interface CatchupHave {
  marks: Record<string, number>
  held: Record<string, number[]>
}

/** a request's summary of a set of events (the simulator's store; the ledger's catchupSummary) */
export function catchupSummary(
  events: Iterable<SignedEvent>,
  maxRanges = CATCHUP_MAX_HELD_RANGES,
): CatchupHave {
  const seqs = new Map<string, Set<number>>()
  for (const e of events) {
    const hex = originHex(e)
    const s = seqs.get(hex)
    if (s === undefined) seqs.set(hex, new Set([e.event.seq]))
    else s.add(e.event.seq)
  }
  const marks: Record<string, number> = {}
  const held: Record<string, number[]> = {}
  let left = maxRanges
  for (const o of [...seqs.keys()].sort()) {
    const s = seqs.get(o)!
    let m = 0
    while (s.has(m + 1)) m++
    marks[o] = m
    if (s.size === m || left <= 0) continue
    const ranges = seqRanges(
      [...s].filter((x) => x > m).sort((a, b) => a - b),
      left,
    )
    held[o] = ranges
    left -= ranges.length / 2
  }
  return { marks, held }
}

/** per-origin contiguous high-water marks of a set of events */
export function contiguousMarks(events: Iterable<SignedEvent>): Record<string, number> {
  return catchupSummary(events, 0).marks
}

/** is `seq` in one of these ascending inclusive ranges? */
function inRanges(ranges: readonly number[] | undefined, seq: number): boolean {
  if (ranges === undefined) return false
  let lo = 0
  let hi = ranges.length / 2 - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (seq < ranges[2 * mid]!) hi = mid - 1
    else if (seq > ranges[2 * mid + 1]!) lo = mid + 1
    else return true
  }
  return false
}

/** the events above the marks and outside the held ranges, in (origin, seq) order */
export function eventsAfter(
  events: Iterable<SignedEvent>,
  marks: Record<string, number>,
  limit = Number.POSITIVE_INFINITY,
  held: Record<string, readonly number[]> = {},
): SignedEvent[] {
  const out: { o: string; e: SignedEvent }[] = []
  for (const e of events) {
    const hex = originHex(e)
    if (e.event.seq > (marks[hex] ?? 0) && !inRanges(held[hex], e.event.seq)) out.push({ o: hex, e })
  }
  out.sort((a, b) => (a.o < b.o ? -1 : a.o > b.o ? 1 : a.e.event.seq - b.e.event.seq))
  return out.slice(0, limit).map((x) => x.e)
}
