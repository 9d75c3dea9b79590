/**
 * Per-key async mutexes. A write takes the keys it reads-then-writes (its origins and
 * reservation ids), always in sorted order so two writers cannot deadlock. Writers with
 * disjoint keys run concurrently, which lets LevelDB group their fsyncs.
 */
export class KeyedLocks {
  readonly #tails = new Map<string, Promise<void>>()

  async acquire(keys: Iterable<string>, signal?: AbortSignal): Promise<() => void> {
    const sorted = [...new Set(keys)].sort()
    const releases: Array<() => void> = []
    const releaseAll = (): void => {
      for (let i = releases.length - 1; i >= 0; i--) releases[i]!()
      releases.length = 0
    }
    try {
      for (const key of sorted) releases.push(await this.#acquireOne(key, signal))
    } catch (err) {
      releaseAll()
      throw err
    }
    return releaseAll
  }

  async #acquireOne(key: string, signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted()
    const previous = this.#tails.get(key)
    let release!: () => void
    const mine = new Promise<void>((resolve) => {
      release = resolve
    })
    const tail = previous === undefined ? mine : previous.then(() => mine)
    this.#tails.set(key, tail)
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    })
    if (previous !== undefined) {
      try {
        await waitFor(previous, signal)
      } catch (err) {
        // Give up our turn: whoever queued behind us still waits for `previous` through `tail`.
        release()
        throw err
      }
    }
    return release
  }
}

function waitFor(promise: Promise<void>, signal?: AbortSignal): Promise<void> {
  if (signal === undefined) return promise
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    if (signal.aborted) {
      onAbort()
      return
    }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      () => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}
