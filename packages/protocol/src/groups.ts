import { createHash } from 'node:crypto'
import { toHex, utf8 } from './bytes.js'
import { DOMAIN } from './constants.js'

/**
 * Custodian groups: a card key maps to `size` members of the venue roster by rendezvous
 * (highest-random-weight) hashing. Every member gets a weight mixed from the card's and its own
 * hash (domain-separated SHA-256); the `size` highest weights form the group. Pure and deterministic: every terminal and central, given
 * the same roster (the signed venue bundle), computes the same group for a card. Adding or removing
 * one member changes a card's group only if that member scores in (or was in) its top `size`, so
 * about size/N of the cards move, each by one member.
 */

const PREFIX = utf8(`${DOMAIN.group}\u0000`)

/** two 32-bit words from sha256(domain ‖ bytes): a member's or a card's seed */
function seed(bytes: Uint8Array | string): [number, number] {
  const h = createHash('sha256').update(PREFIX)
  if (typeof bytes === 'string') h.update(bytes, 'hex')
  else h.update(bytes)
  const d = h.digest()
  return [d.readUInt32BE(0), d.readUInt32BE(4)]
}

/** murmur3's 32-bit finaliser: a bijection with full avalanche */
function fmix32(x: number): number {
  let h = x >>> 0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/**
 * A member's weight for a card: 53 bits mixed from both seeds. One hash per member (precomputed)
 * and one per card; the pair is combined with integer arithmetic, so a group over 1,000 members
 * costs microseconds rather than 1,000 hashes.
 */
function weight(card: readonly [number, number], member: readonly [number, number]): number {
  return fmix32(card[0] ^ member[0]) * 2 ** 21 + (fmix32(card[1] ^ member[1] ^ 0x9e3779b9) >>> 11)
}

function top(
  card: readonly [number, number],
  members: readonly string[],
  seeds: readonly (readonly [number, number])[],
  size: number,
): string[] {
  const scored = members.map((m, i) => ({ m, s: weight(card, seeds[i]!) }))
  scored.sort((a, b) => b.s - a.s || (a.m < b.m ? -1 : a.m > b.m ? 1 : 0))
  return scored
    .slice(0, size)
    .map((x) => x.m)
    .sort()
}

/**
 * The custodian group of `cardKey` among `members` (public keys, lowercase hex): the `size`
 * highest-weighted members, returned sorted by key. A roster of at most `size` members is one
 * group, the whole roster. Ties are broken by key, so the result never depends on the order of
 * `members`. (CustodianGroups does the same with the members' hashes computed once.)
 */
export function custodianGroup(cardKey: Uint8Array, members: readonly string[], size: number): string[] {
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`group size must be ≥ 1, got ${size}`)
  if (members.length <= size) return [...members].sort()
  return top(seed(cardKey), members, members.map(seed), size)
}

/** One card's group, as computed by CustodianGroups. */
export interface Group {
  /** members' public keys (hex), sorted */
  readonly members: readonly string[]
  readonly has: (memberHex: string) => boolean
}

/** Largest number of cards whose groups CustodianGroups keeps (then it starts over). */
export const GROUP_CACHE_SIZE = 4096

/**
 * The groups of one roster, memoised per card key: computing a group hashes every roster member
 * (1,000 hashes at the largest roster), and a busy card asks for its group at every step.
 */
export class CustodianGroups {
  readonly members: readonly string[]
  private readonly seeds: (readonly [number, number])[]
  private readonly cache = new Map<string, Group>()

  constructor(
    members: Iterable<string>,
    /** the effective group size: min(groupSize, roster) */
    readonly size: number,
  ) {
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`group size must be ≥ 1, got ${size}`)
    this.members = [...new Set(members)].sort()
    this.seeds = this.members.map(seed)
  }

  /** the group of a card key (bytes or lowercase hex) */
  of(cardKey: Uint8Array | string): Group {
    const hex = typeof cardKey === 'string' ? cardKey : toHex(cardKey)
    const hit = this.cache.get(hex)
    if (hit !== undefined) return hit
    const members =
      this.members.length <= this.size
        ? [...this.members]
        : top(seed(cardKey), this.members, this.seeds, this.size)
    const set = new Set(members)
    const group: Group = { members, has: (m) => set.has(m) }
    if (this.cache.size >= GROUP_CACHE_SIZE) this.cache.clear()
    this.cache.set(hex, group)
    return group
  }
}
