import { describe, expect, it } from 'vitest'
import { Mutex } from '../src/mutex.js'

const gate = (): { wait: Promise<void>; open: () => void } => {
  let open!: () => void
  const wait = new Promise<void>((r) => {
    open = r
  })
  return { wait, open }
}

describe('the store mutex [authorisations ahead of sync]', () => {
  it('runs one task at a time; a high-priority task waits for the running one only, not for queued ones', async () => {
    const m = new Mutex()
    const order: string[] = []
    let running = 0
    const task = (name: string, wait?: Promise<void>) => async (): Promise<string> => {
      running++
      expect(running).toBe(1)
      order.push(`${name}:start`)
      await wait
      await new Promise((r) => setTimeout(r, 1))
      running--
      return name
    }
    const first = gate()
    const all = [
      m.run(task('sync-1', first.wait)),
      m.run(task('sync-2')),
      m.run(task('sync-3')),
      m.run(task('authorize'), { priority: 'high' }),
      m.run(task('sync-4')),
    ]
    await new Promise((r) => setTimeout(r, 5))
    expect(order).toEqual(['sync-1:start'])
    expect(m.waiting).toBe(4)
    first.open()
    expect(await Promise.all(all)).toEqual(['sync-1', 'sync-2', 'sync-3', 'authorize', 'sync-4'])
    expect(order).toEqual(['sync-1:start', 'authorize:start', 'sync-2:start', 'sync-3:start', 'sync-4:start'])
  })

  it('a task that fails or throws at once releases the mutex; results and errors reach their callers', async () => {
    const m = new Mutex()
    const failed = m.run(async () => {
      throw new Error('store down')
    })
    const threw = m.run((() => {
      throw new Error('sync throw')
    }) as unknown as () => Promise<void>)
    await expect(failed).rejects.toThrow('store down')
    await expect(threw).rejects.toThrow('sync throw')
    expect(await m.run(async () => 42)).toBe(42)
    expect(m.waiting).toBe(0)
  })
})
