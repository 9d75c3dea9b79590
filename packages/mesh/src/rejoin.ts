// Rejoining after a pulled cable (issue 15): wires the address book (address-book.ts) and the
// interface watch (interface-watch.ts) to a started libp2p node. node.ts calls startRejoin() once
// the node has started and rejoin.stop() before stopping it; nothing else in node.ts changes.
import type { Connection, IdentifyResult, Libp2p, PeerId } from '@libp2p/interface'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import type { Ledger } from '@nullmesh/ledger'
import debug from 'debug'
import { type AddressBook, createAddressBook } from './address-book.js'
import { DIAL_TIMEOUT_MS } from './constants.js'
import { createInterfaceWatch, type InterfaceWatch } from './interface-watch.js'

const log = debug('nullmesh:mesh:rejoin')

export interface RejoinInit {
  /** a started libp2p node */
  libp2p: Libp2p
  /** the node's open ledger (the address book is one of its cursors) */
  ledger: Pick<Ledger, 'getCursor' | 'setCursor'>
  /** is this peer id an enrolled terminal now? */
  isMember: (peerId: string) => boolean
  /** while true nothing is dialled (a simulated partition) */
  paused?: () => boolean
  /** the node's mDNS service, if discovery uses mDNS: restarted when an interface appears */
  mdns?: unknown
  /** follow interface changes (default true); intervalMs for tests */
  interfaceWatch?: boolean | { intervalMs?: number }
  /** address book redial interval (default ADDRESS_REDIAL_MS) */
  redialMs?: number
  /**
   * how a remembered peer is dialled (default: at once); the node passes its dialer (dialer.ts),
   * which dials only while under its connection target — no full mesh (issue 12)
   */
  dial?: (peerId: string, addrs: string[]) => Promise<unknown>
}

export interface Rejoin {
  readonly addressBook: AddressBook
  readonly interfaces: InterfaceWatch | undefined
  /** mDNS restarts after an interface appeared (for tests and status) */
  readonly mdnsRestarts: number
  stop(): Promise<void>
}

interface Restartable {
  start(): Promise<void> | void
  stop(): Promise<void> | void
}

function isRestartable(x: unknown): x is Restartable {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as Restartable).start === 'function' &&
    typeof (x as Restartable).stop === 'function'
  )
}

const isLoopback = (ma: Multiaddr | string): boolean => /^\/ip4\/127\.|^\/ip6\/::1\//.test(ma.toString())

export async function startRejoin(init: RejoinInit): Promise<Rejoin> {
  const node = init.libp2p
  const self = node.peerId.toString()
  const isConnected = (id: string) => node.getConnections().some((c) => c.remotePeer.toString() === id)
  const book = createAddressBook({
    ledger: init.ledger,
    self,
    isMember: init.isMember,
    isConnected,
    ...(init.paused === undefined ? {} : { paused: init.paused }),
    ...(init.redialMs === undefined ? {} : { redialMs: init.redialMs }),
    dial:
      init.dial ??
      ((_id, addrs) =>
        node.dial(
          addrs.map((a) => multiaddr(a)),
          { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) },
        )),
  })

  // where peers can be reached: what they announce (identify), where we reached them, mDNS
  const onIdentify = (evt: CustomEvent<IdentifyResult>) => {
    const { peerId, listenAddrs, connection } = evt.detail
    // a peer listening on 0.0.0.0 also announces 127.0.0.1: useless unless we are on loopback too
    const local = isLoopback(connection.remoteAddr)
    book.remember(
      peerId.toString(),
      listenAddrs.filter((a) => local || !isLoopback(a)).map((a) => a.toString()),
    )
  }
  const onOpen = (evt: CustomEvent<Connection>) => {
    const c = evt.detail
    if (c.direction === 'outbound') book.remember(c.remotePeer.toString(), [c.remoteAddr.toString()])
  }
  const onMdnsPeer = (evt: Event) => {
    const info = (evt as CustomEvent<{ id: PeerId; multiaddrs: Multiaddr[] }>).detail
    book.remember(
      info.id.toString(),
      info.multiaddrs.map((a) => a.toString()),
    )
  }
  node.addEventListener('peer:identify', onIdentify)
  node.addEventListener('connection:open', onOpen)
  const mdns = init.mdns as (EventTarget & Partial<Restartable>) | undefined
  mdns?.addEventListener?.('peer', onMdnsPeer)
  for (const c of node.getConnections())
    if (c.direction === 'outbound') book.remember(c.remotePeer.toString(), [c.remoteAddr.toString()])
  await book.start()

  let mdnsRestarts = 0
  const watchOpt = init.interfaceWatch ?? true
  const interfaces =
    watchOpt === false
      ? undefined
      : createInterfaceWatch({
          ...(typeof watchOpt === 'object' && watchOpt.intervalMs !== undefined
            ? { intervalMs: watchOpt.intervalMs }
            : {}),
          onAppear: async ({ added }) => {
            // a socket joined the multicast group on the interfaces of its time: a new one needs a
            // new socket (multicast-dns keys memberships by address, so a same-address interface
            // under a new name or index is never rejoined by its own periodic update)
            if (isRestartable(mdns)) {
              log('interface appeared (%s): restarting mDNS', added.join(' '))
              await mdns.stop()
              await mdns.start()
              mdnsRestarts++
            }
            book.redialNow()
          },
        })
  interfaces?.start()

  return {
    addressBook: book,
    interfaces,
    get mdnsRestarts() {
      return mdnsRestarts
    },
    async stop() {
      await interfaces?.stop()
      node.removeEventListener('peer:identify', onIdentify)
      node.removeEventListener('connection:open', onOpen)
      mdns?.removeEventListener?.('peer', onMdnsPeer)
      await book.stop()
    },
  }
}
