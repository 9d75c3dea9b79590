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

  constructor(
    readonly quorum: number,
    /** how long missing peers count as possibly reachable after the quorum was lost */
    readonly probeMs: number,
  ) {}

  get connections(): number {
    return this.peers.size
  }

  get(key: string): PeerView | undefined {
    return this.peers.get(key)
  }

  connect(key: string): PeerView {
    let p = this.peers.get(key)
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

  /**
   * The same question as `reach`, for one card's custodian group: can a majority (`quorum`) of
   * its members be reached? We count ourselves only if we are a member. `unknown` while members
   * are connecting, or one was lost (or the node started) less than probeMs ago.
   */
  reachGroup(
    members: readonly string[],
    me: string,
    quorum: number,
    mono: number,
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
