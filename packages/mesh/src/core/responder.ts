import { decideAck, decideOnlineAck } from '@nullmesh/policy'
import {
  decodeEvent,
  MAX_EVENT_BYTES,
  ONLINE_ACK_REASON,
  type Reservation,
  type SignedAck,
  type SignedEvent,
  signAck,
  toHex,
} from '@nullmesh/protocol'
import { EventValidationError } from '../errors.js'
import { validateEventBytes } from '../validation.js'
import { applyRemote } from './catchup.js'
import type { MeshCore } from './core.js'
import { facts } from './view.js'

/**
 * Barrier responder: a peer asks us to hold its reservation. The same policy function the origin
 * used decides; an ack is signed only once the hold is in our view (synchronously, so no
 * concurrent request can double-book) and sent only once it is durable.
 */

export interface Parked {
  from: string
  rid: number
  bytes: Uint8Array
  view: string[]
  online: boolean
  timer: number
}

export interface Waiter {
  from: string
  rid: number
  reason: string
}

type Req = { rid: number; bytes: Uint8Array; view: string[]; online: boolean }

function answer(core: MeshCore, to: string, rid: number, ack: SignedAck | undefined): undefined {
  core.send(to, { t: 'ans', rid, ack: ack?.bytes ?? null })
  return undefined
}

function refuse(core: MeshCore, reservationId: Uint8Array, reason: string): SignedAck {
  return signAck(core.key, {
    venue: core.venueId,
    acker: core.key.publicKey,
    reservationId,
    ok: false,
    reason,
    ts: core.wall(),
  })
}

/** relearning after a lost disk (or at a venue's first start): we vouch for no hold yet */
function relearning(core: MeshCore): boolean {
  return !core.view.seqKnown && !core.mut('no-relearned-holds')
}

export function onRequest(core: MeshCore, from: string, req: Req): void {
  // A terminal that has not learned its history (a lost disk, a venue's first start) cannot vouch
  // for its holds: it starts learning now (dials a learn quorum), waits a little, then refuses
  // (the origin retries within its tap budget). A catch-up running with some peer is no reason to
  // wait: what makes an ack safe is what this terminal holds, durably, not what others told it
  // (docs/protocol.md, "Acks during catch-up").
  const learning = relearning(core)
  if (learning) core.learnHistory(core.policy.barrier.timeoutMs)
  if (learning) {
    const parked: Parked = { from, ...req, timer: 0 }
    parked.timer = core.after(core.policy.barrier.timeoutMs / 2, () => {
      const i = core.parked.indexOf(parked)
      if (i < 0) return
      core.parked.splice(i, 1)
      decide(core, from, req)
    })
    core.parked.push(parked)
    return
  }
  decide(core, from, req)
}

/** our history was learned: parked requests are answered */
export function wake(core: MeshCore): void {
  if (relearning(core) || core.parked.length === 0) return
  const parked = core.parked.splice(0)
  for (const p of parked) {
    core.cancel(p.timer)
    decide(core, p.from, p)
  }
}

function decide(core: MeshCore, from: string, req: Req): undefined {
  const now = core.wall()
  if (!core.init.roster.isEnrolled(from, now)) return answer(core, from, req.rid, undefined)
  let signed: SignedEvent
  try {
    signed = validateEventBytes(core.validationContext(), req.bytes, MAX_EVENT_BYTES)
  } catch (err: unknown) {
    if (!(err instanceof EventValidationError) || err.code !== 'ERR_ALREADY_KNOWN') {
      core.log(`barrier request from ${from.slice(0, 8)} invalid: ${(err as Error).message}`)
      return answer(core, from, req.rid, undefined)
    }
    const d = decodeEvent(req.bytes)
    if (!d.ok) return answer(core, from, req.rid, undefined)
    signed = d.value
    // a retransmission gets the same answer, and only once that answer is durable; an online
    // ack does not answer a later offline request for the same reservation (decided afresh)
    const reason = req.online ? ONLINE_ACK_REASON : ''
    const given = core.view.acksGiven.get(signed.idHex)
    if (given !== undefined && given.ack.reason === reason) return answer(core, from, req.rid, given)
    const waiting = core.ackWaiters.get(signed.idHex)
    if (waiting !== undefined && waiting[0]?.reason === reason) {
      waiting.push({ from, rid: req.rid, reason })
      return undefined
    }
  }
  if (signed.event.type !== 'reservation') return answer(core, from, req.rid, undefined)
  const reservation = signed as SignedEvent<Reservation>
  // the requester must be the origin of what it asks us to hold
  if (toHex(reservation.event.origin) !== from) return answer(core, from, req.rid, undefined)
  // only the card's custodian group holds its reservations: a request to anyone else (a roster
  // the requester disagrees on, or a faulty origin) is not answered, and its ack would not count
  if (!core.mut('ack-outside-group') && !core.groupOf(reservation.event.cardKey).has(core.me)) {
    core.log(`barrier request from ${from.slice(0, 8)} for a card whose group we are not in`)
    return answer(core, from, req.rid, undefined)
  }
  if (reservation.event.policyVersion !== core.policy.version)
    return answer(core, from, req.rid, refuse(core, reservation.id, 'policy_mismatch'))
  // a terminal relearning after a lost disk cannot vouch for its holds (the ones it gave died with
  // the disk) until a learn quorum taught it: it holds nothing for anyone before that
  if (relearning(core)) return answer(core, from, req.rid, refuse(core, reservation.id, 'catching_up'))
  if (core.reach.partitioned) return answer(core, from, req.rid, undefined)
  const f = facts(reservation)
  // An online reservation (its origin asks central next) is judged by the online rules: the
  // offline floor and caps do not apply, but the ack still means "I now hold this nullifier".
  // An offline one by the offline rules and the origin's view of the card: a peer holding a
  // reservation of the card the origin did not see refuses (`conflict`), which makes card caps
  // exact and not just pairwise (see docs/protocol.md).
  const verdict = req.online
    ? core.mut('no-online-nullifier-check')
      ? ({ approve: true } as const)
      : decideOnlineAck(core.policy, core.view.exposure, f, { now })
    : decideAck(core.policy, core.view.exposure, f, {
        now,
        originView: core.mut('no-view-check') ? undefined : req.view,
      })
  if (!verdict.approve) {
    if (!core.view.known.has(reservation.idHex)) applyRemote(core, reservation, 'gossip')
    return answer(core, from, req.rid, refuse(core, reservation.id, verdict.code))
  }
  // hold it in our view now (synchronously, so no concurrent request can double-book), durable before we ack
  if (core.view.known.has(reservation.idHex)) core.view.exposure.hold(reservation.idHex)
  else core.view.apply(reservation, true)
  const reason = req.online ? ONLINE_ACK_REASON : ''
  const ack = signAck(core.key, {
    venue: core.venueId,
    acker: core.key.publicKey,
    reservationId: reservation.id,
    ok: true,
    reason,
    ts: now,
  })
  if (core.mut('ack-before-durable')) {
    core.view.acksGiven.set(reservation.idHex, ack)
    answer(core, from, req.rid, ack)
    core.write([{ event: reservation, held: true, ackGiven: ack }], { sync: true, own: false })
    return undefined
  }
  const write = core.write([{ event: reservation, held: true, ackGiven: ack }], { sync: true, own: false })
  const waiters: Waiter[] = [{ from, rid: req.rid, reason }]
  core.ackWaiters.set(reservation.idHex, waiters)
  core.onDurable(write, (ok) => {
    core.ackWaiters.delete(reservation.idHex)
    if (ok) core.view.acksGiven.set(reservation.idHex, ack)
    for (const w of waiters) answer(core, w.from, w.rid, ok ? ack : undefined)
  })
  return undefined
}
