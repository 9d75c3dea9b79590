import { connect, createServer, type Server, type Socket } from 'node:net'

/**
 * A terminal's uplink to central: a TCP relay the sim can cut and restore. While down, new
 * connections are reset at once and open ones are torn down, as a dead router would.
 */
export class LinkProxy {
  private readonly server: Server
  private readonly sockets = new Set<Socket>()
  private isUp = true
  port = 0

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    this.server = createServer((client) => this.onConnection(client))
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    const address = this.server.address()
    this.port = typeof address === 'object' && address !== null ? address.port : 0
    return this.port
  }

  get up(): boolean {
    return this.isUp
  }

  setUp(up: boolean): void {
    this.isUp = up
    if (!up) for (const s of this.sockets) s.destroy()
  }

  async close(): Promise<void> {
    this.setUp(false)
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private onConnection(client: Socket): void {
    if (!this.isUp) {
      client.resetAndDestroy()
      return
    }
    const upstream = connect(this.targetPort, this.targetHost)
    this.sockets.add(client)
    this.sockets.add(upstream)
    const done = (): void => {
      client.destroy()
      upstream.destroy()
      this.sockets.delete(client)
      this.sockets.delete(upstream)
    }
    client.on('error', done)
    upstream.on('error', done)
    client.on('close', done)
    upstream.on('close', done)
    client.pipe(upstream)
    upstream.pipe(client)
  }
}
