import { noise } from '@chainsafe/libp2p-noise'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { type GossipSub, gossipsub, StrictNoSign } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import type { Ledger } from '@nullmesh/ledger'
import {
  createExposureState,
  decideAck,
  decideOffline,
  decideOnlineAck,
  type ExposureState,
  originView,
  partitionExposureBound,
  quorumSize,
  type ReservationFacts,
  type VenueBundle,
  type VenuePolicy,
} from '@nullmesh/policy'
import {
  type Commit,
  type CommitMode,
  createProof,
  type DeclineCode,
  decodeAck,
  decodeCertificate,
  decodeEvent,
  equalBytes,
  isDeclineCode,
  type KeyPair,
  MAX_EVENT_BYTES,
  type NullmeshEvent,
  ONLINE_ACK_REASON,
  type PaymentMethod,
  type ProofDecision,
  type Release,
  type Reservation,
  type SignedAck,
  type SignedEvent,
  sha256,
  signAck,
  signEvent,
  toHex,
  verifyAckSignature,
  verifyCertificate,
} from '@nullmesh/protocol'
import debug from 'debug'
import { createLibp2p, type Libp2p } from 'libp2p'
import { TypedEventEmitter, type TypedEventTarget } from 'main-event'
import {
  ANTI_ENTROPY_INTERVAL_MS,
  CATCHUP_BATCH,
  CATCHUP_FRAME_BYTES,
  CATCHUP_MAX_EVENTS,
  DEFAULT_LISTEN,
  DEFAULT_TAP_BUDGET_MS,
  DIAL_TIMEOUT_MS,
  gossipTopic,
  HELLO_ATTEMPTS,
  HELLO_TIMEOUT_MS,
  ISOLATION_PROBE_MS,
  MAX_GOSSIP_BYTES,
  MDNS_INTERVAL_MS,
  mdnsServiceTag,
  PING_INTERVAL_MS,
  PING_TIMEOUT_MAX_MS,
  PING_TIMEOUT_MIN_MS,
  protocolIds,
  REACHABILITY_POLL_MS,
  REDIAL_INTERVAL_MS,
} from './constants.js'
import { EventValidationError, MeshError } from './errors.js'
import { FramedStream } from './framing.js'
import { toGossipVerdict } from './gossip-adapter.js'
import { Membership } from './membership.js'
import { type Rejoin, startRejoin } from './rejoin.js' // issue 15
import { type ValidationContext, validateEventBytes } from './validation.js'

const log = debug('nullmesh:mesh')

export interface MeshInit {
  bundle: VenueBundle
  key: KeyPair
  /** an open ledger; the mesh records into it but does not own it */
  ledger: Ledger
  /** libp2p listen multiaddrs (default 127.0.0.1, random port) */
  listen?: string[]
  discovery?: {
    /** mDNS on the LAN (only inside a namespace on shared machines) */
    mdns?: boolean | { interval?: number }
    /** static peers: multiaddrs ending in /p2p/<peer id> */
    peers?: string[]
  }
  /** clock, for tests */
  now?: () => number
  /**
   * Asked at start for each own reservation found without Commit or Release: true keeps it pending
   * (an online attempt that central may have authorised); otherwise it is released.
   */
  keepPending?: (reservationIdHex: string) => Promise<boolean>
}

export interface OfflineCandidate {
  nullifier: Uint8Array
  cardKey: Uint8Array
  amountMinor: number
  currency: string
  method: PaymentMethod
  /** issuer identification number, checked at the origin only (never leaves the terminal) */
  bin?: string | undefined
}

export interface BarrierStats {
  acks: number
  quorum: number
  ms: number
  attempts: number
}

export interface OfflineDecision {
  approved: boolean
  decision: ProofDecision
  declineCode?: DeclineCode | undefined
  message?: string | undefined
  mode: 'quorum' | 'isolated'
  /** the reservation's content id: the payment id of an offline payment */
  reservationId?: string | undefined
  commitId?: string | undefined
  seq: number
  ts: number
  proof: Uint8Array
  barrier: BarrierStats
}

export type MeshMode = 'quorum' | 'isolated'

export interface MeshStatus {
  peerId: string
  mode: MeshMode
  /** enrolled peers connected, verified and caught up */
  peers: number
  connections: number
  roster: number
  quorum: number
  partitioned: boolean
  /** worst case all terminals could approve in isolated mode, per currency */
  exposureBounds: Record<string, number>
  /** the same for the policy's first currency */
  exposureBoundMinor: number
  events: number
}

export interface MeshEvents {
  mode: CustomEvent<{ mode: MeshMode }>
  peer: CustomEvent<{ peerId: string; id: string; state: 'ready' | 'disconnected' }>
  event: CustomEvent<{ event: SignedEvent; source: 'self' | 'gossip' | 'catchup' | 'barrier' }>
}

export interface MeshNode extends TypedEventTarget<MeshEvents> {
  readonly peerId: string
  readonly publicKeyHex: string
  readonly policy: VenuePolicy
  readonly exposure: ExposureState
  start(opts?: { signal?: AbortSignal }): Promise<void>
  stop(opts?: { signal?: AbortSignal }): Promise<void>
  multiaddrs(): string[]
  status(): MeshStatus
  /** the offline decision path: policy → durable reservation → barrier → durable commit → proof */
  /**
   * The offline decision path: policy → durable reservation → barrier → durable commit → proof,
   * within the policy's tap budget. With `reservation`: decide an own reservation that already
   * exists (an online attempt whose answer never came) under the same payment identity; it is
   * committed if approved and left pending (never released) if not.
   */
  authorize(
    candidate: OfflineCandidate,
    opts?: { signal?: AbortSignal; reservation?: SignedEvent<Reservation>; deadline?: number },
  ): Promise<OfflineDecision>
  /**
   * Online path, before central is asked: a signed reservation recorded durably and, when a quorum
   * is reachable, held by a quorum under the online rules. Throws MeshError ERR_REFUSED when it is
   * not held (refused, timed out, or no quorum known yet); nothing is then pending.
   */
  reserveOnline(
    candidate: OfflineCandidate,
    opts?: { signal?: AbortSignal; deadline?: number },
  ): Promise<SignedEvent<Reservation>>
  /** online outcome: Commit (mode online) or Release, recorded and gossiped */
  completeOnline(
    reservation: SignedEvent<Reservation>,
    approved: boolean,
    reason?: string,
    opts?: { signal?: AbortSignal },
  ): Promise<{ event: SignedEvent; proof: Uint8Array }>
  /**
   * Central confirmed (ingested) every event of these origins up to the given seq: our isolated
   * approvals among them stop using the isolated budget (it is held until then, whatever the time).
   */
  confirmed(marks: Record<string, number>): void
  /** the policy's tap budget (ms): every decision returns within it */
  readonly tapBudgetMs: number
  /** cut this node off at the mesh layer (simulation of a partition) or heal it */
  setPartitioned(partitioned: boolean): Promise<void>
  /** pull what we miss from every ready peer now */
  catchUp(opts?: { signal?: AbortSignal }): Promise<{ received: number }>
}

interface PeerState {
  peerId: PeerId
  id: string
  keyHex: string
  verified: boolean
  caughtUp: boolean
  channel?: BarrierChannel | undefined
  opening?: Promise<BarrierChannel | undefined> | undefined
}

interface PendingRequest {
  resolve: (ack: SignedAck | undefined) => void
}

/** Origin side of the barrier protocol: one reused stream per peer, requests matched by id. */
class BarrierChannel {
  private readonly pending = new Map<number, PendingRequest>()
  private nextId = 1
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
    const ack = frame[1] instanceof Uint8Array ? decodeAck(frame[1]) : undefined
    p.resolve(ack?.ok === true ? ack.value : undefined)
  }

  /** a one-way frame (id 0): a Commit or Release pushed to this peer */
  notify(event: Uint8Array): void {
    this.framed.send([0, event]).catch(() => {})
  }

  failAll(): void {
    for (const p of this.pending.values()) p.resolve(undefined)
    this.pending.clear()
  }

  /** resolves with the peer's signed ack or refusal, or undefined if the stream failed */
  request(reservation: Uint8Array, view: string[], online: boolean): Promise<SignedAck | undefined> {
    const id = this.nextId++
    return new Promise((resolve) => {
      this.pending.set(id, { resolve })
      const frame = online ? [id, reservation, view, ONLINE_KIND] : [id, reservation, view]
      this.framed.send(frame).catch(() => {
        this.pending.delete(id)
        resolve(undefined)
      })
    })
  }
}

type Services = {
  pubsub: GossipSub
  identify: ReturnType<ReturnType<typeof identify>>
  ping: unknown
  mdns?: unknown
}

const RETRYABLE: ReadonlySet<string> = new Set([
  'nullifier_seen',
  'card_cap_exceeded',
  'card_count_exceeded',
  'device_cap_exceeded',
  'venue_cap_exceeded',
  'conflict',
])

function facts(signed: SignedEvent<Reservation>): ReservationFacts {
  const r = signed.event
  return {
    id: signed.idHex,
    origin: toHex(r.origin),
    nullifier: toHex(r.nullifier),
    cardKey: toHex(r.cardKey),
    amountMinor: r.amountMinor,
    currency: r.currency,
    method: r.method,
    ts: r.ts,
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Barrier request kind (4th frame element): the origin will ask central to authorise it online. */
const ONLINE_KIND = 1

class NullmeshNode extends TypedEventEmitter<MeshEvents> implements MeshNode {
  readonly policy: VenuePolicy
  readonly exposure: ExposureState = createExposureState()
  readonly publicKeyHex: string
  peerId = ''
  private readonly bundle: VenueBundle
  private readonly key: KeyPair
  private readonly ledger: Ledger
  private readonly init: MeshInit
  private readonly now: () => number
  private readonly membership: Membership
  private readonly quorum: number
  private readonly protocols: ReturnType<typeof protocolIds>
  private readonly topic: string
  private libp2p?: Libp2p<Services> | undefined
  private readonly peers = new Map<string, PeerState>()
  private readonly known = new Set<string>()
  private readonly idsAt = new Map<string, string>()
  private readonly reservationOrigin = new Map<string, string>()
  private readonly acksGiven = new Map<string, SignedAck>()
  /** acks signed whose fsync is in flight: a retransmission waits for the same durable answer */
  private readonly acksPending = new Map<string, Promise<SignedAck>>()
  /** enrolled peers (public key hex) whose history we caught up with in this run */
  private readonly learnedFrom = new Set<string>()
  /**
   * May this node sign events? Not before it knows its own high-water mark: a terminal whose disk
   * was lost (same key, empty ledger) must learn from a quorum what it signed before, or it would
   * sign two events with one (origin, seq). See docs/protocol.md, "Restarts and lost disks".
   */
  private seqKnown = false
  private readonly catchups = new Set<Promise<unknown>>()
  /** reservations neither committed nor released yet (any origin) */
  private readonly inflight = new Set<string>()
  /** reservations with a known Commit or Release */
  private readonly settled = new Set<string>()
  /** moving average of recent barrier rounds (ms), sizing the retry back-off */
  private recentBarrierMs = 5
  /** own isolated commits central has not confirmed yet: they use the isolated budget */
  private ownIsolated: { seq: number; reservationId: string }[] = []
  /** when ready peers last fell below the quorum (or the node started), performance.now() */
  private quorumLostAt = 0
  private nextSeq = 1
  private appendChain: Promise<unknown> = Promise.resolve()
  private mode: MeshMode = 'isolated'
  private partitioned = false
  private started = false
  private starting?: Promise<void> | undefined
  private timers: NodeJS.Timeout[] = []
  private readonly staticPeers: { peerId: string; addr: string }[]
  /** issue 15: address book + interface watch (rejoin.ts) */
  private rejoin?: Rejoin | undefined

  constructor(init: MeshInit) {
    super()
    this.init = init
    this.bundle = init.bundle
    this.key = init.key
    this.ledger = init.ledger
    this.policy = init.bundle.policy
    this.now = init.now ?? Date.now
    this.publicKeyHex = toHex(init.key.publicKey)
    this.membership = new Membership(init.bundle)
    if (!this.membership.isEnrolled(this.publicKeyHex, this.now())) {
      throw new MeshError(
        'ERR_NOT_ENROLLED',
        'this terminal key is not enrolled (or its certificate is not valid now) in the venue roster',
      )
    }
    this.quorum = quorumSize(this.policy, this.membership.size)
    this.protocols = protocolIds(this.bundle.venueId)
    this.topic = gossipTopic(this.bundle.venueId)
    this.staticPeers = (init.discovery?.peers ?? []).flatMap((addr) => {
      const peerId = multiaddr(addr)
        .getComponents()
        .find((c) => c.name === 'p2p')?.value
      return peerId === undefined ? [] : [{ peerId, addr }]
    })
  }

  // ---- lifecycle -------------------------------------------------------------------------

  async start(opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.started) return
    this.starting ??= this.doStart(opts)
    await this.starting
  }

  private async doStart(opts: { signal?: AbortSignal }): Promise<void> {
    await this.rebuildState(opts)
    this.nextSeq = Math.max(this.nextSeq, await this.ledger.nextSeq(this.publicKeyHex))
    // An intact ledger knows our own high-water mark (own events are durable before they leave).
    // An empty one may be a lost disk: learn from a quorum before signing (see learnedFrom).
    this.seqKnown = this.nextSeq > 1 || this.quorum <= 1
    this.quorumLostAt = performance.now()
    // [restart] our own reservations without Commit or Release were never answered "approved".
    // An offline one is released. One that was sent to central (init.keepPending says so) may have
    // been authorised there: it stays pending until central has been asked (the terminal voids it).
    for (const pending of await this.ledger.pendingReservations(this.publicKeyHex)) {
      if (this.init.keepPending !== undefined && (await this.init.keepPending(pending.idHex))) continue
      await this.appendOwn({ type: 'release', reservationId: pending.id, reason: 'recovered_after_restart' })
        .durable
    }
    const privateKey = await generateKeyPairFromSeed('Ed25519', this.key.privateKey)
    const mdnsOpt = this.init.discovery?.mdns
    const services: Record<string, unknown> = {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        // Events carry their origin's signature already: a second, per-relay gossipsub signature
        // would cost a sign + verify per hop and prove nothing more. StrictNoSign drops from/seqno,
        // so the message id must come from content: the sha256 of the event bytes, which is also
        // the event id — one event, one id, however many peers relay it.
        globalSignaturePolicy: StrictNoSign,
        msgIdFn: (msg) => sha256(msg.data),
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        // A venue is a small full mesh: flood our own events to every subscriber for latency.
        floodPublish: true,
        emitSelf: false,
        maxInboundDataLength: MAX_GOSSIP_BYTES + 1024,
        heartbeatInterval: 700,
      }),
    }
    if (mdnsOpt) {
      services.mdns = mdns({
        interval: typeof mdnsOpt === 'object' ? (mdnsOpt.interval ?? MDNS_INTERVAL_MS) : MDNS_INTERVAL_MS,
        serviceTag: mdnsServiceTag(this.bundle.venueId),
      })
    }
    const node = (await createLibp2p({
      privateKey,
      addresses: { listen: this.init.listen ?? DEFAULT_LISTEN },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      // the venue pre-shared key: outsiders cannot even complete a handshake
      connectionProtector: preSharedKey({ psk: this.bundle.psk }),
      connectionMonitor: {
        pingInterval: PING_INTERVAL_MS,
        pingTimeout: { minTimeout: PING_TIMEOUT_MIN_MS, maxTimeout: PING_TIMEOUT_MAX_MS },
      },
      connectionGater: {
        denyDialPeer: async () => this.partitioned,
        denyInboundConnection: async () => this.partitioned,
        // only enrolled terminals of this venue may keep a connection
        denyInboundEncryptedConnection: async (peerId: PeerId) =>
          this.membership.memberForPeer(peerId.toString(), this.now()) === undefined,
        denyOutboundEncryptedConnection: async (peerId: PeerId) =>
          this.membership.memberForPeer(peerId.toString(), this.now()) === undefined,
      },
      services: services as never,
    })) as unknown as Libp2p<Services>
    this.libp2p = node
    this.peerId = node.peerId.toString()

    await node.handle(this.protocols.hello, (stream, conn) => this.handleHello(stream, conn), {
      runOnLimitedConnection: false,
    })
    await node.handle(this.protocols.barrier, (stream, conn) => this.handleBarrier(stream, conn), {
      maxInboundStreams: 4,
      maxOutboundStreams: 4,
    })
    await node.handle(this.protocols.catchup, (stream, conn) => this.handleCatchup(stream, conn), {
      maxInboundStreams: 8,
    })

    const pubsub = node.services.pubsub
    pubsub.topicValidators.set(this.topic, (_peer, msg) => toGossipVerdict(this.receive(msg.data, 'gossip')))
    pubsub.subscribe(this.topic)

    node.addEventListener('peer:connect', (evt) => this.onConnect(evt.detail))
    node.addEventListener('peer:disconnect', (evt) => this.onDisconnect(evt.detail))
    if (services.mdns !== undefined) {
      const discovery = (node.services as Record<string, unknown>).mdns as EventTarget
      discovery.addEventListener('peer', (evt) => {
        const info = (
          evt as CustomEvent<{ id: PeerId; multiaddrs: import('@multiformats/multiaddr').Multiaddr[] }>
        ).detail
        // libp2p 3 never redials by itself: dial on every sighting of an enrolled peer we miss
        this.dialIfMissing(info.id.toString(), info.multiaddrs)
      })
    }
    await node.start()
    // ── issue 15 hook (rejoin.ts): persisted address book redialled, mDNS restarted on a new interface
    this.rejoin = await startRejoin({
      libp2p: node as never,
      ledger: this.ledger,
      isMember: (id) => this.membership.memberForPeer(id, this.now()) !== undefined,
      paused: () => this.partitioned,
      mdns: (node.services as Record<string, unknown>).mdns,
    })
    // ── end issue 15 hook
    this.started = true
    this.timers.push(setInterval(() => this.redial(), REDIAL_INTERVAL_MS))
    this.timers.push(setInterval(() => this.antiEntropy(), ANTI_ENTROPY_INTERVAL_MS))
    for (const t of this.timers) t.unref()
    this.redial()
    this.updateMode()
    log(
      'started %s as %s, roster %d, quorum %d',
      this.peerId,
      this.bundle.venueId,
      this.membership.size,
      this.quorum,
    )
  }

  async stop(): Promise<void> {
    if (this.starting !== undefined) await this.starting.catch(() => {})
    if (!this.started) return
    this.started = false
    this.starting = undefined
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    await this.rejoin?.stop() // issue 15 hook: before the caller closes the ledger
    this.rejoin = undefined
    for (const p of this.peers.values()) p.channel?.failAll()
    this.peers.clear()
    const node = this.libp2p
    this.libp2p = undefined
    await node?.stop()
    // our own appends must be durable before the caller closes the ledger
    await this.appendChain.catch(() => {})
    log('stopped %s', this.peerId)
  }

  multiaddrs(): string[] {
    return this.libp2p?.getMultiaddrs().map((m) => m.toString()) ?? []
  }

  status(): MeshStatus {
    const currencies = Object.keys(this.policy.currencies)
    const exposureBounds: Record<string, number> = {}
    for (const c of currencies)
      exposureBounds[c] = partitionExposureBound(this.policy, this.membership.size, c)
    return {
      peerId: this.peerId,
      mode: this.mode,
      peers: this.readyPeers().length,
      connections: this.peers.size,
      roster: this.membership.size,
      quorum: this.quorum,
      partitioned: this.partitioned,
      exposureBounds,
      exposureBoundMinor: currencies[0] === undefined ? 0 : (exposureBounds[currencies[0]] ?? 0),
      events: this.known.size,
    }
  }

  // ---- state -------------------------------------------------------------------------------

  private async rebuildState(opts: { signal?: AbortSignal }): Promise<void> {
    for await (const signed of this.ledger.events({ signal: opts.signal })) {
      let held = false
      if (signed.event.type === 'reservation') {
        held = toHex(signed.event.origin) === this.publicKeyHex || (await this.ledger.isHeld(signed.idHex))
        const ack = held ? await this.ledger.ackGiven(signed.idHex) : undefined
        if (ack !== undefined) this.acksGiven.set(signed.idHex, ack)
      }
      this.applyToState(signed, held)
    }
    // Bodies central confirmed may have been pruned: their reservations still hold their nullifier
    // and count in their card's window, from the indexes the ledger keeps (a replayed credential
    // must not be approved again after a restart, nor a card pass its cap).
    let pruned = 0
    for await (const r of this.ledger.prunedReservations({ signal: opts.signal })) {
      if (this.known.has(r.id)) continue
      const f: ReservationFacts = {
        id: r.id,
        origin: r.origin ?? '',
        nullifier: r.nullifier,
        cardKey: r.cardKey,
        amountMinor: r.amountMinor,
        currency: r.currency,
        method: (r.method ?? 'contactless') as PaymentMethod,
        ts: r.ts,
      }
      this.known.add(r.id)
      this.reservationOrigin.set(r.id, f.origin)
      this.exposure.addReservation(f, r.held)
      if (r.state === 'committed') {
        const modes = r.modes.length > 0 ? r.modes : ['quorum']
        for (const m of modes) this.exposure.addCommit(f, m as CommitMode)
      }
      if (r.state === 'released') this.exposure.addRelease(r.id)
      if (r.state !== 'reserved') this.settled.add(r.id)
      // pruned means central confirmed it: an isolated approval no longer uses the isolated budget
      if (r.modes.includes('isolated')) this.exposure.confirmIsolated(r.id)
      pruned++
    }
    // (online commits hold their nullifier; the policy leaves them out of the offline caps)
    log('rebuilt state from %d events and %d pruned reservations', this.known.size - pruned, pruned)
    this.confirmed(await this.ledger.confirmedMarks({ signal: opts.signal }))
  }

  /** Apply a recorded or about-to-be-recorded event to the in-memory view. Synchronous, so a
   * decision and the state change it implies happen atomically on the event loop. */
  private applyToState(signed: SignedEvent, held: boolean): void {
    const e = signed.event
    this.known.add(signed.idHex)
    const origin = toHex(e.origin)
    this.idsAt.set(`${origin}:${e.seq}`, signed.idHex)
    // our own events coming back (catch-up after a lost disk): never sign at their seq again
    if (origin === this.publicKeyHex && e.seq >= this.nextSeq) this.nextSeq = e.seq + 1
    switch (e.type) {
      case 'reservation':
        this.reservationOrigin.set(signed.idHex, toHex(e.origin))
        if (!this.settled.has(signed.idHex)) this.inflight.add(signed.idHex)
        this.exposure.addReservation(facts(signed as SignedEvent<Reservation>), held)
        break
      case 'commit': {
        const inner = e.reservation
        if (!this.known.has(inner.idHex)) this.applyToState(inner, false)
        this.inflight.delete(inner.idHex)
        this.settled.add(inner.idHex)
        // online commits hold their nullifier (a replay offline is refused) but the policy does
        // not count them toward the offline caps
        this.exposure.addCommit(facts(inner), e.mode)
        if (e.mode === 'isolated' && origin === this.publicKeyHex)
          this.ownIsolated.push({ seq: e.seq, reservationId: inner.idHex })
        break
      }
      case 'release':
        this.inflight.delete(toHex(e.reservationId))
        this.settled.add(toHex(e.reservationId))
        this.exposure.addRelease(toHex(e.reservationId))
        break
    }
  }

  private validationContext(): ValidationContext {
    return {
      venue: this.bundle.venueId,
      now: this.now(),
      maxClockSkewMs: this.policy.maxClockSkewMs,
      quorum: this.quorum,
      isEnrolled: (k) => this.membership.isEnrolled(k, this.now()),
      isKnown: (id) => this.known.has(id),
      idAt: (origin, seq) => this.idsAt.get(`${origin}:${seq}`),
      reservationOrigin: (id) => this.reservationOrigin.get(id),
    }
  }

  /** a validated event from a peer: into the view now, into the ledger soon (not on an approval path) */
  private applyRemote(signed: SignedEvent, source: 'gossip' | 'catchup'): void {
    if (this.known.has(signed.idHex)) return
    this.applyToState(signed, false)
    this.ledger
      .recordEvent(signed, { sync: false })
      .catch((err: unknown) => log('record %s failed: %o', source, err))
    this.emit('event', { event: signed, source })
  }

  private emit<K extends keyof MeshEvents>(type: K, detail: MeshEvents[K]['detail']): void {
    this.safeDispatchEvent(type, { detail })
  }

  /**
   * Append one of our own events: seq assigned and state updated synchronously (so concurrent
   * decisions see it at once), the durable write serialised behind earlier ones so our log has no
   * gaps even if we crash mid-write.
   */
  private appendOwn(
    fields:
      | Omit<Reservation, 'venue' | 'origin' | 'seq' | 'ts'>
      | Omit<Commit, 'venue' | 'origin' | 'seq' | 'ts'>
      | Omit<Release, 'venue' | 'origin' | 'seq' | 'ts'>,
    opts: { held?: boolean } = {},
  ): { signed: SignedEvent; durable: Promise<void> } {
    const event = {
      ...fields,
      venue: this.bundle.venueId,
      origin: this.key.publicKey,
      seq: this.nextSeq++,
      ts: this.now(),
    } as NullmeshEvent
    const signed = signEvent(this.key, event)
    this.applyToState(signed, opts.held ?? true)
    const durable = this.appendChain
      .then(() => this.ledger.recordEvent(signed, { sync: true, held: opts.held ?? true }))
      .then(() => {})
    this.appendChain = durable.catch(() => {})
    this.emit('event', { event: signed, source: 'self' })
    return { signed, durable }
  }

  private appendReservation(candidate: OfflineCandidate): {
    signed: SignedEvent<Reservation>
    durable: Promise<void>
  } {
    const { signed, durable } = this.appendOwn({
      type: 'reservation',
      nullifier: candidate.nullifier,
      cardKey: candidate.cardKey,
      amountMinor: candidate.amountMinor,
      currency: candidate.currency,
      method: candidate.method,
      policyVersion: this.policy.version,
    })
    return { signed: signed as SignedEvent<Reservation>, durable }
  }

  /**
   * Disseminate our Commit or Release. Every ready peer gets it pushed on the barrier stream we
   * already hold (one transmission each). gossipsub carries it too only while some enrolled
   * terminal is not a ready direct peer, so it reaches them through others: in a venue's usual
   * full mesh, flood-publish plus every receiver forwarding cost ~4× the transmissions, each paid
   * in Noise, Yamux, protobuf and hashing by the receiver (docs/benchmarks.md, finding 2).
   */
  private publish(signed: SignedEvent): void {
    const ready = this.readyPeers()
    for (const peer of ready) {
      void this.channelFor(peer).then((ch) => ch?.notify(signed.bytes))
    }
    if (ready.length < this.membership.size - 1) {
      this.libp2p?.services.pubsub
        .publish(this.topic, signed.bytes)
        .catch((err: unknown) => log('publish failed: %o', err))
    }
  }

  /** an event pushed by a peer or relayed by gossip: validated alike, then into the view */
  private receive(bytes: Uint8Array, source: 'gossip' | 'push'): unknown {
    try {
      const signed = validateEventBytes(this.validationContext(), bytes, MAX_GOSSIP_BYTES)
      this.applyRemote(signed, 'gossip')
      return undefined
    } catch (err: unknown) {
      if (err instanceof EventValidationError && err.action === 'REJECT') {
        log('%s reject %s: %s', source, err.code, err.message)
      }
      return err
    }
  }

  // ---- peers -------------------------------------------------------------------------------

  private readyPeers(): PeerState[] {
    return [...this.peers.values()].filter((p) => p.verified && p.caughtUp)
  }

  private updateMode(): void {
    const mode: MeshMode =
      !this.partitioned && this.readyPeers().length + 1 >= this.quorum ? 'quorum' : 'isolated'
    if (mode !== this.mode) {
      if (mode === 'isolated') this.quorumLostAt = performance.now()
      this.mode = mode
      log('mode %s (%d ready peers, quorum %d)', mode, this.readyPeers().length, this.quorum)
      this.emit('mode', { mode })
    }
  }

  private dialIfMissing(peerId: string, addrs: import('@multiformats/multiaddr').Multiaddr[] | string): void {
    const node = this.libp2p
    if (node === undefined || this.partitioned || peerId === this.peerId) return
    if (this.membership.memberForPeer(peerId, this.now()) === undefined) return
    if (node.getConnections().some((c) => c.remotePeer.toString() === peerId)) return
    const target = typeof addrs === 'string' ? multiaddr(addrs) : addrs
    node
      .dial(target as never, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
      .catch((err: unknown) =>
        log.extend('dial')('dial %s failed: %s', peerId.slice(-8), (err as Error).message),
      )
  }

  private redial(): void {
    if (!this.started || this.partitioned) return
    for (const p of this.staticPeers) this.dialIfMissing(p.peerId, p.addr)
  }

  private onConnect(peerId: PeerId): void {
    const id = peerId.toString()
    const member = this.membership.memberForPeer(id, this.now())
    if (member === undefined || this.peers.has(id)) return
    const state: PeerState = {
      peerId,
      id: member.id,
      keyHex: member.publicKeyHex,
      verified: false,
      caughtUp: false,
    }
    this.peers.set(id, state)
    this.greet(state)
  }

  /** hello (and the catch-up behind it); a failure is retried, then the connection is dropped so
   * that a redial starts clean — a peer must never stay connected but unverified */
  private greet(state: PeerState, attempt = 1): void {
    this.sayHello(state).catch((err: unknown) => {
      log('hello to %s failed (attempt %d): %s', state.id, attempt, (err as Error).message)
      if (!this.started || this.peers.get(state.peerId.toString()) !== state) return
      if (attempt < HELLO_ATTEMPTS) {
        setTimeout(() => this.greet(state, attempt + 1), 200 * attempt).unref()
      } else {
        this.peers.delete(state.peerId.toString())
        this.libp2p?.hangUp(state.peerId).catch(() => {})
      }
    })
  }

  private onDisconnect(peerId: PeerId): void {
    const id = peerId.toString()
    const state = this.peers.get(id)
    if (state === undefined) return
    // the connection manager may still hold another connection to this peer
    if (this.libp2p?.getConnections(peerId).length) return
    state.channel?.failAll()
    this.peers.delete(id)
    this.emit('peer', { peerId: id, id: state.id, state: 'disconnected' })
    this.updateMode()
  }

  /** hello: each side presents its enrollment certificate and policy version */
  private helloFrame(): unknown[] {
    const me = this.membership.byKey.get(this.publicKeyHex)!
    return [me.certificate.bytes, this.policy.version]
  }

  private checkHello(peer: PeerState, frame: unknown): boolean {
    if (!Array.isArray(frame) || !(frame[0] instanceof Uint8Array)) return false
    const cert = decodeCertificate(frame[0])
    if (!cert.ok) return false
    const verified = verifyCertificate(cert.value, {
      operatorPublicKey: this.bundle.operatorPublicKey,
      venue: this.bundle.venueId,
      now: this.now(),
      role: 'terminal',
    })
    if (!verified.ok || toHex(verified.value.certificate.subject) !== peer.keyHex) return false
    if (frame[1] !== this.policy.version)
      log('peer %s runs policy v%s, we run v%d', peer.id, String(frame[1]), this.policy.version)
    return true
  }

  private async sayHello(peer: PeerState): Promise<void> {
    const node = this.libp2p
    if (node === undefined) return
    const stream = await node.dialProtocol(peer.peerId, this.protocols.hello, {
      signal: AbortSignal.timeout(HELLO_TIMEOUT_MS),
    })
    const reply = await new Promise<unknown>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), HELLO_TIMEOUT_MS)
      const framed = new FramedStream(
        stream,
        (frame) => {
          clearTimeout(timer)
          resolve(frame)
          void framed.close()
        },
        () => resolve(undefined),
      )
      framed.send(this.helloFrame()).catch(() => resolve(undefined))
    })
    if (reply === undefined) throw new Error('no hello answer')
    if (!this.checkHello(peer, reply)) {
      log('peer %s presented no valid certificate: hanging up', peer.id)
      await node.hangUp(peer.peerId).catch(() => {})
      return
    }
    peer.verified = true
    // a peer counts toward the quorum only once we hold what it holds: a failed catch-up is retried
    // by greet() and, after HELLO_ATTEMPTS, the connection is dropped — never counted as caught up
    const got = await this.trackCatchup(this.catchUpFrom(peer), true)
    if (got === undefined) throw new Error('catch-up failed')
    peer.caughtUp = true
    this.learnedFrom.add(peer.keyHex)
    if (!this.seqKnown && this.learnedFrom.size + 1 >= this.quorum) {
      // any event of ours that a quorum certified is held by one of these peers (intersection)
      this.seqKnown = true
      log('learned our own history from %d peers: next seq %d', this.learnedFrom.size, this.nextSeq)
    }
    this.emit('peer', { peerId: peer.peerId.toString(), id: peer.id, state: 'ready' })
    this.updateMode()
  }

  private handleHello(stream: Stream, conn: Connection): void {
    const peer = this.peers.get(conn.remotePeer.toString())
    const framed = new FramedStream(
      stream,
      (frame) => {
        if (peer === undefined || !this.checkHello(peer, frame)) {
          framed.abort(new Error('invalid hello'))
          return
        }
        framed.send(this.helloFrame()).then(
          () => framed.close(),
          () => {},
        )
      },
      () => {},
    )
  }

  // ---- catch-up (anti-entropy) ------------------------------------------------------------------

  /** `initial`: the catch-up that follows a (re)connection; acks wait for these, not for periodic ones */
  private async trackCatchup<T>(p: Promise<T>, initial = false): Promise<T | undefined> {
    if (initial) this.catchups.add(p)
    try {
      return await p
    } catch (err: unknown) {
      log('catch-up failed: %s', (err as Error).message)
      return undefined
    } finally {
      this.catchups.delete(p)
    }
  }

  /** Send our per-origin high-water marks; receive exactly what we miss, validated like gossip. */
  private async catchUpFrom(peer: PeerState): Promise<number> {
    const node = this.libp2p
    if (node === undefined) return 0
    const marks = await this.ledger.highWaterMarks()
    const stream = await node.dialProtocol(peer.peerId, this.protocols.catchup, {
      signal: AbortSignal.timeout(HELLO_TIMEOUT_MS),
    })
    let received = 0
    const batches: SignedEvent[][] = []
    await new Promise<void>((resolve, reject) => {
      const framed = new FramedStream(
        stream,
        (frame) => {
          if (!Array.isArray(frame)) return
          if (frame.length === 0) {
            resolve()
            void framed.close()
            return
          }
          const valid: SignedEvent[] = []
          const ctx = this.validationContext()
          for (const bytes of frame) {
            if (!(bytes instanceof Uint8Array)) continue
            try {
              const signed = validateEventBytes(ctx, bytes, MAX_EVENT_BYTES)
              this.applyToState(signed, false)
              valid.push(signed)
            } catch (err: unknown) {
              if (!(err instanceof EventValidationError) || err.action !== 'IGNORE')
                log('catch-up event rejected: %s', (err as Error).message)
            }
          }
          received += valid.length
          if (valid.length > 0) batches.push(valid)
        },
        (err) => (err === undefined ? resolve() : reject(err)),
      )
      framed.send([Object.entries(marks)]).catch(reject)
    })
    for (const batch of batches) {
      await this.ledger.recordEvents(batch, { sync: false })
      for (const e of batch) this.emit('event', { event: e, source: 'catchup' })
    }
    if (received > 0) log('caught up %d events from %s', received, peer.id)
    return received
  }

  private handleCatchup(stream: Stream, conn: Connection): void {
    if (this.membership.memberForPeer(conn.remotePeer.toString(), this.now()) === undefined) {
      stream.abort(new Error('not enrolled'))
      return
    }
    const framed = new FramedStream(
      stream,
      (frame) => {
        const marks: Record<string, number> = {}
        if (Array.isArray(frame) && Array.isArray(frame[0])) {
          for (const entry of frame[0] as unknown[]) {
            if (Array.isArray(entry) && typeof entry[0] === 'string' && typeof entry[1] === 'number')
              marks[entry[0]] = entry[1]
          }
        }
        void (async () => {
          let batch: Uint8Array[] = []
          let bytes = 0
          for await (const e of this.ledger.eventsAfter(marks, { limit: CATCHUP_MAX_EVENTS })) {
            batch.push(e.bytes)
            bytes += e.bytes.byteLength
            if (batch.length >= CATCHUP_BATCH || bytes >= CATCHUP_FRAME_BYTES) {
              await framed.send(batch)
              batch = []
              bytes = 0
            }
          }
          if (batch.length > 0) await framed.send(batch)
          await framed.send([])
          await framed.close()
        })().catch((err: unknown) => framed.abort(err as Error))
      },
      () => {},
    )
  }

  async catchUp(_opts: { signal?: AbortSignal } = {}): Promise<{ received: number }> {
    let received = 0
    for (const peer of this.readyPeers()) received += (await this.trackCatchup(this.catchUpFrom(peer))) ?? 0
    return { received }
  }

  private antiEntropy(): void {
    const ready = this.readyPeers()
    if (ready.length === 0) return
    const peer = ready[Math.floor(Math.random() * ready.length)]!
    void this.trackCatchup(this.catchUpFrom(peer))
  }

  // ---- barrier: peer side -----------------------------------------------------------------------

  private handleBarrier(stream: Stream, conn: Connection): void {
    const remote = conn.remotePeer.toString()
    const framed = new FramedStream(
      stream,
      (frame) => {
        if (!Array.isArray(frame) || typeof frame[0] !== 'number' || !(frame[1] instanceof Uint8Array)) {
          framed.abort(new Error('malformed barrier frame'))
          return
        }
        const id = frame[0]
        if (id === 0) {
          // a pushed Commit or Release: no answer
          const err = this.receive(frame[1], 'push')
          if (err instanceof EventValidationError && err.action === 'REJECT') framed.abort(err)
          return
        }
        const view = Array.isArray(frame[2])
          ? frame[2].filter((v): v is string => typeof v === 'string').slice(0, 4096)
          : []
        this.answerReservation(remote, frame[1], view, frame[3] === ONLINE_KIND)
          .then((ack) => framed.send([id, ack?.bytes ?? null]))
          .catch((err: unknown) => log('barrier answer failed: %o', err))
      },
      () => {},
    )
  }

  private refuse(reservationId: Uint8Array, reason: string): SignedAck {
    return signAck(this.key, {
      venue: this.bundle.venueId,
      acker: this.key.publicKey,
      reservationId,
      ok: false,
      reason,
      ts: this.now(),
    })
  }

  /** A peer asks us to ack its reservation. The same policy function the origin used decides. */
  private async answerReservation(
    remotePeer: string,
    bytes: Uint8Array,
    originView: string[],
    online: boolean,
  ): Promise<SignedAck | undefined> {
    const member = this.membership.memberForPeer(remotePeer, this.now())
    if (member === undefined) return undefined
    let signed: SignedEvent
    try {
      signed = validateEventBytes(this.validationContext(), bytes, MAX_EVENT_BYTES)
    } catch (err: unknown) {
      if (!(err instanceof EventValidationError) || err.code !== 'ERR_ALREADY_KNOWN') {
        log('barrier request from %s invalid: %s', member.id, (err as Error).message)
        return undefined
      }
      const d = decodeEvent(bytes)
      if (!d.ok) return undefined
      signed = d.value
      // a retransmission gets the same answer, and only once that answer is durable; an online
      // ack does not answer a later offline request for the same reservation (decided afresh)
      const previous = await (this.acksGiven.get(signed.idHex) ?? this.acksPending.get(signed.idHex))
      if (previous !== undefined && previous.ack.reason === (online ? ONLINE_ACK_REASON : '')) return previous
    }
    if (signed.event.type !== 'reservation') return undefined
    const reservation = signed as SignedEvent<Reservation>
    // the requester must be the origin of what it asks us to hold
    if (toHex(reservation.event.origin) !== member.publicKeyHex) return undefined
    if (reservation.event.policyVersion !== this.policy.version)
      return this.refuse(reservation.id, 'policy_mismatch')
    // a terminal that is still catching up must not ack against a stale view: it waits a little,
    // then refuses (the origin retries within its tap budget) rather than ack without the history
    if (this.catchups.size > 0) {
      await Promise.race([Promise.allSettled([...this.catchups]), sleep(this.policy.barrier.timeoutMs / 2)])
      if (this.catchups.size > 0) return this.refuse(reservation.id, 'catching_up')
    }
    const f = facts(reservation)
    if (this.partitioned) return undefined
    // An online reservation (its origin asks central next) is judged by the online rules: the
    // offline floor and caps do not apply, but the ack still means "I now hold this nullifier".
    // An offline one by the offline rules and the origin's view of the card: a peer holding a
    // reservation of the card the origin did not see refuses (`conflict`), which makes card caps
    // exact and not just pairwise (see docs/protocol.md).
    const verdict = online
      ? decideOnlineAck(this.policy, this.exposure, f, { now: this.now() })
      : decideAck(this.policy, this.exposure, f, { now: this.now(), originView })
    if (!verdict.approve) {
      if (!this.known.has(reservation.idHex)) this.applyRemote(reservation, 'gossip')
      return this.refuse(reservation.id, verdict.code)
    }
    // hold it in our view now (synchronously, so no concurrent request can double-book), durable before we ack
    if (this.known.has(reservation.idHex)) this.exposure.hold(reservation.idHex)
    else this.applyToState(reservation, true)
    const ack = signAck(this.key, {
      venue: this.bundle.venueId,
      acker: this.key.publicKey,
      reservationId: reservation.id,
      ok: true,
      reason: online ? ONLINE_ACK_REASON : '',
      ts: this.now(),
    })
    const durable = this.ledger
      .recordEvent(reservation, { sync: true, held: true, ackGiven: ack })
      .then(() => {
        this.acksGiven.set(reservation.idHex, ack)
        return ack
      })
      .finally(() => this.acksPending.delete(reservation.idHex))
    this.acksPending.set(reservation.idHex, durable)
    return await durable
  }

  // ---- barrier: origin side ----------------------------------------------------------------------

  /** One reused stream per peer; concurrent callers share the dial of a new one. */
  private channelFor(peer: PeerState): Promise<BarrierChannel | undefined> {
    if (peer.channel !== undefined && !peer.channel.framed.closed) return Promise.resolve(peer.channel)
    const node = this.libp2p
    if (node === undefined) return Promise.resolve(undefined)
    peer.opening ??= node
      .dialProtocol(peer.peerId, this.protocols.barrier, {
        signal: AbortSignal.timeout(this.policy.barrier.timeoutMs),
      })
      .then((stream) => {
        peer.channel = BarrierChannel.open(stream)
        return peer.channel
      })
      .catch(() => undefined)
      .finally(() => {
        peer.opening = undefined
      })
    return peer.opening
  }

  /**
   * Collect acks until the quorum is met, a quorum is no longer possible, or `timeoutMs` passes.
   * `online`: the peers judge it by the online rules and answer with an `online` ack.
   */
  private async collect(
    reservation: SignedEvent<Reservation>,
    view: string[],
    opts: { timeoutMs: number; online: boolean },
  ): Promise<
    | { kind: 'quorum'; acks: SignedAck[] }
    | { kind: 'refused'; code: string; acks: number }
    | { kind: 'unreachable' | 'timeout'; acks: number }
  > {
    const reason = opts.online ? ONLINE_ACK_REASON : ''
    const self = signAck(this.key, {
      venue: this.bundle.venueId,
      acker: this.key.publicKey,
      reservationId: reservation.id,
      ok: true,
      reason,
      ts: this.now(),
    })
    const acks: SignedAck[] = [self]
    const targets = this.readyPeers()
    if (targets.length + 1 < this.quorum) return { kind: 'unreachable', acks: 1 }
    // a roster of one (or a quorum of one): our own durable ack is the quorum
    if (acks.length >= this.quorum) return { kind: 'quorum', acks }
    return await new Promise((resolve) => {
      let outstanding = targets.length
      let refusal: string | undefined
      let done = false
      const finish = (r: Parameters<typeof resolve>[0]) => {
        if (done) return
        done = true
        clearTimeout(timer)
        resolve(r)
      }
      const timer = setTimeout(
        () => finish({ kind: 'timeout', acks: acks.length }),
        Math.max(0, opts.timeoutMs),
      )
      for (const peer of targets) {
        void this.channelFor(peer)
          .then((ch) => ch?.request(reservation.bytes, view, opts.online))
          .then((ack) => {
            outstanding--
            if (done) return
            const valid =
              ack !== undefined &&
              equalBytes(ack.ack.reservationId, reservation.id) &&
              toHex(ack.ack.acker) === peer.keyHex &&
              verifyAckSignature(ack)
            if (valid && ack.ack.ok && ack.ack.reason === reason) {
              acks.push(ack)
              if (acks.length >= this.quorum) finish({ kind: 'quorum', acks })
            } else if (valid && !ack.ack.ok) {
              // a refusal does not end the barrier while a quorum is still possible: safety comes
              // from quorum intersection, and stopping at the first "no" turns contention into livelock
              refusal ??= ack.ack.reason
            }
            if (!done && acks.length + outstanding < this.quorum) {
              finish(
                refusal !== undefined
                  ? { kind: 'refused', code: refusal, acks: acks.length }
                  : { kind: 'unreachable', acks: acks.length },
              )
            }
          })
      }
    })
  }

  /**
   * Can a quorum be reached? `quorum`: enough peers are ready. `isolated`: not enough peers are
   * ready or even connected, and none has become so for ISOLATION_PROBE_MS since the quorum was
   * lost (or since start) — connection attempts failed, the quorum is really unreachable.
   * `unknown`: peers are connecting, greeting or catching up, or the probe time has not passed:
   * "not greeted yet" is not "unreachable", and a decision must not take the isolated path on it.
   */
  private reachability(): 'quorum' | 'isolated' | 'unknown' {
    if (this.partitioned) return 'isolated'
    const ready = this.readyPeers().length
    if (ready + 1 >= this.quorum) return 'quorum'
    const connecting = this.peers.size - ready
    if (ready + connecting + 1 >= this.quorum) return 'unknown'
    if (performance.now() - this.quorumLostAt < this.isolationProbeMs) return 'unknown'
    return 'isolated'
  }

  /** Wait (within the deadline) until the quorum is reachable or known to be unreachable. */
  private async awaitReachability(
    deadline: number,
    signal?: AbortSignal,
  ): Promise<'quorum' | 'isolated' | 'unknown'> {
    for (;;) {
      const r = this.reachability()
      if (r !== 'unknown' || performance.now() >= deadline) return r
      signal?.throwIfAborted()
      await sleep(Math.min(REACHABILITY_POLL_MS, Math.max(1, deadline - performance.now())))
    }
  }

  private get isolationProbeMs(): number {
    return Math.min(ISOLATION_PROBE_MS, Math.floor(this.tapBudgetMs * 0.75))
  }

  get tapBudgetMs(): number {
    return this.policy.tapBudgetMs ?? DEFAULT_TAP_BUDGET_MS
  }

  private proofFor(
    candidate: OfflineCandidate,
    decision: ProofDecision,
    seq: number,
    ts: number,
    declineCode?: DeclineCode,
  ): Uint8Array {
    return createProof(this.key, {
      nullifier: candidate.nullifier,
      amountMinor: candidate.amountMinor,
      currency: candidate.currency,
      decision,
      declineCode,
      ts,
      seq,
      policyVersion: this.policy.version,
    })
  }

  /** randomised exponential backoff: contenders for one card spread out instead of colliding again */
  private backoff(attempt: number, deadline: number): Promise<void> {
    // the window must exceed a barrier round, or contenders meet again: scale by the recent one
    const window = (this.policy.barrier.retryJitterMs + this.recentBarrierMs) * 2 ** (attempt - 1)
    return sleep(Math.min(2 + Math.random() * window, Math.max(0, deadline - performance.now())))
  }

  async authorize(
    candidate: OfflineCandidate,
    opts: { signal?: AbortSignal; reservation?: SignedEvent<Reservation>; deadline?: number } = {},
  ): Promise<OfflineDecision> {
    if (!this.started) throw new MeshError('ERR_NOT_STARTED', 'mesh node not started')
    const t0 = performance.now()
    // every decision returns within the tap budget; a barrier round needs a little room to commit
    const deadline = opts.deadline ?? t0 + this.tapBudgetMs
    const retries = this.policy.barrier.retries
    let lastAcks = 0
    let attempts = 0
    const stats = () => ({
      acks: lastAcks,
      quorum: this.quorum,
      ms: Math.round((performance.now() - t0) * 1000) / 1000,
      attempts,
    })
    // An existing reservation of ours (an online attempt whose answer never came): decided offline
    // under the same payment identity, and never released here — the caller must void it at
    // central first, since central may have authorised it.
    const existing = opts.reservation
    const decline = (mode: MeshMode, code: string, message?: string, seq = 0): OfflineDecision => {
      const declineCode: DeclineCode = isDeclineCode(code) ? code : 'other'
      const ts = this.now()
      return {
        approved: false,
        decision: 'declined_offline',
        declineCode,
        message,
        mode,
        seq,
        ts,
        proof: this.proofFor(candidate, 'declined_offline', seq, ts, declineCode),
        barrier: stats(),
        ...(existing === undefined ? {} : { reservationId: existing.idHex }),
      }
    }
    const timeLeft = () => deadline - performance.now()
    for (;;) {
      opts.signal?.throwIfAborted()
      attempts++
      const reach = await this.awaitReachability(deadline, opts.signal)
      if (reach === 'unknown')
        return decline(
          this.mode,
          'quorum_unavailable',
          'peers are still connecting: no quorum within the tap budget',
        )
      if (!this.seqKnown)
        return decline(
          this.mode,
          'quorum_unavailable',
          'this terminal has no history of its own yet and has not learned it from a quorum',
        )
      const now = this.now()
      const base = {
        id: existing?.idHex,
        origin: this.publicKeyHex,
        nullifier: toHex(candidate.nullifier),
        cardKey: toHex(candidate.cardKey),
        amountMinor: candidate.amountMinor,
        currency: candidate.currency,
        method: candidate.method,
        bin: candidate.bin,
        ts: existing?.event.ts ?? now,
      }
      if (reach === 'isolated') return this.authorizeIsolated(candidate, base, stats, existing)
      const verdict = decideOffline(this.policy, this.exposure, base, { mode: 'quorum', now })
      if (!verdict.approve) {
        // the conflict may be a reservation still in flight that is about to be released
        if (RETRYABLE.has(verdict.code) && this.inflight.size > 0 && attempts <= retries && timeLeft() > 0) {
          await this.backoff(attempts, deadline)
          continue
        }
        return decline('quorum', verdict.code, verdict.message)
      }
      const appended = existing === undefined ? this.appendReservation(candidate) : undefined
      const res = appended?.signed ?? existing!
      // The view is what this decision counted: taken in the same synchronous step as the decision,
      // before any await. Taken after the fsync it could name a reservation acked meanwhile that
      // the decision never counted, and a peer holding it would wrongly find no conflict (this
      // broke a card cap in the double-tap sim).
      const view = originView(this.policy, this.exposure, { ...base, id: res.idHex })
      // fsync before send: peers must never hold a reservation we could lose in a crash (we would
      // reuse its seq for another event, and the peers would hold it for good)
      if (appended !== undefined) await appended.durable
      const round = performance.now()
      const outcome = await this.collect(res, view, {
        timeoutMs: Math.min(this.policy.barrier.timeoutMs, timeLeft()),
        online: false,
      })
      this.recentBarrierMs = 0.8 * this.recentBarrierMs + 0.2 * (performance.now() - round)
      if (outcome.kind === 'quorum') {
        lastAcks = outcome.acks.length
        const { signed: commit, durable: committed } = this.appendOwn({
          type: 'commit',
          reservation: res,
          mode: 'quorum',
          acks: outcome.acks,
        })
        await committed
        this.publish(commit)
        return {
          approved: true,
          decision: 'approved_offline',
          mode: 'quorum',
          reservationId: res.idHex,
          commitId: commit.idHex,
          seq: commit.event.seq,
          ts: commit.event.ts,
          proof: this.proofFor(candidate, 'approved_offline', commit.event.seq, commit.event.ts),
          barrier: stats(),
        }
      }
      lastAcks = outcome.acks
      const reason =
        outcome.kind === 'refused'
          ? outcome.code
          : outcome.kind === 'timeout'
            ? 'barrier_timeout'
            : 'quorum_unavailable'
      let releaseSeq = 0
      if (existing === undefined) {
        const { signed: release } = this.appendOwn({ type: 'release', reservationId: res.id, reason })
        this.publish(release)
        releaseSeq = release.event.seq
      }
      const retryable =
        outcome.kind === 'refused'
          ? RETRYABLE.has(outcome.code) && attempts <= retries
          : outcome.kind === 'timeout'
            ? // a loaded peer, not a lost one: try again after a back-off
              attempts <= Math.min(retries, 2)
            : true // peers were lost mid-round: reachability decides on the next turn
      if (retryable && timeLeft() > 0 && existing === undefined) {
        await this.backoff(attempts, deadline)
        continue
      }
      if (outcome.kind === 'refused')
        return decline('quorum', outcome.code, `refused by a peer: ${outcome.code}`, releaseSeq)
      // Peers are connected but slow: decline. Falling back to isolated mode here would let
      // every terminal of a loaded venue approve the same card alone.
      return decline('quorum', reason, undefined, releaseSeq)
    }
  }

  private async authorizeIsolated(
    candidate: OfflineCandidate,
    base: Parameters<typeof decideOffline>[2],
    stats: () => BarrierStats,
    existing?: SignedEvent<Reservation>,
  ): Promise<OfflineDecision> {
    const now = this.now()
    const verdict = decideOffline(
      this.policy,
      this.exposure,
      { ...base, ts: existing?.event.ts ?? now },
      {
        mode: 'isolated',
        now,
      },
    )
    if (!verdict.approve) {
      const declineCode: DeclineCode = isDeclineCode(verdict.code) ? verdict.code : 'other'
      return {
        approved: false,
        decision: 'declined_offline',
        declineCode,
        message: verdict.message,
        mode: 'isolated',
        ...(existing === undefined ? {} : { reservationId: existing.idHex }),
        seq: 0,
        ts: now,
        proof: this.proofFor(candidate, 'declined_offline', 0, now, declineCode),
        barrier: stats(),
      }
    }
    const res = existing ?? this.appendReservation(candidate).signed
    const { signed: commit, durable } = this.appendOwn({
      type: 'commit',
      reservation: res,
      mode: 'isolated',
      acks: [],
    })
    await durable
    this.publish(commit)
    return {
      approved: true,
      decision: 'approved_offline_isolated',
      mode: 'isolated',
      reservationId: res.idHex,
      commitId: commit.idHex,
      seq: commit.event.seq,
      ts: commit.event.ts,
      proof: this.proofFor(candidate, 'approved_offline_isolated', commit.event.seq, commit.event.ts),
      barrier: stats(),
    }
  }

  // ---- online path ------------------------------------------------------------------------------

  async reserveOnline(
    candidate: OfflineCandidate,
    opts: { signal?: AbortSignal; deadline?: number } = {},
  ): Promise<SignedEvent<Reservation>> {
    if (!this.started) throw new MeshError('ERR_NOT_STARTED', 'mesh node not started')
    const deadline = opts.deadline ?? performance.now() + this.tapBudgetMs
    // Our own ack counts toward the quorum, so we check what every acker checks: a credential use
    // we hold (ours or one we acked) is not reserved again. Skipping this let an online approval
    // and a peer's offline commit of one nullifier meet only at this terminal, which said yes twice.
    if (this.exposure.nullifierHolder(toHex(candidate.nullifier)) !== undefined) {
      throw new MeshError('ERR_REFUSED', 'this credential use is already held: nullifier_seen')
    }
    const reach = await this.awaitReachability(deadline, opts.signal)
    if (reach === 'unknown' || !this.seqKnown)
      throw new MeshError(
        'ERR_REFUSED',
        'no quorum reachable yet and none known to be lost: quorum_unavailable',
      )
    // again after the wait, in the same synchronous step as the append: a decision that ran in the
    // meantime may hold this credential use now, and our own ack counts toward the quorum
    if (this.exposure.nullifierHolder(toHex(candidate.nullifier)) !== undefined) {
      throw new MeshError('ERR_REFUSED', 'this credential use is already held: nullifier_seen')
    }
    const { signed: res, durable } = this.appendReservation(candidate)
    const view = originView(this.policy, this.exposure, {
      cardKey: toHex(candidate.cardKey),
      currency: candidate.currency,
      ts: res.event.ts,
      id: res.idHex,
    })
    await durable
    // With a quorum reachable, an online payment is held by a quorum before central is asked:
    // otherwise one credential use authorised online here could be approved offline at a peer in
    // the same instant. A refusal or a timeout means it is not held: released, never sent to
    // central. Without a quorum (really isolated) central's nullifier dedup is the guard.
    if (reach === 'quorum') {
      const outcome = await this.collect(res, view, {
        timeoutMs: Math.min(this.policy.barrier.timeoutMs, deadline - performance.now()),
        online: true,
      })
      if (outcome.kind !== 'quorum') {
        const code =
          outcome.kind === 'refused'
            ? outcome.code
            : outcome.kind === 'timeout'
              ? 'barrier_timeout'
              : 'quorum_unavailable'
        const { signed: release } = this.appendOwn({ type: 'release', reservationId: res.id, reason: code })
        this.publish(release)
        throw new MeshError('ERR_REFUSED', `the reservation is not held by a quorum: ${code}`)
      }
    }
    return res
  }

  async completeOnline(
    reservation: SignedEvent<Reservation>,
    approved: boolean,
    reason = 'declined_online',
  ): Promise<{ event: SignedEvent; proof: Uint8Array }> {
    const mode: CommitMode = 'online'
    const { signed, durable } = approved
      ? this.appendOwn({ type: 'commit', reservation, mode, acks: [] })
      : this.appendOwn({ type: 'release', reservationId: reservation.id, reason })
    await durable
    this.publish(signed)
    const r = reservation.event
    const declineCode = isDeclineCode(reason) ? reason : 'issuer_declined'
    const proof = createProof(this.key, {
      nullifier: r.nullifier,
      amountMinor: r.amountMinor,
      currency: r.currency,
      decision: approved ? 'approved_online' : 'declined_online',
      declineCode: approved ? undefined : declineCode,
      ts: signed.event.ts,
      seq: signed.event.seq,
      policyVersion: this.policy.version,
    })
    return { event: signed, proof }
  }

  confirmed(marks: Record<string, number>): void {
    const mark = marks[this.publicKeyHex]
    if (mark === undefined || this.ownIsolated.length === 0) return
    const keep: typeof this.ownIsolated = []
    for (const c of this.ownIsolated) {
      if (c.seq <= mark) this.exposure.confirmIsolated(c.reservationId)
      else keep.push(c)
    }
    this.ownIsolated = keep
  }

  // ---- partitions -------------------------------------------------------------------------------

  async setPartitioned(partitioned: boolean): Promise<void> {
    this.partitioned = partitioned
    const node = this.libp2p
    if (partitioned && node !== undefined) {
      await Promise.all(
        node.getConnections().map((c) => c.close().catch(() => c.abort(new Error('partitioned')))),
      )
    }
    this.updateMode()
    if (!partitioned) this.redial()
  }
}

export function createMeshNode(init: MeshInit): MeshNode {
  return new NullmeshNode(init)
}
