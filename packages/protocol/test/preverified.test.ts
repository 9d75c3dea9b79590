import {
  signatureDigest,
  signBytes,
  VerifyPool,
  verifyAckSignature,
  verifyBytes,
  verifyEventSignature,
  withPreverified,
} from '@nullmesh/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { ack, alice, bob, commit, flipBit, reservation } from './fixtures.js'

describe('signatures verified on a worker, trusted for one synchronous call [preverified]', () => {
  const pools: VerifyPool[] = []
  afterEach(async () => {
    for (const p of pools.splice(0)) await p.stop()
  })

  it('a digest answers exactly its (key, message, signature), once, and only inside the call', () => {
    const msg = new TextEncoder().encode('pay 12.50 EUR')
    const sig = signBytes(alice.privateKey, msg)
    const bad = flipBit(sig, 0)
    // a digest is trusted as given: the bad signature passes only through it (so the test can fail
    // if the digests were ignored), a different message or key under the same digest does not
    const d = signatureDigest(alice.publicKey, msg, bad)
    expect(verifyBytes(alice.publicKey, msg, bad)).toBe(false)
    withPreverified([d], () => {
      expect(verifyBytes(alice.publicKey, flipBit(msg, 3), bad)).toBe(false)
      expect(verifyBytes(bob.publicKey, msg, bad)).toBe(false)
      expect(verifyBytes(alice.publicKey, msg, bad)).toBe(true)
      // consumed: a second check of the same triple is verified for real
      expect(verifyBytes(alice.publicKey, msg, bad)).toBe(false)
    })
    withPreverified([d], () => undefined)
    expect(verifyBytes(alice.publicKey, msg, bad)).toBe(false)
  })

  it('the pool returns the digests of the valid signatures only; tampered events get none', async () => {
    const pool = new VerifyPool({ size: 2, minChunk: 1 })
    pools.push(pool)
    pool.start()
    const res = reservation()
    const other = reservation(bob, { seq: 7 })
    const c = commit(res)
    const forged = flipBit(other.bytes, other.bytes.length - 1) // its signature's last byte
    const digests = await pool.digests([res.bytes, c.bytes, forged])
    // res: 1; the commit: its own, its embedded reservation's (= res's), two acks
    expect(digests).toHaveLength(5)
    expect(new Set(digests).size).toBe(4)
    withPreverified(digests, () => {
      expect(verifyEventSignature(res)).toBe(true)
      expect(verifyEventSignature(c)).toBe(true)
      for (const a of c.event.acks) expect(verifyAckSignature(a)).toBe(true)
      // an ack the worker never saw is verified here, and a forged one fails here
      expect(verifyAckSignature(ack(bob, other.id))).toBe(true)
    })
    expect(await pool.digests([])).toEqual([])
  })
})
