import { defaultPolicy } from '@nullmesh/policy'
import { keyPairFromSeed, toHex } from '@nullmesh/protocol'
import { describe, expect, it } from 'vitest'
import { type Effect, MeshCore } from '../src/core/index.js'

/**
 * A terminal whose disk was lost learns its own history before it signs: from enough peers to meet
 * every quorum that could have certified one of its events, **not counting itself** (its store holds
 * nothing). In a roster of 5 (quorum 3) a certificate may name only itself and two peers; two other
 * peers can miss it, so it needs three. The simulator found this (seed 14 at 4000 steps signed seq 1
 * twice after learning from 2 peers; docs/protocol.md, "Lost disks").
 */
describe('core: learning its own history after a lost disk [learn quorum]', () => {
  it('a wiped terminal of 5 does not sign after 2 peers taught it, only after 3', () => {
    const keys = [1, 2, 3, 4, 5].map((i) => keyPairFromSeed(new Uint8Array(32).fill(i)))
    const hex = keys.map((k) => toHex(k.publicKey))
    const effects: Effect[] = []
    const core = new MeshCore({
      venueId: 'v',
      policy: defaultPolicy('v'),
      key: keys[0]!,
      roster: { size: 5, members: hex, isEnrolled: (k) => hex.includes(k) },
      clock: { wall: () => 1_700_000_000_000, mono: () => 0 },
      rng: () => 0.5,
      effects: (e) => effects.push(e),
    })
    const marks = () => {
      for (const e of effects.splice(0))
        if (e.type === 'write' && e.relearning !== undefined) core.durable(e.id)
    }
    const learnFrom = (peer: string) => {
      core.peerConnected(peer)
      core.peerVerified(peer)
      core.catchupStarted(peer, true)
      core.catchupEnded(peer, true, true)
      marks()
      marks()
    }
    core.load({ events: [], pruned: [], confirmedMarks: {}, nextSeq: 1 })
    core.start(1, [])
    marks()
    expect(core.learnQuorum).toBe(3)
    learnFrom(hex[1]!)
    learnFrom(hex[2]!)
    // two peers and ourselves are a roster majority, but not one that must hold our events
    expect(core.view.seqKnown).toBe(false)
    learnFrom(hex[3]!)
    expect(core.view.seqKnown).toBe(true)
  })
})
