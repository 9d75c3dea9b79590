/**
 * Ascending seqs as flat inclusive ranges `[from, to, from, to, …]`, at most `maxRanges` of them
 * (the rest left out): how a catch-up request states the seqs it holds past an origin's mark.
 */
export function seqRanges(ascending: readonly number[], maxRanges: number): number[] {
  const out: number[] = []
  for (const seq of ascending) {
    if (out.length > 0 && out[out.length - 1] === seq - 1) out[out.length - 1] = seq
    else if (out.length / 2 < maxRanges) out.push(seq, seq)
    else break
  }
  return out
}
