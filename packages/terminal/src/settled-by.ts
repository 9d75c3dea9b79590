/**
 * Did `write` settle by `until` (performance.now() ms)? true when it did, false when the time came
 * first (the write goes on; the caller decides what a late write means). A write that fails in time
 * throws.
 */
export async function settledBy(write: Promise<unknown>, until: number): Promise<boolean> {
  const left = until - performance.now()
  if (left <= 0) return false
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), left)
  })
  try {
    return await Promise.race([write.then(() => true as const), late])
  } finally {
    clearTimeout(timer)
  }
}
