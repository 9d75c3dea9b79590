import { defaultPolicy } from '@nullmesh/policy'
import { keyPairFromSeed, toHex } from '@nullmesh/protocol'
import { afterEach, describe, expect, it, vi } from 'vitest'

/** The core must not read real time, randomness or timers: run it with those stubbed to throw. */
describe('sans-I/O core', () => {
  afterEach(() => {
    vi.unstubAllGlobals()
    vi.restoreAllMocks()
  })

  it('runs a decision with Date.now, performance.now, Math.random and timers stubbed to throw', async () => {
    vi.resetModules()
    const { MeshCore } = await import('../src/core/index.js')
    const boom = (name: string) => () => {
      throw new Error(`the core called ${name}`)
    }
    vi.spyOn(Date, 'now').mockImplementation(boom('Date.now'))
    vi.spyOn(performance, 'now').mockImplementation(boom('performance.now'))
    vi.spyOn(Math, 'random').mockImplementation(boom('Math.random'))
    vi.stubGlobal('setTimeout', boom('setTimeout'))
    vi.stubGlobal('setInterval', boom('setInterval'))
    vi.stubGlobal('queueMicrotask', boom('queueMicrotask'))
    const key = keyPairFromSeed(new Uint8Array(32).fill(7))
    const me = toHex(key.publicKey)
    const effects: { type: string; id?: number; result?: unknown }[] = []
    let t = 1_700_000_000_000
    const core = new MeshCore({
      venueId: 'v',
      policy: defaultPolicy('v'),
      key,
      roster: { size: 1, members: [me], isEnrolled: (k) => k === me },
      clock: { wall: () => t, mono: () => t - 1_700_000_000_000 },
      rng: () => 0.5,
      effects: (e) => effects.push(e as never),
    })
    core.load({ events: [], pruned: [], confirmedMarks: {}, nextSeq: 1 })
    core.start(1, [])
    const candidate = {
      nullifier: new Uint8Array(32).fill(1),
      cardKey: new Uint8Array(16).fill(2),
      amountMinor: 500,
      currency: 'EUR',
      method: 'contactless' as const,
    }
    core.authorize(2, candidate)
    // complete every durable write the core asked for, in order, until it answers
    for (
      let i = 0;
      i < 10 && !effects.some((e) => e.type === 'done' && (e as { op?: number }).op === 2);
      i++
    ) {
      for (const e of effects.splice(0)) {
        if (e.type === 'done') effects.push(e)
        if (e.type === 'write' && (e as { sync?: boolean }).sync) core.durable(e.id!)
        if (e.type === 'timer') {
          t += 20
          core.timer(e.id!)
        }
      }
    }
    const done = effects.find((e) => e.type === 'done' && (e as { op?: number }).op === 2) as
      | { result: { ok: boolean; value: { approved: boolean } } }
      | undefined
    expect(done?.result.ok).toBe(true)
    expect(done?.result.value.approved).toBe(true)
  })
})
