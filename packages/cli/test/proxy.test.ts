import { connect, createServer, type Server } from 'node:net'
import { LinkProxy } from '@nullmesh/cli'
import { afterEach, describe, expect, it } from 'vitest'

function echoServer(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer((s) => s.pipe(s))
    server.listen(0, '127.0.0.1', () => {
      const a = server.address()
      resolve({ server, port: typeof a === 'object' && a !== null ? a.port : 0 })
    })
  })
}

function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(text))
    s.once('data', (d) => {
      resolve(d.toString())
      s.destroy()
    })
    s.once('error', reject)
    s.once('close', () => reject(new Error('closed')))
  })
}

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

describe('LinkProxy (the sim’s cuttable uplink to central)', () => {
  it('relays while up, resets new and open connections while down, relays again when back up', async () => {
    const { server, port } = await echoServer()
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())))
    const proxy = new LinkProxy('127.0.0.1', port)
    await proxy.listen()
    cleanups.push(() => proxy.close())

    expect(await roundTrip(proxy.port, 'hello')).toBe('hello')

    const open = connect(proxy.port, '127.0.0.1')
    await new Promise((r) => open.once('connect', r))
    const closed = new Promise((r) => open.once('close', r))
    open.on('error', () => {})
    proxy.setUp(false)
    await closed
    await expect(roundTrip(proxy.port, 'x')).rejects.toThrow()

    proxy.setUp(true)
    expect(await roundTrip(proxy.port, 'again')).toBe('again')
  })
})
