import { decodeAck, type Reservation, type SignedEvent, signEvent } from '@nullmesh/protocol'
import { describe, expect, it } from 'vitest'
import type { Effect, MeshCore, MutationName } from '../src/core/index.js'
import { coreFixture } from './core-fixture.js'

const T0 = 1_700_000_000_000

/**
 * A terminal whose disk was lost may have acked reservations whose Commit reached nobody: its hold
 * died with the disk. If it relearned them as reservations it does not hold, a later quorum that
 * meets the certifying quorum only in it would not see them, and a card passes its cap (the
 * simulator, seed 7 at 4000 steps: `card-amount-cap`, 11200 of 10000; docs/protocol.md, "Holds
 * relearned after a lost disk"). While it relearns, an unsettled reservation of a card whose group
 * it is in (or its own) is held again.
 */
/** the refusal reason (or 'ok') of our answer to request `rid`, once its writes are durable */
function answerOf(core: MeshCore, effects: Effect[], rid: number): string {
  for (const e of effects.filter((x) => x.type === 'write')) core.durable((e as { id: number }).id)
  for (const e of effects) {
    if (e.type !== 'send' || e.msg.t !== 'ans' || e.msg.rid !== rid || e.msg.ack === null) continue
    const ack = decodeAck(e.msg.ack)
    if (!ack.ok) throw new Error('answer is not an ack')
    return ack.value.ack.ok ? 'ok' : ack.value.ack.reason
  }
  return 'no answer'
}

describe('core: holds relearned after a lost disk [relearned holds]', () => {
  function wipedCore(mutations: ReadonlySet<MutationName> = new Set()) {
    // we are T2 (keys[1]), our disk lost; T5 (keys[4]) approved a payment we had acked
    const { core, keys, hex, effects, learnFrom } = coreFixture({
      size: 5,
      me: 1,
      wall: T0,
      mutations,
    })
    const card = new Uint8Array(16).fill(7)
    const reservation = (
      k: number,
      seq: number,
      nullifierByte: number,
      amountMinor: number,
      cardKey = card,
    ) =>
      signEvent(keys[k]!, {
        type: 'reservation',
        venue: 'v',
        origin: keys[k]!.publicKey,
        seq,
        ts: T0 - 1_000,
        nullifier: new Uint8Array(32).fill(nullifierByte),
        cardKey,
        amountMinor,
        currency: 'EUR',
        method: 'contactless',
        policyVersion: 1,
      }) as SignedEvent<Reservation>
    return { core, hex, effects, learnFrom, reservation }
  }

  /** T2 relearns T5's uncommitted reservation from T3; requests from T1 before and after learning */
  function scenario(mutations?: ReadonlySet<MutationName>) {
    const { core, hex, effects, learnFrom, reservation } = wipedCore(mutations)
    const answers: string[] = []
    const certified = reservation(4, 1, 0x12, 4_200)
    const refill: { event: SignedEvent; held: boolean }[] = []
    // T3 held it (it acked it too) and teaches it to us; T1 and T4 never saw it
    learnFrom(hex[2]!, () => {
      expect(core.catchupBatch(hex[2]!, [certified.bytes])).toBe(1)
      for (const e of effects) if (e.type === 'write') refill.push(...e.records)
    })
    // before a learn quorum taught us, we vouch for no hold: a request waits (parked, then
    // refused `catching_up` if we have not learned by half the barrier timeout), never acked
    core.message(hex[0]!, {
      t: 'req',
      rid: 9,
      bytes: reservation(0, 9, 0x99, 100, new Uint8Array(16).fill(8)).bytes,
      view: [],
      online: false,
    })
    answers.push(answerOf(core, effects, 9))
    learnFrom(hex[0]!)
    learnFrom(hex[3]!)
    expect(core.view.seqKnown).toBe(true)
    effects.length = 0
    // T1 asks us to hold a payment of the same card; its view (and T4's) lacks T5's certified one
    core.message(hex[0]!, {
      t: 'req',
      rid: 1,
      bytes: reservation(0, 1, 0x34, 1_500).bytes,
      view: [],
      online: false,
    })
    answers.push(answerOf(core, effects, 1))
    const held = core.view.exposure.get(certified.idHex)?.held
    return { answers, held, refilledHeld: refill.some((r) => r.event.idHex === certified.idHex && r.held) }
  }

  it('a reservation learned while relearning is held again: a request that did not see it is refused', () => {
    const { answers, held, refilledHeld } = scenario()
    // before a learn quorum taught us we vouch for no hold; after, the relearned one is held
    expect(answers).toEqual(['no answer', 'conflict'])
    expect(held).toBe(true)
    // the refill writes it as held, so a restart keeps the hold
    expect(refilledHeld).toBe(true)
  })

  it('without the rule (mutant no-relearned-holds) both requests are acked: the failure the simulator found', () => {
    const { answers, held } = scenario(new Set(['no-relearned-holds']))
    expect(answers).toEqual(['ok', 'ok'])
    expect(held).toBe(false)
  })

  it('a terminal whose store is intact does not hold what catch-up brings', () => {
    const { core, hex, learnFrom, reservation } = wipedCore()
    for (const peer of [hex[2]!, hex[0]!, hex[3]!]) learnFrom(peer)
    expect(core.view.seqKnown).toBe(true)
    const later = reservation(4, 1, 0x12, 4_200)
    core.catchupStarted(hex[2]!, false)
    expect(core.catchupBatch(hex[2]!, [later.bytes])).toBe(1)
    core.catchupEnded(hex[2]!, true, false)
    expect(core.view.exposure.get(later.idHex)?.held).toBe(false)
  })
})
