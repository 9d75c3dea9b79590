import { decodeEvent } from '@nullmesh/protocol'
import { describe, expect, it } from 'vitest'
import type { Effect } from '../src/core/index.js'
import { coreFixture } from './core-fixture.js'

/**
 * Regression for the bug the deterministic simulator found (docs/protocol.md, "Found by the
 * simulator"): a Release of a failed barrier round was pushed to peers before it was durable.
 */
describe('core: fsync before send, for Releases too', () => {
  it('a Release of a failed round reaches no peer before it is durable', () => {
    const { core, hex, effects, learnFrom } = coreFixture({ size: 3, me: 0 })
    for (const peer of [hex[1]!, hex[2]!]) learnFrom(peer)
    expect(core.view.seqKnown).toBe(true)
    expect(core.reach.reach(0)).toBe('quorum')
    core.authorize(2, {
      nullifier: new Uint8Array(32).fill(9),
      cardKey: new Uint8Array(16).fill(8),
      amountMinor: 500,
      currency: 'EUR',
      method: 'contactless',
    })
    const resWrite = effects.find((e) => e.type === 'write' && e.own)
    expect(resWrite?.type).toBe('write')
    core.durable((resWrite as { id: number }).id)
    // both peers fail to answer: the round is lost, the reservation released
    const reqs = effects.filter((e) => e.type === 'send' && e.msg.t === 'req') as Extract<
      Effect,
      { type: 'send' }
    >[]
    expect(reqs).toHaveLength(2)
    effects.length = 0
    for (const r of reqs) core.message(r.to, { t: 'ans', rid: (r.msg as { rid: number }).rid, ack: null })
    const releaseWrite = effects.find(
      (e) => e.type === 'write' && e.own && e.records[0]!.event.event.type === 'release',
    ) as Extract<Effect, { type: 'write' }>
    expect(releaseWrite).toBeDefined()
    const release = releaseWrite.records[0]!.event
    const pushedRelease = () =>
      effects.some((e) => {
        if (e.type === 'gossip') return decodeEvent(e.bytes).ok && e.bytes === release.bytes
        return e.type === 'send' && e.msg.t === 'push' && e.msg.bytes === release.bytes
      })
    expect(pushedRelease()).toBe(false)
    core.durable(releaseWrite.id)
    expect(pushedRelease()).toBe(true)
  })
})
