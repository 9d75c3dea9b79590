/** Protocol ids are venue-scoped so that two venues on one LAN never speak to each other by mistake. */
export const protocolIds = (venue: string) => ({
  hello: `/nullmesh/${venue}/hello/1.0.0`,
  barrier: `/nullmesh/${venue}/barrier/1.0.0`,
  catchup: `/nullmesh/${venue}/catchup/1.0.0`,
})
export const gossipTopic = (venue: string) => `/nullmesh/${venue}/events/1`
/** mDNS service tag: venue specific, so strangers' mDNS answers are never dialled. */
export const mdnsServiceTag = (venue: string) =>
  `_nullmesh-${venue.toLowerCase().replace(/[^a-z0-9-]/g, '-')}._udp.local`

export const DEFAULT_LISTEN = ['/ip4/127.0.0.1/tcp/0']
/** mDNS query interval: ~1 s so that a returning terminal is found within a second or two. */
export const MDNS_INTERVAL_MS = 1000
/**
 * Connection liveness (liveness.ts): a connection from which nothing has arrived for this long is
 * pinged, so a silent peer is aborted at most this plus the ping timeout after its last bytes (5 s).
 */
export const PING_INTERVAL_MS = 2000
/** how often liveness.ts looks for quiet connections (a quiet one is pinged within this of PING_INTERVAL_MS) */
export const LIVENESS_TICK_MS = 250
/**
 * Ping timeout bounds. libp2p's adaptive timeout starts at 5 s and doubles after each failure, so
 * every cut of one link took longer to notice (5 s, 12 s, 19 s, > 30 s in the heal benchmark). On a
 * LAN a ping answers in well under a millisecond: 1.5–3 s is generous and keeps detection bounded.
 */
export const PING_TIMEOUT_MIN_MS = 1500
export const PING_TIMEOUT_MAX_MS = 3000
/** How often static peers and known enrolled peers we are not connected to are redialled. */
export const REDIAL_INTERVAL_MS = 1000
/** Periodic anti-entropy with one random peer, repairing anything gossip dropped. */
export const ANTI_ENTROPY_INTERVAL_MS = 5000
/** Events per catch-up response frame. */
export const CATCHUP_BATCH = 256
/** ...and at most this many bytes per frame (well under MAX_FRAME_BYTES). */
export const CATCHUP_FRAME_BYTES = 48 * 1024
/** Upper bound on a catch-up answer; a peer that needs more asks again. */
export const CATCHUP_MAX_EVENTS = 200_000
/**
 * Ranges of seqs held past a gap that one catch-up request states, over all origins (≤ ~20 KiB of
 * CBOR, well under MAX_FRAME_BYTES): ranges left out are only resent, and a validating peer refuses
 * a request with more.
 */
export const CATCHUP_MAX_HELD_RANGES = 1024
export const HELLO_TIMEOUT_MS = 3000
/** hello attempts before a connection that cannot be verified is dropped (and redialled) */
export const HELLO_ATTEMPTS = 3
export const DIAL_TIMEOUT_MS = 2000
/** Max bytes of one frame on our request/response protocols. */
export const MAX_FRAME_BYTES = 64 * 1024
/** Max bytes buffered by one stream's frame decoder. */
export const MAX_BUFFER_BYTES = 8 * 1024 * 1024
/** Size limit of one gossip message: an event can never be larger. */
export const MAX_GOSSIP_BYTES = 16 * 1024
/**
 * After the quorum is lost (or at start), how long a node treats missing peers as possibly
 * reachable before it takes the isolated path: long enough for a dial, a hello and a catch-up on
 * a LAN, short enough to leave most of a tap budget (capped at ¾ of it).
 */
export const ISOLATION_PROBE_MS = 1500
/**
 * Margin (ms), on top of twice the recent fsync latency, that a decision keeps before its tap
 * deadline to commit (or to let the terminal record a decline): the barrier ends earlier by that much.
 */
export const FINISH_MARGIN_MS = 10
/** the finishing reserve also covers the slowest of this many recent durable writes (a disk that stalls now and then) */
export const RECENT_DURABLE_WINDOW = 32
/** how often a decision waiting for the quorum re-checks it */
export const REACHABILITY_POLL_MS = 20

/*
 * Resource limits for a LAN of enrolled peers (issue 17, item 6). A venue has at most 127
 * terminals (a majority certificate carries at most 64 acks), each normally holding one
 * connection to every other; everything below is generous for that and small for a flood.
 */
/** open connections, both directions: the largest roster twice over, plus slack */
export const MAX_CONNECTIONS = 300
/** inbound connections still upgrading (PSK, Noise, muxer) at once */
export const MAX_INCOMING_PENDING_CONNECTIONS = 16
/** inbound connections a second from one host before further ones are refused */
export const INBOUND_CONNECTIONS_PER_HOST_PER_SECOND = 5
/** streams one peer may have open on one connection (yamux), all protocols together */
export const MAX_STREAMS_PER_CONNECTION = 64
/** barrier requests (reservations to ack) one peer may send a second, and its burst */
export const BARRIER_REQUESTS_PER_SECOND = 50
export const BARRIER_REQUEST_BURST = 200
/**
 * gossipsub peer scoring: a rejected message (a [REJECT] verdict) costs its sender
 * INVALID_MESSAGE_WEIGHT × (invalid messages)², decaying by INVALID_MESSAGE_DECAY a second. Three
 * in quick succession put a peer below the graylist threshold (−80: its messages are ignored);
 * an honest peer that relayed one bad event recovers within seconds. No penalty for being quiet
 * (a venue at night delivers nothing) and none for sharing an IP (identity is the enrollment).
 */
export const INVALID_MESSAGE_WEIGHT = -10
export const INVALID_MESSAGE_DECAY = 0.5
export const gossipScoring = (topic: string) => ({
  scoreParams: {
    IPColocationFactorWeight: 0,
    topics: {
      [topic]: {
        topicWeight: 1,
        timeInMeshWeight: 0,
        timeInMeshQuantum: 1000,
        timeInMeshCap: 3600,
        firstMessageDeliveriesWeight: 0,
        firstMessageDeliveriesDecay: 0.5,
        firstMessageDeliveriesCap: 100,
        meshMessageDeliveriesWeight: 0,
        meshMessageDeliveriesDecay: 0.5,
        meshMessageDeliveriesCap: 100,
        meshMessageDeliveriesThreshold: 1,
        meshMessageDeliveriesWindow: 10,
        meshMessageDeliveriesActivation: 5000,
        meshFailurePenaltyWeight: 0,
        meshFailurePenaltyDecay: 0.5,
        invalidMessageDeliveriesWeight: INVALID_MESSAGE_WEIGHT,
        invalidMessageDeliveriesDecay: INVALID_MESSAGE_DECAY,
      },
    },
  },
  scoreThresholds: { gossipThreshold: -10, publishThreshold: -50, graylistThreshold: -80 },
})
/** libp2p's connection manager, from the limits above (maxConnections: see connectionLimits) */
export const CONNECTION_LIMITS = {
  maxConnections: MAX_CONNECTIONS,
  maxIncomingPendingConnections: MAX_INCOMING_PENDING_CONNECTIONS,
  inboundConnectionThreshold: INBOUND_CONNECTIONS_PER_HOST_PER_SECOND,
}

/*
 * Connections (issue 12, docs/protocol.md "Connections"): no full mesh. A terminal keeps a few
 * connections for gossip (TARGET_CONNECTIONS) and dials a card's custodian-group members on
 * demand; idle connections above the target are closed so that others can still reach it.
 */
/** connections kept open for the gossip mesh (gossipsub's D is 6; a few more for its fan-out) */
export const TARGET_CONNECTIONS = 8
/**
 * Room above the target: on-demand connections to the members of the groups in use, ours and the
 * ones dialled into us. Two groups' worth: the origin's and the ones it serves as a member.
 */
export const ON_DEMAND_GROUPS = 2
/** an on-demand connection idle this long (no barrier traffic) may be closed to stay under the limit */
export const CONNECTION_IDLE_MS = 10_000
/** the dialer's maintenance tick: dial toward the target, close idle connections above it */
export const CONNECTION_TICK_MS = 1000
/**
 * Bound of one on-demand dial of a group member (capped further by what is left of the tap
 * budget's wait): a LAN connect takes milliseconds; a peer that has not answered by then is
 * unreachable for this decision.
 */
export const ON_DEMAND_DIAL_TIMEOUT_MS = 1000
/** how long a failed on-demand dial is believed before that member is dialled again */
export const DIAL_RETRY_MS = 2000
/** ...and a refused one (a live peer, or ourselves, short of a free slot: one frees up soon) */
export const REFUSED_DIAL_RETRY_MS = 250

/**
 * The connection manager's limit and the dialer's target for a roster of `roster` terminals and
 * custodian groups of `groupSize`: a small venue keeps a full mesh (the limit exceeds its roster),
 * a large one keeps TARGET_CONNECTIONS plus room for ON_DEMAND_GROUPS groups. Init may override both.
 */
export function connectionLimits(
  roster: number,
  groupSize: number,
  override: { maxConnections?: number | undefined; targetConnections?: number | undefined } = {},
): { maxConnections: number; targetConnections: number } {
  const others = Math.max(1, roster - 1)
  const max = Math.max(
    1,
    override.maxConnections ??
      Math.min(MAX_CONNECTIONS, TARGET_CONNECTIONS + ON_DEMAND_GROUPS * groupSize, others + 4),
  )
  // the target leaves room under the limit for on-demand connections (at least one group's quorum)
  const room = Math.ceil(groupSize / 2)
  const target = Math.max(
    1,
    Math.min(override.targetConnections ?? TARGET_CONNECTIONS, others, Math.max(1, max - room)),
  )
  return { maxConnections: max, targetConnections: target }
}
/** the stream muxer, from the limits above (a frame is at most MAX_FRAME_BYTES plus framing) */
export const YAMUX_LIMITS = {
  maxInboundStreams: MAX_STREAMS_PER_CONNECTION,
  maxOutboundStreams: MAX_STREAMS_PER_CONNECTION,
}

/** Stored events decoded and applied to the view per step at start (never all decoded at once). */
export const LOAD_CHUNK = 1000

/**
 * Catch-up verification threads (issue 13): a joining terminal verifies the signatures of incoming
 * catch-up frames on a worker while its main thread validates, applies and writes the frame before.
 * Default: one fewer than the cores (at least one); 0 verifies inline.
 */
export const DEFAULT_CATCHUP_VERIFY_THREADS = -1
/** the threads stop after this long without a catch-up frame (an idle terminal holds no worker) */
export const CATCHUP_VERIFY_IDLE_MS = 10_000
/** frames with fewer events are verified inline: a thread hop costs more than it saves */
export const CATCHUP_VERIFY_MIN_EVENTS = 16
/** pnet nonce exchange, when libp2p's upgrader gives no signal of its own (@libp2p/pnet's default) */
export const PNET_HANDSHAKE_TIMEOUT_MS = 1000
