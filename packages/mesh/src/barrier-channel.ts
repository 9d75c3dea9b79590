// The origin side of the barrier stream (moved out of node.ts, which carries the core's effects).
import type { Stream } from '@libp2p/interface'
import { FramedStream } from './framing.js'

/** Barrier request kind (4th frame element): the origin will ask central to authorise it online. */
export const ONLINE_KIND = 1

/** Origin side of the barrier stream: one reused stream per peer, requests matched by the core's id. */
export class BarrierChannel {
  private readonly pending = new Map<number, (ack: Uint8Array | undefined) => void>()
  constructor(readonly framed: FramedStream) {}

  static open(stream: Stream): BarrierChannel {
    let channel: BarrierChannel | undefined
    const framed = new FramedStream(
      stream,
      (frame) => channel?.onFrame(frame),
      () => channel?.failAll(),
    )
    channel = new BarrierChannel(framed)
    return channel
  }

  private onFrame(frame: unknown): void {
    if (!Array.isArray(frame) || typeof frame[0] !== 'number') return
    const p = this.pending.get(frame[0])
    if (p === undefined) return
    this.pending.delete(frame[0])
    p(frame[1] instanceof Uint8Array ? frame[1] : undefined)
  }

  /** a one-way frame (id 0): a Commit or Release pushed to this peer */
  notify(event: Uint8Array): void {
    this.framed.send([0, event]).catch(() => {})
  }

  failAll(): void {
    for (const p of this.pending.values()) p(undefined)
    this.pending.clear()
  }

  /** resolves with the peer's encoded answer, or undefined if the stream failed */
  request(
    id: number,
    reservation: Uint8Array,
    view: string[],
    online: boolean,
  ): Promise<Uint8Array | undefined> {
    return new Promise((resolve) => {
      this.pending.set(id, resolve)
      const frame = online ? [id, reservation, view, ONLINE_KIND] : [id, reservation, view]
      this.framed.send(frame).catch(() => {
        this.pending.delete(id)
        resolve(undefined)
      })
    })
  }
}
