import { describe, expect, it } from 'vitest'
import { Reachability } from '../src/core/reachability.js'

/** The ready-peer count the mode is computed from (kept incrementally) agrees with the peer list. */
describe('Reachability ready count', () => {
  it('matches the sorted ready list through connects, greetings, catch-ups and losses', () => {
    const r = new Reachability(3, 1000)
    let x = 12345
    const rand = (n: number) => {
      x = (x * 1103515245 + 12345) % 2 ** 31
      return x % n
    }
    const keys = Array.from({ length: 12 }, (_, i) => `k${i.toString().padStart(2, '0')}`)
    for (let step = 0; step < 5000; step++) {
      const k = keys[rand(keys.length)]!
      const op = rand(5)
      if (op === 0) r.connect(k)
      else if (op === 1) r.markVerified(k)
      else if (op === 2) r.markCaughtUp(k)
      else if (op === 3) r.lose(k, step)
      else if (rand(50) === 0) r.clear()
      expect(r.readyPeers).toBe(r.ready().length)
      expect(r.readyAmong(keys)).toEqual(r.ready())
      const reach = r.reach(step)
      if (r.readyPeers + 1 >= 3) expect(reach).toBe('quorum')
    }
  })
})
