import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createLedger } from '@nullmesh/ledger'
import { createMeshNode } from '@nullmesh/mesh'
import { loadTerminalKey } from '@nullmesh/policy'
import { keyPairFromFile, signRevocation } from '@nullmesh/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { candidate, startVenue, type TestVenue, waitFor } from './helpers.js'

let venue: TestVenue | undefined
afterEach(async () => {
  await venue?.cleanup()
  venue = undefined
})

// Issue 17, item 2 on the mesh, real nodes over real sockets: once a revocation is in force, the
// revoked terminal's acks complete no quorum and its events are [REJECT]ed (ERR_REVOKED); what it
// signed before the effective time is still accepted, also by a node that learns it afterwards.
describe('[revocation] a revoked terminal on the mesh', () => {
  it('its acks complete no quorum and its events are rejected from the effective time, not before', async () => {
    // isolated mode off: a decision without a quorum is a decline, never an isolated approval
    venue = await startVenue(3, { isolated: { enabled: false, maxApprovalsPerCard: 1 } }, 2)
    const [a, b] = venue.nodes as [TestVenue['nodes'][number], TestVenue['nodes'][number]]
    await waitFor(
      () => a.node.status().mode === 'quorum' && b.node.status().mode === 'quorum',
      20_000,
      'A and B in quorum mode',
    )
    // before: B's payment, acked by A
    const before = await b.node.authorize(
      candidate(venue.bundle, '4111111111111111', 1000, { idem: 'before' }),
    )
    expect(before.approved).toBe(true)
    await waitFor(
      async () => (await a.ledger.getEvent(before.commitId!)) !== undefined,
      10_000,
      'commit at A',
    )

    // the operator revokes B, effective in a moment; A learns it (B does not)
    const operator = keyPairFromFile(
      JSON.parse(await readFile(join(venue.bundle.dir, 'operator.key.json'), 'utf8')),
    )
    const effectiveAt = Date.now() + 1_000
    const doc = signRevocation(operator, {
      venueId: venue.bundle.venueId,
      terminal: b.node.publicKeyHex,
      effectiveAt,
      reason: 'test: stolen',
      issuedAt: Date.now(),
    })
    expect(await a.node.revoke([doc])).toEqual([b.node.publicKeyHex])
    expect(a.node.isRevoked(b.node.publicKeyHex)).toBe(false)
    await new Promise((r) => setTimeout(r, Math.max(0, effectiveAt - Date.now()) + 50))
    expect(a.node.isRevoked(b.node.publicKeyHex)).toBe(true)

    // A's payment: B still acks (it does not know), A does not count that ack: no quorum, declined
    const mine = await a.node.authorize(candidate(venue.bundle, '4222222222222222', 1000, { idem: 'acks' }))
    expect(mine.approved).toBe(false)

    // B's payment after the effective time: A refuses it; caught up from B, A still stores nothing
    const after = await b.node.authorize(candidate(venue.bundle, '4333333333333333', 1000, { idem: 'after' }))
    expect(after.approved).toBe(false)
    // B signed its reservations (and releases) of that payment after its commit `before`
    const bKey = b.node.publicKeyHex
    const signedAfter: number[] = []
    for (let s = before.seq + 1; s <= after.seq; s++) signedAfter.push(s)
    expect(signedAfter.length).toBeGreaterThan(0)
    for (const s of signedAfter) expect(await b.ledger.getEventAt(bKey, s)).toBeDefined()
    await a.node.catchUp()
    for (const s of signedAfter) expect(await a.ledger.getEventAt(bKey, s)).toBeUndefined()
    expect(await a.ledger.getEvent(before.commitId!)).toBeDefined()

    // C starts knowing the revocation: it catches up B's earlier payment (signed before) from A
    const dataDir = join(venue.dir, 'data-T3')
    const ledger = createLedger({ path: dataDir })
    await ledger.open()
    const c = createMeshNode({
      bundle: venue.bundle,
      key: await loadTerminalKey(venue.bundle.dir, 'T3'),
      ledger,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      discovery: { peers: a.node.multiaddrs() },
      revocations: [doc],
    })
    venue.nodes.push({ id: 'T3', node: c, ledger, dataDir })
    await c.start()
    expect(c.isRevoked(b.node.publicKeyHex)).toBe(true)
    await waitFor(
      async () => (await ledger.getEvent(before.commitId!)) !== undefined,
      20_000,
      'B’s earlier commit at C',
    )
    await c.catchUp()
    for (const s of signedAfter) expect(await ledger.getEventAt(bKey, s)).toBeUndefined()
  })
})
