// Node 20 lacks Promise.withResolvers (ES2024), which libp2p 3 calls through it-queue and
// mortice. Import this module once, first, at each process entry point (CLI, test setup,
// child-process fixtures) — never from library code.
if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers<T>() {
      let resolve!: (value: T | PromiseLike<T>) => void
      let reject!: (reason?: unknown) => void
      const promise = new Promise<T>((res, rej) => {
        resolve = res
        reject = rej
      })
      return { promise, resolve, reject }
    },
  })
}

export {}
