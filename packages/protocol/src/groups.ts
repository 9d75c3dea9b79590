import { createHash } from 'node:crypto'
import { toHex, utf8 } from './bytes.js'
import { DOMAIN } from './constants.js'

/**
 * Custodian groups: a card key maps to `size` members of the venue roster by rendezvous
 * (highest-random-weight) hashing. Every member scores sha256(domain ‖ card key ‖ member key); the
 * `size` highest scores form the group. Pure and deterministic: every terminal and central, given
 * the same roster (the signed venue bundle), computes the same group for a card. Adding or removing
 * one member changes a card's group only if that member scores in (or was in) its top `size`, so
 * about size/N of the cards move, each by one member.
 */

const PREFIX = utf8(`${DOMAIN.group}\u0000`)

function score(cardKey: Uint8Array, memberHex: string): bigint {
  const h = createHash('sha256').update(PREFIX).update(cardKey).update(memberHex, 'hex').digest()
  return h.readBigUInt64BE(0)
}

/**
 * The custodian group of `cardKey` among `members` (public keys, lowercase hex): the `size`
 * highest-scoring members, returned sorted by key. A roster of at most `size` members is one group,
 * the whole roster. Ties (a 64-bit collision) are broken by key, so the result never depends on
 * the order of `members`.
 */
export function custodianGroup(cardKey: Uint8Array, members: readonly string[], size: number): string[] {
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`group size must be ≥ 1, got ${size}`)
  if (members.length <= size) return [...members].sort()
  const scored = members.map((m) => ({ m, s: score(cardKey, m) }))
  scored.sort((a, b) => (a.s > b.s ? -1 : a.s < b.s ? 1 : a.m < b.m ? -1 : a.m > b.m ? 1 : 0))
  return scored
    .slice(0, size)
    .map((x) => x.m)
    .sort()
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
  private readonly cache = new Map<string, Group>()

  constructor(
    members: Iterable<string>,
    /** the effective group size: min(groupSize, roster) */
    readonly size: number,
  ) {
    this.members = [...new Set(members)].sort()
  }

  /** the group of a card key (bytes or lowercase hex) */
  of(cardKey: Uint8Array | string): Group {
    const hex = typeof cardKey === 'string' ? cardKey : toHex(cardKey)
    const hit = this.cache.get(hex)
    if (hit !== undefined) return hit
    const bytes = typeof cardKey === 'string' ? Uint8Array.from(Buffer.from(cardKey, 'hex')) : cardKey
    const members = custodianGroup(bytes, this.members, this.size)
    const set = new Set(members)
    const group: Group = { members, has: (m) => set.has(m) }
    if (this.cache.size >= GROUP_CACHE_SIZE) this.cache.clear()
    this.cache.set(hex, group)
    return group
  }
}
