// Unit test of an internal module (not part of the public surface), imported from source.
import { describe, expect, it } from 'vitest'
import { KeyedLocks } from '../src/locks.js'

const tick = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('KeyedLocks', () => {
  it('serialises holders of a key and lets disjoint keys run together', async () => {
    const locks = new KeyedLocks()
    const order: string[] = []
    const releaseA = await locks.acquire(['o:1', 'r:1'])
    const b = locks.acquire(['r:1']).then((release) => {
      order.push('b')
      return release
    })
    const releaseC = await locks.acquire(['o:2'])
    order.push('c')
    await tick()
    expect(order).toEqual(['c'])
    releaseA()
    ;(await b)()
    releaseC()
    expect(order).toEqual(['c', 'b'])
  })

  it('gives up a queued turn on abort without breaking the queue', async () => {
    const locks = new KeyedLocks()
    const first = await locks.acquire(['k'])
    const controller = new AbortController()
    const aborted = locks.acquire(['k'], controller.signal)
    let thirdGot = false
    const third = locks.acquire(['k']).then((release) => {
      thirdGot = true
      return release
    })
    controller.abort()
    await expect(aborted).rejects.toThrow()
    await tick()
    expect(thirdGot).toBe(false) // still behind `first`
    first()
    ;(await third)()
    expect(thirdGot).toBe(true)
    // and the key is free again
    ;(await locks.acquire(['k']))()
  })

  it('takes keys in sorted order, so crossing writers do not deadlock', async () => {
    const locks = new KeyedLocks()
    const runs = Array.from({ length: 50 }, async (_, i) => {
      const release = await locks.acquire(i % 2 === 0 ? ['a', 'b', 'c'] : ['c', 'b', 'a'])
      await tick()
      release()
    })
    await Promise.all(runs)
  })
})
