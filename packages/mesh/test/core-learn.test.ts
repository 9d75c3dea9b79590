import { describe, expect, it } from 'vitest'
import { coreFixture } from './core-fixture.js'

/**
 * A terminal whose disk was lost learns its own history before it signs: from enough peers to meet
 * every quorum that could have certified one of its events, **not counting itself** (its store holds
 * nothing). In a roster of 5 (quorum 3) a certificate may name only itself and two peers; two other
 * peers can miss it, so it needs three. The simulator found this (seed 14 at 4000 steps signed seq 1
 * twice after learning from 2 peers; docs/protocol.md, "Lost disks").
 */
describe('core: learning its own history after a lost disk [learn quorum]', () => {
  it('a wiped terminal of 5 does not sign after 2 peers taught it, only after 3', () => {
    const { core, hex, learnFrom } = coreFixture({ size: 5, me: 0 })
    expect(core.learnQuorum).toBe(3)
    learnFrom(hex[1]!)
    learnFrom(hex[2]!)
    // two peers and ourselves are a roster majority, but not one that must hold our events
    expect(core.view.seqKnown).toBe(false)
    learnFrom(hex[3]!)
    expect(core.view.seqKnown).toBe(true)
  })
})
