import { noise } from '@chainsafe/libp2p-noise'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { type GossipSub, gossipsub, StrictNoSign } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import type { Ledger } from '@nullmesh/ledger'
import {
  type ExposureState,
  partitionExposureBound,
  type VenueBundle,
  type VenuePolicy,
} from '@nullmesh/policy'
import {
  decodeCertificate,
  eventIdHex,
  type Reservation,
  type SignedEvent,
  type SignedRevocation,
  sha256,
  toHex,
  verifyCertificate,
  verifyRevocation,
  withPreverified,
} from '@nullmesh/protocol'
import debug from 'debug'
import { createLibp2p, type Libp2p } from 'libp2p'
import { TypedEventEmitter, type TypedEventTarget } from 'main-event'
import { BarrierChannel, ONLINE_KIND } from './barrier-channel.js'
import { CatchupVerifier } from './catchup-verifier.js'
import {
  ANTI_ENTROPY_INTERVAL_MS,
  BARRIER_REQUEST_BURST,
  BARRIER_REQUESTS_PER_SECOND,
  CATCHUP_BATCH,
  CATCHUP_FRAME_BYTES,
  CATCHUP_MAX_EVENTS,
  CATCHUP_MAX_HELD_RANGES,
  CONNECTION_LIMITS,
  connectionLimits,
  DEFAULT_LISTEN,
  gossipScoring,
  gossipTopic,
  HELLO_ATTEMPTS,
  HELLO_TIMEOUT_MS,
  MAX_GOSSIP_BYTES,
  MDNS_INTERVAL_MS,
  mdnsServiceTag,
  protocolIds,
  YAMUX_LIMITS,
} from './constants.js'
import type { CatchupHave } from './core/catchup.js'
import { MeshCore } from './core/core.js'
import type { Pending } from './core/recovery.js'
import type {
  Effect,
  EventSource,
  MeshMode,
  OfflineCandidate,
  OfflineDecision,
  OpResult,
  WriteRecord,
} from './core/types.js'
import { countEffect, type MeshCounters, newCounters } from './counters.js'
import { createDialer, type Dialer, loopbackDialSource, ringNeighbours } from './dialer.js'
import { EventValidationError, MeshError } from './errors.js'
import { FramedStream } from './framing.js'
import { toGossipVerdict } from './gossip-adapter.js'
import { createLiveness, type Liveness } from './liveness.js'
import { loadFromIndexes } from './load-state.js'
import { Membership } from './membership.js'
import { preSharedKey } from './pnet.js'
import { RateLimiter } from './rate-limit.js'
import { type Rejoin, startRejoin } from './rejoin.js' // issue 15
import { validateCatchupRequest } from './validation.js'

export type { BarrierStats, MeshMode, OfflineCandidate, OfflineDecision } from './core/types.js'

const log = debug('nullmesh:mesh')
/** timings of on-demand dials, greetings, barrier rounds and decisions (tracing venue scale) */
const trace = debug('nullmesh:mesh:trace')

export interface MeshInit {
  bundle: VenueBundle
  key: import('@nullmesh/protocol').KeyPair
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
  /**
   * Connection limits (docs/protocol.md, "Connections"); defaults sized from the roster and the
   * group size (constants.ts, connectionLimits): `maxConnections` is libp2p's connection manager
   * limit, `targetConnections` what the node keeps open for gossip; group members are dialled on
   * demand. `idleMs`: an on-demand connection without barrier traffic this long may be closed.
   */
  connections?: { maxConnections?: number; targetConnections?: number; idleMs?: number }
  /** operator revocations known at start (signed documents; invalid ones are ignored) */
  revocations?: unknown[]
  /** reservations central abandoned (issue 17, item 5), known at start: released in the view */
  abandoned?: string[]
  /** worker threads verifying catch-up frames ahead of the core (default: cores − 1, ≥ 1; 0 inline) */
  catchupVerifyThreads?: number
  /**
   * Our own events that central kept, page by page (wire bytes), for a terminal that lost its disk:
   * it signs nothing until they are applied or the source failed (docs/protocol.md, "Lost disks").
   * Without it a lost disk is relearned from peers only.
   */
  refillOwn?: (opts: { signal: AbortSignal }) => AsyncIterable<Uint8Array[]>
}

export interface MeshStatus {
  peerId: string
  mode: MeshMode
  /** enrolled peers connected, verified and caught up */
  peers: number
  connections: number
  /** the connection limit (no full mesh above it) and the connections kept for gossip */
  maxConnections: number
  targetConnections: number
  roster: number
  /** acks a commit needs within its card's custodian group */
  quorum: number
  /** terminals in a card's custodian group: min(barrier.groupSize, roster) */
  groupSize: number
  /** cards whose custodian group had no reachable majority at their last decision (isolated rules) */
  groupsWithoutQuorum: number
  partitioned: boolean
  /** worst case all terminals could approve in isolated mode, per currency */
  exposureBounds: Record<string, number>
  /** the same for the policy's first currency */
  exposureBoundMinor: number
  events: number
  /**
   * false while a terminal without its own history (a new or lost disk) has not learned it from
   * enough peers: it signs nothing until then (docs/protocol.md, "Lost disks")
   */
  historyKnown: boolean
  /**
   * our own events taken back from central while relearning (a lost disk): 'awaiting' until
   * central answered or could not be asked; 'none' when no refill was needed or possible
   */
  centralRefill: 'none' | 'awaiting' | 'done'
}

export interface MeshEvents {
  mode: CustomEvent<{ mode: MeshMode }>
  peer: CustomEvent<{ peerId: string; id: string; state: 'ready' | 'disconnected' }>
  event: CustomEvent<{ event: SignedEvent; source: EventSource }>
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
  /**
   * Apply operator revocations (signed documents, verified here against the venue's operator key;
   * invalid ones are ignored): the revoked keys' events and acks signed at or after the effective
   * time stop counting, and their connections are closed. Returns the keys newly revoked.
   */
  revoke(docs: unknown[]): Promise<string[]>
  /** is this key revoked for what it signs at `at` (default now)? */
  isRevoked(publicKeyHex: string, at?: number): boolean
  /** central abandoned these reservations (a verified list): release their headroom here */
  abandoned(reservationIds: readonly string[]): number
  /** the policy's tap budget (ms): every decision returns within it */
  readonly tapBudgetMs: number
  /** cut this node off at the mesh layer (simulation of a partition) or heal it */
  setPartitioned(partitioned: boolean): Promise<void>
  /** pull what we miss from every ready peer now */
  catchUp(opts?: { signal?: AbortSignal }): Promise<{ received: number }>
  /** barrier messages, gossip publishes and fsync'd records since creation (a copy) */
  counters(): MeshCounters
}

/** A connected enrolled peer, as the transport sees it. */
interface PeerState {
  peerId: PeerId
  id: string
  keyHex: string
  channel?: BarrierChannel | undefined
  opening?: Promise<BarrierChannel | undefined> | undefined
}

type Services = {
  pubsub: GossipSub
  identify: ReturnType<ReturnType<typeof identify>>
  ping: unknown
  mdns?: unknown
}

/**
 * The libp2p + LevelDB adapter around the protocol core (./core): it carries the core's effects
 * out (barrier frames, gossip, ledger writes, timers, answers) and inputs in (frames, peers
 * verified and caught up or lost, writes made durable, timers fired). Hello, dialling, stream
 * framing and serving catch-up from the ledger are transport concerns and stay here.
 */
class NullmeshNode extends TypedEventEmitter<MeshEvents> implements MeshNode {
  readonly policy: VenuePolicy
  readonly publicKeyHex: string
  peerId = ''
  private readonly bundle: VenueBundle
  private readonly key: import('@nullmesh/protocol').KeyPair
  private readonly ledger: Ledger
  private readonly init: MeshInit
  private readonly now: () => number
  private readonly membership: Membership
  private readonly core: MeshCore
  private readonly protocols: ReturnType<typeof protocolIds>
  private readonly topic: string
  private libp2p?: Libp2p<Services> | undefined
  /** connected enrolled peers by libp2p peer id */
  private readonly peers = new Map<string, PeerState>()
  /** the same by public key hex */
  private readonly byKey = new Map<string, PeerState>()
  /** barrier streams awaiting the core's answer, by `${originKeyHex}:${requestId}` */
  private readonly answerTo = new Map<string, FramedStream>()
  private readonly ops = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: unknown) => void; signal?: AbortSignal | undefined }
  >()
  private nextOp = 1
  /** when each op started (tracing only) */
  private readonly opStarted = new Map<number, number>()
  private readonly coreTimers = new Map<number, NodeJS.Timeout>()
  /** the refill of our own events from central in progress (aborted by stop) */
  private refillAbort: AbortController | undefined
  /** own durable writes not yet answered: stop() waits for them before the caller closes the ledger */
  private readonly writing = new Set<Promise<unknown>>()
  private started = false
  /** catch-up signature verification on worker threads, from start to stop */
  private verifier: CatchupVerifier | undefined
  /**
   * Catch-up events on their way through the verify workers, by id → that frame's digests. After a
   * heal every peer's catch-up sends the same missed events at once; each is verified once.
   */
  private readonly verifying = new Map<string, Promise<string[]>>()
  private starting?: Promise<void> | undefined
  private timers: NodeJS.Timeout[] = []
  /** connection pings (liveness.ts), from start to stop */
  private liveness?: Liveness | undefined
  /** issue 12: connections without a full mesh (dialer.ts) */
  private dialer?: Dialer | undefined
  /** peers whose hello or initial catch-up is running (their connections are not idle) */
  private readonly greeting = new Set<string>()
  private readonly limits: { maxConnections: number; targetConnections: number }
  /** issue 17, item 6: barrier requests per peer per second */
  private readonly barrierRate = new RateLimiter(BARRIER_REQUESTS_PER_SECOND, BARRIER_REQUEST_BURST)
  /** issue 15: address book + interface watch (rejoin.ts) */
  private rejoin?: Rejoin | undefined
  private readonly counts = newCounters()

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
    const membership = this.membership
    membership.revoke(this.verifiedRevocations(init.revocations ?? []))
    this.core = new MeshCore({
      venueId: this.bundle.venueId,
      policy: this.policy,
      key: this.key,
      roster: {
        size: membership.size,
        // custodian groups are computed over the signed bundle's roster, as at central
        members: this.bundle.roster.map((r) => r.publicKeyHex),
        isEnrolled: (k, now) => membership.isEnrolled(k, now),
        isRevoked: (k, at) => membership.isRevoked(k, at),
      },
      clock: { wall: () => this.now(), mono: () => performance.now() },
      rng: Math.random,
      effects: (e) => this.effect(e),
      centralRefill: init.refillOwn !== undefined,
    })
    this.protocols = protocolIds(this.bundle.venueId)
    this.topic = gossipTopic(this.bundle.venueId)
    this.limits = connectionLimits(membership.size, this.core.groups.size, init.connections)
  }

  get exposure(): ExposureState {
    return this.core.view.exposure
  }

  get tapBudgetMs(): number {
    return this.core.tapBudgetMs
  }

  private get partitioned(): boolean {
    return this.core.reach.partitioned
  }

  // ---- effects out, inputs in ------------------------------------------------------------------

  /** Carry out one effect of the core. Never calls back into the core synchronously. */
  private effect(e: Effect): void {
    countEffect(this.counts, e)
    switch (e.type) {
      case 'send': {
        const msg = e.msg
        if (msg.t === 'ans') {
          const key = `${e.to}:${msg.rid}`
          const framed = this.answerTo.get(key)
          this.answerTo.delete(key)
          framed?.send([msg.rid, msg.ack]).catch((err: unknown) => log('barrier answer failed: %o', err))
          return
        }
        const peer = this.byKey.get(e.to)
        if (peer !== undefined) this.dialer?.touch(peer.peerId.toString())
        if (msg.t === 'push') {
          if (peer !== undefined) void this.channelFor(peer).then((ch) => ch?.notify(msg.bytes))
          return
        }
        const channel = peer === undefined ? Promise.resolve(undefined) : this.channelFor(peer)
        const t0 = performance.now()
        void channel
          .then((ch) => ch?.request(msg.rid, msg.bytes, msg.view, msg.online))
          .then((ack) => {
            if (trace.enabled)
              trace(
                'ack %s %s in %d ms',
                e.to.slice(0, 8),
                ack === undefined ? 'none' : 'ok',
                performance.now() - t0,
              )
            this.core.message(e.to, { t: 'ans', rid: msg.rid, ack: ack ?? null })
          })
        return
      }
      case 'dial': {
        // a custodian-group member we are not connected to (docs/protocol.md, "Connections")
        const peerId = this.membership.byKey.get(e.key)?.peerId
        const dialer = this.dialer
        if (peerId === undefined || dialer === undefined) {
          queueMicrotask(() => this.core.dialEnded(e.key, 'unreachable'))
          return
        }
        const t0 = performance.now()
        void dialer.dialOnDemand(peerId, { signal: AbortSignal.timeout(e.timeoutMs) }).then((result) => {
          if (trace.enabled)
            trace(
              'dial %s %s in %d ms (bound %d)',
              e.key.slice(0, 8),
              result,
              performance.now() - t0,
              e.timeoutMs,
            )
          this.core.dialEnded(e.key, result)
        })
        return
      }
      case 'gossip':
        this.libp2p?.services.pubsub
          .publish(this.topic, e.bytes)
          .catch((err: unknown) => log('publish failed: %o', err))
        return
      case 'write':
        this.write(e.id, e.records, e.sync, e.own, e.relearning, e.learnedThrough)
        return
      case 'timer': {
        const t = setTimeout(() => {
          this.coreTimers.delete(e.id)
          this.core.timer(e.id)
        }, e.afterMs)
        t.unref()
        this.coreTimers.set(e.id, t)
        return
      }
      case 'done': {
        const op = this.ops.get(e.op)
        if (op === undefined) return
        this.ops.delete(e.op)
        if (trace.enabled) {
          const r = e.result as { ok: boolean; value?: { decision?: string; declineCode?: string } }
          const b = (r.value as { barrier?: { acks: number; attempts: number } } | undefined)?.barrier
          trace(
            'op %d done in %d ms: %s (acks %d, attempts %d, connections %d)',
            e.op,
            performance.now() - (this.opStarted.get(e.op) ?? 0),
            r.ok ? `${r.value?.decision ?? 'ok'} ${r.value?.declineCode ?? ''}` : 'error',
            b?.acks ?? -1,
            b?.attempts ?? -1,
            this.libp2p?.getConnections().length ?? 0,
          )
        }
        this.opStarted.delete(e.op)
        settle(op, e.result)
        return
      }
      case 'mode':
        log('mode %s (%d ready peers, quorum %d)', e.mode, this.core.reach.ready().length, this.core.quorum)
        queueMicrotask(() => this.emit('mode', { mode: e.mode }))
        return
      case 'peer': {
        const member = this.membership.byKey.get(e.key)
        if (member !== undefined)
          queueMicrotask(() => this.emit('peer', { peerId: member.peerId, id: member.id, state: e.state }))
        return
      }
      case 'refill':
        this.refill()
        return
      case 'event':
        queueMicrotask(() => this.emit('event', { event: e.event, source: e.source }))
        return
      case 'log':
        log('%s', e.message)
        return
    }
  }

  /** our own events back from central after a lost disk (effect `refill`; recovery.ts) */
  private refill(): void {
    const source = this.init.refillOwn
    if (source === undefined) {
      queueMicrotask(() => this.core.refillEnded(false))
      return
    }
    const ac = new AbortController()
    this.refillAbort = ac
    void (async () => {
      let events = 0
      try {
        for await (const page of source({ signal: ac.signal })) {
          if (ac.signal.aborted) return
          events += this.core.refillBatch(page)
        }
        if (ac.signal.aborted) return
        log('took %d own events back from central', events)
        this.core.refillEnded(true)
      } catch (err: unknown) {
        if (ac.signal.aborted) return
        log('own events from central: %s (learning from peers only)', (err as Error).message)
        this.core.refillEnded(false)
      } finally {
        if (this.refillAbort === ac) this.refillAbort = undefined
      }
    })()
  }

  /**
   * Sync writes go to the ledger at once, not one after another: concurrent reservations, acks
   * and commits share one fsync'd batch there (group commit), and each is answered durable only
   * once its batch is. Own events still become durable in seq order, so our log has no gaps even
   * if we crash mid-write: they all take our origin's lock first, in call order, and the ledger
   * writes batches in submission order. The relearning mark (recovery.ts) is ordered by the
   * ledger after every earlier write.
   */
  private write(
    id: number,
    records: WriteRecord[],
    sync: boolean,
    own: boolean,
    relearning?: boolean,
    learnedThrough?: number,
  ): void {
    if (!sync) {
      const p =
        records.length === 1
          ? this.ledger.recordEvent(records[0]!.event, { sync: false })
          : this.ledger.recordEvents(
              records.map((r) => r.event),
              { sync: false },
            )
      p.catch((err: unknown) => log('record failed: %o', err))
      return
    }
    const durable: Promise<unknown> =
      relearning !== undefined
        ? this.ledger.setRelearning(relearning, {
            sync: true,
            ...(learnedThrough === undefined ? {} : { learnedThrough }),
          })
        : Promise.all(
            records.map((r) =>
              this.ledger.recordEvent(r.event, {
                sync: true,
                held: r.held,
                ...(r.ackGiven === undefined ? {} : { ackGiven: r.ackGiven }),
              }),
            ),
          )
    if (own) {
      this.writing.add(durable)
      const forget = () => this.writing.delete(durable)
      durable.then(forget, forget)
    }
    durable.then(
      () => this.core.durable(id, true),
      (err: unknown) => {
        log('durable write failed: %o', err)
        this.core.durable(id, false)
      },
    )
  }

  private op<T>(start: (op: number) => void, signal?: AbortSignal): Promise<T> {
    const op = this.nextOp++
    if (trace.enabled) this.opStarted.set(op, performance.now())
    return new Promise<T>((resolve, reject) => {
      this.ops.set(op, { resolve: resolve as (v: unknown) => void, reject, signal })
      if (signal !== undefined) {
        if (signal.aborted) this.core.abort(op)
        else signal.addEventListener('abort', () => this.core.abort(op), { once: true })
      }
      start(op)
    })
  }

  private emit<K extends keyof MeshEvents>(type: K, detail: MeshEvents[K]['detail']): void {
    this.safeDispatchEvent(type, { detail })
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async start(opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.started) return
    this.starting ??= this.doStart(opts)
    await this.starting
  }

  private async doStart(opts: { signal?: AbortSignal }): Promise<void> {
    this.verifier ??= new CatchupVerifier(
      this.init.catchupVerifyThreads === undefined ? {} : { threads: this.init.catchupVerifyThreads },
    )
    if (!this.core.started) {
      await this.loadState(opts)
      if (this.init.abandoned !== undefined) this.core.abandoned(this.init.abandoned)
      const pending: Pending[] = []
      for (const reservation of await this.ledger.pendingReservations(this.publicKeyHex)) {
        const keep = this.init.keepPending !== undefined && (await this.init.keepPending(reservation.idHex))
        pending.push({ reservation: reservation as SignedEvent<Reservation>, keepPending: keep })
      }
      await this.op<number>((op) => this.core.start(op, pending))
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
        // ---- issue 17, item 6: peer scoring punishes rejected messages (constants.ts) ----
        ...gossipScoring(this.topic),
      }),
    }
    if (mdnsOpt) {
      services.mdns = mdns({
        interval: typeof mdnsOpt === 'object' ? (mdnsOpt.interval ?? MDNS_INTERVAL_MS) : MDNS_INTERVAL_MS,
        serviceTag: mdnsServiceTag(this.bundle.venueId),
      })
    }
    const listen = this.init.listen ?? DEFAULT_LISTEN
    // a terminal on its own loopback address dials from it: one host per terminal (dialer.ts)
    const source = loopbackDialSource(listen)
    const node = (await createLibp2p({
      privateKey,
      addresses: { listen },
      transports: [tcp(source === undefined ? {} : { dialOpts: { localAddress: source } as never })],
      connectionEncrypters: [noise()],
      // ---- issue 17, item 6: resource limits (constants.ts) ----
      // Yamux's own keepalive (a ping every 30 s, never acted on) is off: liveness.ts pings instead
      streamMuxers: [yamux({ ...YAMUX_LIMITS, enableKeepAlive: false })],
      // issue 12: no full mesh — the limit is sized from the roster and group size. libp2p refuses
      // inbound connections at its limit before any gater runs: one above ours lets an inbound
      // connection at our limit reach the dialer (denyInboundConnection), which frees an idle
      // slot for it or refuses it — our limit holds either way (dialer.ts)
      connectionManager: { ...CONNECTION_LIMITS, maxConnections: this.limits.maxConnections + 1 },
      // ---- end of limits ----
      // the venue pre-shared key: outsiders cannot even complete a handshake
      connectionProtector: preSharedKey({ psk: this.bundle.psk }),
      // liveness.ts pings every connection with a Yamux ping frame instead of a new stream per
      // ping (same interval and timeout bounds): libp2p's monitor was most of an idle terminal's CPU
      connectionMonitor: { enabled: false },
      connectionGater: {
        denyDialPeer: async () => this.partitioned,
        // our own dials in flight hold slots under the limit too (dialer.ts)
        denyInboundConnection: async () =>
          this.partitioned || (this.dialer !== undefined && !this.dialer.acceptInbound()),
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
    pubsub.topicValidators.set(this.topic, (_peer, msg) => toGossipVerdict(this.core.receive(msg.data)))
    pubsub.subscribe(this.topic)

    node.addEventListener('peer:connect', (evt) => this.onConnect(evt.detail))
    node.addEventListener('peer:disconnect', (evt) => this.onDisconnect(evt.detail))
    if (services.mdns !== undefined) {
      const discovery = (node.services as Record<string, unknown>).mdns as EventTarget
      discovery.addEventListener('peer', (evt) => {
        const info = (
          evt as CustomEvent<{ id: PeerId; multiaddrs: import('@multiformats/multiaddr').Multiaddr[] }>
        ).detail
        // libp2p 3 never redials by itself: the dialer dials a sighting while under its target
        void this.dialer?.discovered(info.id.toString(), info.multiaddrs)
      })
    }
    await node.start()
    // issue 12: gossip connections up to the target, group members on demand (dialer.ts)
    const dialer = createDialer({
      libp2p: node as never,
      isMember: (id) => this.membership.memberForPeer(id, this.now()) !== undefined,
      ...this.limits,
      peers: this.init.discovery?.peers ?? [],
      neighbours: ringNeighbours(
        node.peerId.toString(),
        this.bundle.roster.map((r) => this.membership.byKey.get(r.publicKeyHex)?.peerId),
      ),
      paused: () => this.partitioned,
      busy: (id) => this.greeting.has(id),
      // while it learns its own history (a fresh ledger), one custodian group's worth of on-demand
      // dials at once (dialer.ts); a decision's group dials are bounded by the group already
      onDemandAtOnce: () =>
        this.core.view.seqKnown ? Number.POSITIVE_INFINITY : Math.max(1, this.core.groups.size),
      ...(this.init.connections?.idleMs === undefined ? {} : { idleMs: this.init.connections.idleMs }),
      evictIdleMs: this.policy.barrier.timeoutMs,
    })
    this.dialer = dialer
    // ── issue 15 hook (rejoin.ts): persisted address book redialled, mDNS restarted on a new interface
    this.rejoin = await startRejoin({
      libp2p: node as never,
      ledger: this.ledger,
      isMember: (id) => this.membership.memberForPeer(id, this.now()) !== undefined,
      paused: () => this.partitioned,
      mdns: (node.services as Record<string, unknown>).mdns,
      dial: (id, addrs) => dialer.discovered(id, addrs),
    })
    // ── end issue 15 hook
    this.started = true
    dialer.start()
    this.liveness = createLiveness({ connections: () => node.getConnections() })
    this.liveness.start()
    this.timers.push(setInterval(() => this.antiEntropy(), ANTI_ENTROPY_INTERVAL_MS))
    for (const t of this.timers) t.unref()
    this.core.updateMode()
    log(
      'started %s as %s, roster %d, quorum %d',
      this.peerId,
      this.bundle.venueId,
      this.membership.size,
      this.core.quorum,
    )
  }

  async stop(): Promise<void> {
    if (this.starting !== undefined) await this.starting.catch(() => {})
    if (!this.started) return
    this.started = false
    this.starting = undefined
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    this.refillAbort?.abort()
    this.liveness?.stop()
    this.liveness = undefined
    await this.rejoin?.stop() // issue 15 hook: before the caller closes the ledger
    this.rejoin = undefined
    await this.dialer?.stop()
    this.dialer = undefined
    for (const p of this.peers.values()) p.channel?.failAll()
    this.peers.clear()
    this.greeting.clear()
    this.byKey.clear()
    this.core.disconnectAll()
    const node = this.libp2p
    this.libp2p = undefined
    await node?.stop()
    await this.verifier?.stop()
    this.verifier = undefined
    // our own appends must be durable before the caller closes the ledger
    await Promise.allSettled([...this.writing])
    for (const t of this.coreTimers.values()) clearTimeout(t)
    this.coreTimers.clear()
    log('stopped %s', this.peerId)
  }

  counters(): MeshCounters {
    return { ...this.counts }
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
      mode: this.core.reach.mode,
      peers: this.core.reach.ready().length,
      connections: this.peers.size,
      ...this.limits,
      roster: this.membership.size,
      quorum: this.core.quorum,
      groupSize: this.core.groups.size,
      groupsWithoutQuorum: this.core.noQuorumGroups.size,
      partitioned: this.partitioned,
      exposureBounds,
      exposureBoundMinor: currencies[0] === undefined ? 0 : (exposureBounds[currencies[0]] ?? 0),
      events: this.core.view.known.size,
      historyKnown: this.core.view.seqKnown,
      centralRefill: this.core.refill,
    }
  }

  /** rebuild the core's view from the ledger's indexes (load-state.ts, core/indexed.ts) */
  private async loadState(opts: { signal?: AbortSignal }): Promise<void> {
    const { events, reservations } = await loadFromIndexes(this.core, this.ledger, opts)
    log('rebuilt state from the indexes of %d events and %d reservations', events, reservations)
  }

  // ---- peers -------------------------------------------------------------------------------

  private onConnect(peerId: PeerId): void {
    const id = peerId.toString()
    const member = this.membership.memberForPeer(id, this.now())
    if (member === undefined || this.peers.has(id)) return
    const state: PeerState = { peerId, id: member.id, keyHex: member.publicKeyHex }
    this.peers.set(id, state)
    this.byKey.set(member.publicKeyHex, state)
    this.core.peerConnected(member.publicKeyHex)
    this.greet(state)
  }

  private dropPeer(state: PeerState): void {
    this.greeting.delete(state.peerId.toString())
    state.channel?.failAll()
    this.peers.delete(state.peerId.toString())
    if (this.byKey.get(state.keyHex) === state) this.byKey.delete(state.keyHex)
    this.core.peerLost(state.keyHex)
  }

  /** hello (and the catch-up behind it); a failure is retried, then the connection is dropped so
   * that a redial starts clean — a peer must never stay connected but unverified */
  private greet(state: PeerState, attempt = 1): void {
    const id = state.peerId.toString()
    // a connection being greeted is not idle: the dialer never closes it for another (dialer.ts)
    this.greeting.add(id)
    this.sayHello(state).then(
      () => {
        this.greeting.delete(id)
        // just greeted: its first use (an on-demand barrier request) is about to come
        this.dialer?.touch(id)
      },
      (err: unknown) => {
        log('hello to %s failed (attempt %d): %s', state.id, attempt, (err as Error).message)
        if (!this.started || this.peers.get(id) !== state) {
          this.greeting.delete(id)
          return
        }
        if (attempt < HELLO_ATTEMPTS) {
          setTimeout(() => this.greet(state, attempt + 1), 200 * attempt).unref()
        } else {
          this.greeting.delete(id)
          this.dropPeer(state)
          this.libp2p?.hangUp(state.peerId).catch(() => {})
        }
      },
    )
  }

  private onDisconnect(peerId: PeerId): void {
    const id = peerId.toString()
    const state = this.peers.get(id)
    if (state === undefined) return
    // the connection manager may still hold another connection to this peer
    if (this.libp2p?.getConnections(peerId).length) return
    this.dropPeer(state)
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
    const t0 = performance.now()
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
    this.core.peerVerified(peer.keyHex)
    // a peer counts toward the quorum only once we hold what it holds: a failed catch-up is retried
    // by greet() and, after HELLO_ATTEMPTS, the connection is dropped — never counted as caught up
    const t1 = performance.now()
    const got = await this.catchUpFrom(peer, true)
    if (trace.enabled)
      trace(
        'greeted %s: hello %d ms, catch-up %d ms (%s events)',
        peer.id,
        t1 - t0,
        performance.now() - t1,
        got,
      )
    if (got === undefined) throw new Error('catch-up failed')
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

  /**
   * Send our per-origin high-water marks and the seqs we hold past them; receive what we miss,
   * which the core validates and applies. `initial`: the catch-up that follows a (re)connection
   * (acks wait for these).
   * Resolves with the number of new events, or undefined if it failed.
   */
  private async catchUpFrom(peer: PeerState, initial = false): Promise<number | undefined> {
    this.core.catchupStarted(peer.keyHex, initial)
    let received: number | undefined = 0
    try {
      const node = this.libp2p
      if (node === undefined) return 0
      const have = await this.ledger.catchupSummary(CATCHUP_MAX_HELD_RANGES)
      const stream = await node.dialProtocol(peer.peerId, this.protocols.catchup, {
        signal: AbortSignal.timeout(HELLO_TIMEOUT_MS),
      })
      const verifier = this.verifier
      await new Promise<void>((resolve, reject) => {
        // frames are applied in order; each one's signatures are verified on a worker as it
        // arrives (catchup-verifier.ts), while the frame before is validated and applied here
        let applied: Promise<void> = Promise.resolve()
        let failed = false
        const fail = (err: unknown): void => {
          failed = true
          reject(err)
        }
        const framed = new FramedStream(
          stream,
          (frame) => {
            if (!Array.isArray(frame) || failed) return
            if (frame.length === 0) {
              applied.then(resolve, fail)
              void framed.close()
              return
            }
            const bytes = frame.filter((b): b is Uint8Array => b instanceof Uint8Array)
            const { digests, forget } = this.preverify(verifier, bytes)
            applied = applied.then(async () => {
              const trusted = await digests
              // one event-loop turn per frame: a terminal catching up a long partition serves its
              // payment requests between frames, not after the whole catch-up (the digests may have
              // resolved long ago, and microtasks alone never yield to I/O)
              await new Promise<void>((r) => setImmediate(r))
              if (failed) return
              received =
                (received ?? 0) + withPreverified(trusted, () => this.core.catchupBatch(peer.keyHex, bytes))
            })
            applied.then(forget, forget)
          },
          (err) => (err === undefined ? applied.then(resolve, fail) : fail(err)),
        )
        // [marks, held]: a peer running the code before held reads frame[0] only (and answers
        // everything above the marks, as before)
        framed.send([Object.entries(have.marks), Object.entries(have.held)]).catch(reject)
      })
      if (received > 0) log('caught up %d events from %s', received, peer.id)
    } catch (err: unknown) {
      log('catch-up failed: %s', (err as Error).message)
      received = undefined
    } finally {
      this.core.catchupEnded(peer.keyHex, received !== undefined, initial)
    }
    return received
  }

  /**
   * A catch-up frame's signatures, verified on the workers ahead of the core: events already known
   * are left out (the core ignores them before any check), and so are events another catch-up's
   * frame has sent to the workers already — this frame waits for that frame's digests instead.
   * `forget` clears this frame's entries once it is applied.
   */
  private preverify(
    verifier: CatchupVerifier | undefined,
    bytes: Uint8Array[],
  ): { digests: Promise<string[]>; forget: () => void } {
    if (verifier === undefined) return { digests: Promise.resolve([]), forget: () => {} }
    const fresh: Uint8Array[] = []
    const ids: string[] = []
    const others = new Set<Promise<string[]>>()
    for (const b of bytes) {
      const id = eventIdHex(b)
      if (this.core.view.known.has(id)) continue
      const inflight = this.verifying.get(id)
      if (inflight !== undefined) others.add(inflight)
      else {
        fresh.push(b)
        ids.push(id)
      }
    }
    this.counts.catchupDuplicatesSkipped += bytes.length - fresh.length
    const own = verifier.digests(fresh)
    void own.then((d) => {
      this.counts.catchupSignaturesOnWorkers += d.length
    })
    for (const id of ids) this.verifying.set(id, own)
    const digests =
      others.size === 0
        ? own
        : Promise.all([own, ...others].map((p) => p.catch(() => [] as string[]))).then((all) => all.flat())
    const forget = (): void => {
      for (const id of ids) if (this.verifying.get(id) === own) this.verifying.delete(id)
    }
    return { digests, forget }
  }

  private handleCatchup(stream: Stream, conn: Connection): void {
    if (this.membership.memberForPeer(conn.remotePeer.toString(), this.now()) === undefined) {
      stream.abort(new Error('not enrolled'))
      return
    }
    const framed = new FramedStream(
      stream,
      (frame) => {
        let have: CatchupHave
        try {
          have = validateCatchupRequest(frame, CATCHUP_MAX_HELD_RANGES)
        } catch (err: unknown) {
          log('catch-up request rejected: %s', (err as Error).message)
          framed.abort(err as Error)
          return
        }
        void (async () => {
          let batch: Uint8Array[] = []
          let bytes = 0
          const opts = { limit: CATCHUP_MAX_EVENTS, held: have.held }
          for await (const e of this.ledger.eventsAfter(have.marks, opts)) {
            this.counts.catchupEventsServed++
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
    for (const key of this.core.reach.ready()) {
      const peer = this.byKey.get(key)
      if (peer !== undefined) received += (await this.catchUpFrom(peer)) ?? 0
    }
    return { received }
  }

  private antiEntropy(): void {
    const key = this.core.antiEntropyPeer()
    const peer = key === undefined ? undefined : this.byKey.get(key)
    if (peer !== undefined) void this.catchUpFrom(peer)
  }

  // ---- barrier -------------------------------------------------------------------------------------

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
          const err = this.core.receive(frame[1])
          if (err instanceof EventValidationError && err.action === 'REJECT') framed.abort(err)
          return
        }
        const member = this.membership.memberForPeer(remote, this.now())
        this.dialer?.touch(remote)
        if (member === undefined) {
          framed.send([id, null]).catch(() => {})
          return
        }
        // issue 17, item 6: a peer flooding barrier requests loses its stream
        if (!this.barrierRate.take(remote)) return framed.abort(new Error('barrier request rate exceeded'))
        const view = Array.isArray(frame[2])
          ? frame[2].filter((v): v is string => typeof v === 'string').slice(0, 4096)
          : []
        this.answerTo.set(`${member.publicKeyHex}:${id}`, framed)
        this.core.message(member.publicKeyHex, {
          t: 'req',
          rid: id,
          bytes: frame[1],
          view,
          online: frame[3] === ONLINE_KIND,
        })
      },
      () => {},
    )
  }

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

  // ---- decisions (run by the core) ----------------------------------------------------------------

  async authorize(
    candidate: OfflineCandidate,
    opts: { signal?: AbortSignal; reservation?: SignedEvent<Reservation>; deadline?: number } = {},
  ): Promise<OfflineDecision> {
    if (!this.started) throw new MeshError('ERR_NOT_STARTED', 'mesh node not started')
    opts.signal?.throwIfAborted()
    return await this.op<OfflineDecision>(
      (op) => this.core.authorize(op, candidate, { reservation: opts.reservation, deadline: opts.deadline }),
      opts.signal,
    )
  }

  async reserveOnline(
    candidate: OfflineCandidate,
    opts: { signal?: AbortSignal; deadline?: number } = {},
  ): Promise<SignedEvent<Reservation>> {
    if (!this.started) throw new MeshError('ERR_NOT_STARTED', 'mesh node not started')
    return await this.op<SignedEvent<Reservation>>(
      (op) => this.core.reserveOnline(op, candidate, { deadline: opts.deadline }),
      opts.signal,
    )
  }

  async completeOnline(
    reservation: SignedEvent<Reservation>,
    approved: boolean,
    reason = 'declined_online',
  ): Promise<{ event: SignedEvent; proof: Uint8Array }> {
    return await this.op((op) => this.core.completeOnline(op, reservation, approved, reason))
  }

  confirmed(marks: Record<string, number>): void {
    this.core.confirmed(marks)
  }

  private verifiedRevocations(docs: unknown[]): SignedRevocation[] {
    const verified: SignedRevocation[] = []
    for (const d of docs) {
      const v = verifyRevocation(d, {
        operatorPublicKey: this.bundle.operatorPublicKey,
        venueId: this.bundle.venueId,
      })
      if (v.ok) verified.push(v.value)
      else log('revocation ignored: %s', v.error.message)
    }
    return verified
  }

  async revoke(docs: unknown[]): Promise<string[]> {
    const changed = this.membership.revoke(this.verifiedRevocations(docs))
    if (changed.length > 0)
      log(
        'revoked %o',
        changed.map((k) => k.slice(0, 16)),
      )
    // a revoked peer may not keep a connection: close it now (the gater refuses it from now on)
    const now = this.now()
    const node = this.libp2p
    const drop = changed.filter((k) => this.membership.isRevoked(k, now))
    if (node !== undefined && drop.length > 0) {
      const peers = new Set(drop.map((k) => this.membership.byKey.get(k)?.peerId))
      await Promise.all(
        node
          .getConnections()
          .filter((c) => peers.has(c.remotePeer.toString()))
          .map((c) => c.close().catch(() => c.abort(new Error('revoked')))),
      )
    }
    return changed
  }

  isRevoked(publicKeyHex: string, at: number = this.now()): boolean {
    return this.membership.isRevoked(publicKeyHex, at)
  }

  abandoned(reservationIds: readonly string[]): number {
    return this.core.abandoned(reservationIds)
  }

  // ---- partitions -------------------------------------------------------------------------------

  async setPartitioned(partitioned: boolean): Promise<void> {
    this.core.setPartitioned(partitioned)
    const node = this.libp2p
    if (partitioned && node !== undefined) {
      await Promise.all(
        node.getConnections().map((c) => c.close().catch(() => c.abort(new Error('partitioned')))),
      )
    }
    if (!partitioned) this.dialer?.maintain()
  }
}

function settle(
  op: { resolve: (v: unknown) => void; reject: (e: unknown) => void; signal?: AbortSignal | undefined },
  result: OpResult,
): void {
  if (result.ok) op.resolve(result.value)
  else if (result.code === 'ERR_REFUSED') op.reject(new MeshError('ERR_REFUSED', result.message))
  else if (result.code === 'ERR_ABORTED') op.reject(op.signal?.reason ?? new Error('aborted'))
  else op.reject(new Error(result.message))
}

export function createMeshNode(init: MeshInit): MeshNode {
  return new NullmeshNode(init)
}
