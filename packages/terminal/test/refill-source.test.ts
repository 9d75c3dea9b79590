import { centralRefill, TerminalError } from '@nullmesh/terminal'
import { describe, expect, it } from 'vitest'

/** The mesh's refill source over the central link: pages, retries while unreachable, gives up. */
describe('centralRefill: a lost disk’s own events from central', () => {
  const drain = async (src: AsyncIterable<Uint8Array[]>) => {
    const pages: number[][] = []
    for await (const p of src) pages.push(p.map((e) => e[0]!))
    return pages
  }
  const signal = new AbortController().signal

  it('follows `next` page by page', async () => {
    const asked: number[] = []
    const src = centralRefill(async (_o, after) => {
      asked.push(after)
      if (after === 0) return { events: [Uint8Array.of(1), Uint8Array.of(2)], next: 2 }
      if (after === 2) return { events: [Uint8Array.of(3)], next: null }
      throw new Error('asked past the end')
    }, 'ab')
    expect(await drain(src({ signal }))).toEqual([[1, 2], [3]])
    expect(asked).toEqual([0, 2])
  })

  it('asks once: unreachable or refusing ends it at once (learning goes on from peers alone)', async () => {
    for (const err of [
      new TerminalError('central_unavailable', 'down'),
      new TerminalError('central_rejected', 'no route', { upstreamStatus: 404 }),
    ]) {
      let calls = 0
      const src = centralRefill(async () => {
        calls++
        throw err
      }, 'ab')
      await expect(drain(src({ signal }))).rejects.toThrow(err.message)
      expect(calls).toBe(1)
    }
  })

  it('a silent central delays learning by the first page’s timeout at most', async () => {
    const src = centralRefill(
      (_o, _a, opts) =>
        new Promise((_resolve, reject) => {
          opts?.signal?.addEventListener('abort', () => reject(opts.signal!.reason))
        }),
      'ab',
      { firstTimeoutMs: 50 },
    )
    // without the timeout this never ends (the test's own timeout fails it)
    await expect(drain(src({ signal }))).rejects.toThrow()
  })
})
