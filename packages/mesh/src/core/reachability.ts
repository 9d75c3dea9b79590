import type { MeshMode } from './types.js'

/** What the core knows of one enrolled peer with a connection. */
export interface PeerView {
  key: string
  /** presented a valid enrollment certificate (hello) */
  verified: boolean
  /** its initial catch-up succeeded: it counts toward the quorum */
  caughtUp: boolean
}

/**
 * How an on-demand dial to a group member ended (docs/protocol.md, "Connections"):
 * `connected`: a connection is open (the peer then greets and catches up as any other);
 * `unreachable`: no known address, connection refused by the host, no route or the dial timed out —
 * evidence that the peer is down or cut off, as a lost connection is;
 * `refused`: the host answered but the connection was not accepted (e.g. the peer is at its
 * connection limit) — the peer is alive, so it is never counted as unreachable.
 */
export type DialResult = 'connected' | 'unreachable' | 'refused'

/**
 * Membership and reachability: which peers count toward the quorum, the mode, and whether a
 * decision may take the isolated path. Peers are iterated in key order (deterministic).
 */
export class Reachability {
  private readonly peers = new Map<string, PeerView>()
  /** the sorted ready keys, recomputed only when asked after a change (large rosters) */
  private readyCache: string[] | undefined
  /** how many peers are ready, kept as they change: the mode is asked at every peer event, and
   * sorting a 1,000-peer list each time made forming a mesh cubic in the roster */
  private readyCount = 0
  partitioned = false
  mode: MeshMode = 'isolated'
  /** monotonic time at which ready peers last fell below the quorum (or the node started) */
  quorumLostAt = 0
  /** monotonic time each peer was last lost: a custodian group missing it waits the probe time */
  private readonly lostAt = new Map<string, number>()
  /** on-demand dials in flight (key → monotonic start and the dial's time bound) */
  private readonly dialing = new Map<string, { at: number; timeoutMs: number }>()
  /** the last failed on-demand dial of a peer we are not connected to (key → when, how) */
  private readonly dialFailed = new Map<string, { at: number; result: 'unreachable' | 'refused' }>()

  constructor(
    readonly quorum: number,
    /** how long missing peers count as possibly reachable after the quorum was lost */
    readonly probeMs: number,
    /** how long a failed dial is believed before the peer is dialled again */
    readonly dialRetryMs: number = probeMs,
    /** ...and a refused one (a live peer short of a free slot: one frees up soon) */
    readonly refusedRetryMs: number = dialRetryMs,
    /**
     * a dial that ran out of a shorter time than this proves nothing (the decision had little time
     * left): it is taken as inconclusive ('refused'), never as 'unreachable'
     */
    readonly conclusiveDialMs: number = 0,
  ) {}

  get connections(): number {
    return this.peers.size
  }

  get(key: string): PeerView | undefined {
    return this.peers.get(key)
  }

  connect(key: string): PeerView {
    let p = this.peers.get(key)
    this.dialFailed.delete(key)
    if (p === undefined) {
      p = { key, verified: false, caughtUp: false }
      this.peers.set(key, p)
    }
    return p
  }

  markVerified(key: string): void {
    const p = this.connect(key)
    if (!p.verified && p.caughtUp) this.readyCount++
    p.verified = true
    this.readyCache = undefined
  }

  markCaughtUp(key: string): void {
    const p = this.peers.get(key)
    if (p === undefined) return
    if (!p.caughtUp && p.verified) this.readyCount++
    p.caughtUp = true
    this.readyCache = undefined
  }

  lose(key: string, mono?: number): boolean {
    this.readyCache = undefined
    const p = this.peers.get(key)
    if (p?.verified === true && p.caughtUp) this.readyCount--
    const had = this.peers.delete(key)
    if (had && mono !== undefined) this.lostAt.set(key, mono)
    return had
  }

  isReady(key: string): boolean {
    const p = this.peers.get(key)
    return p?.verified === true && p.caughtUp
  }

  /** the core asked the adapter to dial this peer */
  dialStarted(key: string, mono: number, timeoutMs = Number.POSITIVE_INFINITY): void {
    this.dialing.set(key, { at: mono, timeoutMs })
  }

  /** an on-demand dial ended; a failure is believed for dialRetryMs (unless a connection comes) */
  dialEnded(key: string, result: DialResult, mono: number): void {
    const dial = this.dialing.get(key)
    this.dialing.delete(key)
    if (
      result === 'unreachable' &&
      dial !== undefined &&
      dial.timeoutMs < this.conclusiveDialMs &&
      mono - dial.at >= dial.timeoutMs
    )
      result = 'refused'
    if (result === 'connected' || this.peers.has(key)) this.dialFailed.delete(key)
    else this.dialFailed.set(key, { at: mono, result })
  }

  /**
   * A group member we are not connected to, as reachability sees it: `dialing` (a dial is in
   * flight), `unreachable` (a dial failed as unreachable less than dialRetryMs ago), `alive` (a
   * dial was refused by a live host less than dialRetryMs ago: not dialled again yet, never
   * unreachable) or `dialable` (enrolled, not tried lately: to be dialled — possibly reachable).
   */
  private absent(key: string, mono: number): 'dialing' | 'unreachable' | 'alive' | 'dialable' {
    if (this.dialing.has(key)) return 'dialing'
    const failed = this.dialFailed.get(key)
    if (failed === undefined) return 'dialable'
    if (failed.result === 'refused') return mono - failed.at < this.refusedRetryMs ? 'alive' : 'dialable'
    return mono - failed.at < this.dialRetryMs ? 'unreachable' : 'dialable'
  }

  /** members of a group we are not connected to and should dial now (sorted: deterministic) */
  toDial(members: readonly string[], me: string, mono: number): string[] {
    if (this.partitioned) return []
    const out: string[] = []
    for (const m of members)
      if (m !== me && !this.peers.has(m) && this.absent(m, mono) === 'dialable') out.push(m)
    return out.sort()
  }

  /**
   * The same question as `reach`, for one card's custodian group: can a majority (`quorum`) of
   * its members be reached? We count ourselves only if we are a member. A member need not be
   * connected (docs/protocol.md, "Connections"): one we are not connected to is possibly
   * reachable until a dial to it fails as unreachable; a member counts as unreachable only on that
   * evidence (or on `isDown`, e.g. revoked). `unknown` while members are connecting or being
   * dialled, or one was lost (or the node started) less than probeMs ago.
   */
  reachGroup(
    members: readonly string[],
    me: string,
    quorum: number,
    mono: number,
    isDown: (key: string) => boolean = () => false,
  ): 'quorum' | 'isolated' | 'unknown' {
    if (this.partitioned) return 'isolated'
    let ready = 0
    let connecting = 0
    let recentlyLost = false
    for (const m of members) {
      if (m === me) {
        ready++
        continue
      }
      const p = this.peers.get(m)
      if (p === undefined) {
        const lost = this.lostAt.get(m)
        if (lost !== undefined && mono - lost < this.probeMs) recentlyLost = true
        if (!isDown(m) && this.absent(m, mono) !== 'unreachable') connecting++
      } else if (p.verified && p.caughtUp) ready++
      else connecting++
    }
    if (ready >= quorum) return 'quorum'
    if (ready + connecting >= quorum) return 'unknown'
    if (recentlyLost || mono - this.quorumLostAt < this.probeMs) return 'unknown'
    return 'isolated'
  }

  /** every connected peer's key, sorted */
  keys(): string[] {
    return [...this.peers.keys()].sort()
  }

  clear(): void {
    this.peers.clear()
    this.dialing.clear()
    this.readyCache = undefined
    this.readyCount = 0
  }

  /** how many peers are verified and caught up */
  get readyPeers(): number {
    return this.readyCount
  }

  /** the ready members of a group, in the group's (key) order: O(group), not O(roster) */
  readyAmong(members: readonly string[]): string[] {
    const out: string[] = []
    for (const m of members) if (this.isReady(m)) out.push(m)
    return out
  }

  /** peers verified and caught up, sorted by key */
  ready(): string[] {
    if (this.readyCache === undefined) {
      const out: string[] = []
      for (const p of this.peers.values()) if (p.verified && p.caughtUp) out.push(p.key)
      this.readyCache = out.sort()
    }
    return this.readyCache
  }

  /**
   * Can a quorum be reached? `quorum`: enough peers are ready. `isolated`: not enough peers are
   * ready or even connected, and none has become so for probeMs since the quorum was lost (or
   * since start). `unknown`: peers are connecting, greeting or catching up, or the probe time has
   * not passed: "not greeted yet" is not "unreachable".
   */
  reach(mono: number): 'quorum' | 'isolated' | 'unknown' {
    if (this.partitioned) return 'isolated'
    const ready = this.readyCount
    if (ready + 1 >= this.quorum) return 'quorum'
    const connecting = this.peers.size - ready
    if (ready + connecting + 1 >= this.quorum) return 'unknown'
    if (mono - this.quorumLostAt < this.probeMs) return 'unknown'
    return 'isolated'
  }

  /** recompute the mode; returns it when it changed */
  update(mono: number): MeshMode | undefined {
    const mode: MeshMode = !this.partitioned && this.readyCount + 1 >= this.quorum ? 'quorum' : 'isolated'
    if (mode === this.mode) return undefined
    if (mode === 'isolated') this.quorumLostAt = mono
    this.mode = mode
    return mode
  }
}
