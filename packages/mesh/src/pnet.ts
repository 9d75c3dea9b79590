// The venue's private network: libp2p's pnet protocol (/key/swarm/psk/1.0.0/, a 24-byte nonce
// exchange, then every byte XORed with an XSalsa20 keystream), wire-compatible with @libp2p/pnet,
// with a pure-JS cipher (@noble/ciphers) in place of the `xsalsa20` npm package.
//
// Why not @libp2p/pnet: `xsalsa20` shares one WebAssembly memory (1000 pages max) among every
// cipher of the process, and each cipher caches a view of it. One chunk larger than the memory's
// ~640 KiB grows it, which detaches every other cipher's view; a detached view has length 0, so
// each of those ciphers grows the memory again (≥ 64 KiB) on its next chunk, which detaches the
// rest. With many connections in one process the memory climbs to its maximum within about a
// thousand small chunks and the process dies with an uncaught `RangeError:
// WebAssembly.Memory.grow(): Maximum memory size exceeded` (test/pnet.test.ts reproduces it).
// It also never frees a cipher's slot, so every connection ever made leaks 128 bytes of it.

import type { AbortOptions, ConnectionProtector, MultiaddrConnection } from '@libp2p/interface'
import { InvalidParametersError } from '@libp2p/interface'
import type { MessageStreamInit, SendResult } from '@libp2p/utils'
import { AbstractMultiaddrConnection, byteStream } from '@libp2p/utils'
import { xsalsa20 } from '@noble/ciphers/salsa.js'
import { PNET_HANDSHAKE_TIMEOUT_MS } from './constants.js'

export const PSK_NONCE_LENGTH = 24
export const PSK_KEY_LENGTH = 32
const BLOCK = 64

export interface PreSharedKeyInit {
  /** the whole swarm.key file: `/key/swarm/psk/1.0.0/\n/base16/\n<64 hex digits>` */
  psk: Uint8Array
  /** the nonce exchange must complete within this many ms (when the caller gives no signal) */
  timeout?: number
}

/** Dial progress event: an outbound connection reached the nonce exchange (its TCP connect succeeded). */
export const PNET_NONCE_EXCHANGE = 'pnet:exchange-nonces'

/** A connection protector for libp2p's `connectionProtector` option. */
export function preSharedKey(init: PreSharedKeyInit): () => ConnectionProtector {
  return () => new PreSharedKeyProtector(init)
}

/** The 32-byte key of a v1 swarm.key file; throws on anything else. */
export function decodeSwarmKey(file: Uint8Array): Uint8Array {
  const [tag, codec, hex] = new TextDecoder().decode(file).split(/\r\n|\r|\n/)
  if (tag !== '/key/swarm/psk/1.0.0/' || codec !== '/base16/' || !/^[0-9a-fA-F]{64}$/.test(hex ?? ''))
    throw new InvalidParametersError('invalid swarm key: want /key/swarm/psk/1.0.0/, /base16/, 64 hex digits')
  return Uint8Array.from(Buffer.from(hex!, 'hex'))
}

/**
 * One direction of the XSalsa20 stream: the keystream position carries over between chunks, so
 * chunks of any size give the same bytes as one call over their concatenation.
 */
export class XSalsa20Stream {
  private position = 0
  constructor(
    private readonly key: Uint8Array,
    private readonly nonce: Uint8Array,
  ) {}

  update(input: Uint8Array): Uint8Array {
    if (input.byteLength === 0) return new Uint8Array(0)
    const counter = Math.floor(this.position / BLOCK)
    const skip = this.position % BLOCK
    this.position += input.byteLength
    if (skip === 0) return xsalsa20(this.key, this.nonce, input, undefined, counter)
    // mid-block: start the keystream at the block's beginning and drop its first `skip` bytes
    const padded = new Uint8Array(skip + input.byteLength)
    padded.set(input, skip)
    return xsalsa20(this.key, this.nonce, padded, undefined, counter).subarray(skip)
  }
}

class PreSharedKeyProtector implements ConnectionProtector {
  readonly [Symbol.toStringTag] = '@nullmesh/pnet'
  private readonly psk: Uint8Array
  private readonly timeout: number

  constructor(init: PreSharedKeyInit) {
    this.psk = decodeSwarmKey(init.psk)
    this.timeout = init.timeout ?? PNET_HANDSHAKE_TIMEOUT_MS
  }

  async protect(connection: MultiaddrConnection, options?: AbortOptions): Promise<MultiaddrConnection> {
    if (connection == null) throw new InvalidParametersError('no connection to protect')
    const log = connection.log.newScope('pnet')
    // the TCP connection is open: the peer's host answered (the dialer tells "down" from "slow" by it)
    ;(options as { onProgress?: (evt: Event) => void } | undefined)?.onProgress?.(
      new CustomEvent(PNET_NONCE_EXCHANGE),
    )
    const localNonce = crypto.getRandomValues(new Uint8Array(PSK_NONCE_LENGTH))
    const opts = options ?? { signal: AbortSignal.timeout(this.timeout) }
    const bytes = byteStream(connection)
    const [remote] = await Promise.all([
      bytes.read({ bytes: PSK_NONCE_LENGTH, ...opts }),
      bytes.write(localNonce, opts),
    ])
    log('exchanged nonces')
    return new BoxedConnection({
      maConn: bytes.unwrap(),
      inbound: new XSalsa20Stream(this.psk, remote.subarray()),
      outbound: new XSalsa20Stream(this.psk, localNonce),
      log,
    })
  }
}

interface BoxedConnectionInit extends MessageStreamInit {
  maConn: MultiaddrConnection
  inbound: XSalsa20Stream
  outbound: XSalsa20Stream
}

/** The protected connection: decrypts what arrives, encrypts what is sent (as @libp2p/pnet's). */
class BoxedConnection extends AbstractMultiaddrConnection {
  private readonly maConn: MultiaddrConnection
  private readonly outbound: XSalsa20Stream

  constructor(init: BoxedConnectionInit) {
    super({ ...init, remoteAddr: init.maConn.remoteAddr, direction: init.maConn.direction })
    this.maConn = init.maConn
    this.outbound = init.outbound
    const inbound = init.inbound
    this.maConn.addEventListener('message', (evt) => {
      const data = evt.data
      if (data instanceof Uint8Array) this.onData(inbound.update(data))
      else for (const buf of data) this.onData(inbound.update(buf))
    })
    this.maConn.addEventListener('drain', () => this.onMuxerDrain())
    this.maConn.addEventListener('close', (evt) => {
      if (evt.error == null) this.onTransportClosed()
      else if (evt.local) this.abort(evt.error)
      else this.onRemoteReset()
    })
  }

  async sendClose(options?: AbortOptions): Promise<void> {
    await this.maConn.close(options)
  }

  sendData(data: Parameters<AbstractMultiaddrConnection['sendData']>[0]): SendResult {
    return {
      sentBytes: data.byteLength,
      canSendMore: this.maConn.send(this.outbound.update(data.subarray())),
    }
  }

  sendReset(err: Error): void {
    this.maConn.abort(err)
  }

  sendPause(): void {
    this.maConn.pause()
  }

  sendResume(): void {
    this.maConn.resume()
  }
}
