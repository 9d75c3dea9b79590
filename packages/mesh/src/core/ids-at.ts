/**
 * Which event id the view knows at each (origin, seq): per origin an array indexed by seq (seqs
 * are dense from 1), instead of one map keyed by `${originHex}:${seq}` strings — about a quarter
 * of the memory with 100,000 events. Seqs too large for an array index go to a map.
 */
export class IdsAt {
  readonly #byOrigin = new Map<string, string[]>()
  readonly #far = new Map<string, string>()

  get(origin: string, seq: number): string | undefined {
    if (seq < FAR) return this.#byOrigin.get(origin)?.[seq]
    return this.#far.get(`${origin}:${seq}`)
  }

  set(origin: string, seq: number, id: string): void {
    if (seq >= FAR) {
      this.#far.set(`${origin}:${seq}`, id)
      return
    }
    let ids = this.#byOrigin.get(origin)
    if (ids === undefined) {
      ids = []
      this.#byOrigin.set(origin, ids)
    }
    ids[seq] = id
  }

  get size(): number {
    let n = this.#far.size
    for (const ids of this.#byOrigin.values()) for (const id of ids) if (id !== undefined) n++
    return n
  }

  /** `${origin}:${seq}` → id, for tests and diagnostics */
  *entries(): IterableIterator<[string, string]> {
    for (const [origin, ids] of this.#byOrigin) {
      for (let seq = 0; seq < ids.length; seq++) {
        const id = ids[seq]
        if (id !== undefined) yield [`${origin}:${seq}`, id]
      }
    }
    yield* this.#far
  }
}

/** seqs from here on are kept in a map (an array this long would be sparse anyway) */
const FAR = 2 ** 24
