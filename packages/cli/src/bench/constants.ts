/** Defaults of the `scale` bench figure (scale.ts); `--quick` uses the QUICK_ ones. */
export const SCALE_SIZES = [5, 10, 25, 50]
/** the quick run measures every size too (the goals are judged at 50), with fewer payments */
export const SCALE_QUICK_SIZES = [5, 10, 25, 50]
/** child processes per venue (fewer when the venue has fewer terminals): N/5 terminals each */
export const SCALE_PROCESSES = 5
/**
 * Offered load, venue-wide, the same at every size. Low on purpose: today every payment costs
 * every terminal work, and 50 terminals share this machine's 2 cores.
 */
export const SCALE_RATE = 4
export const SCALE_PAYMENTS = 200
export const SCALE_QUICK_PAYMENTS = 60
/** warm-up payments (not recorded): at least one per terminal, so every origin has opened its streams */
export const SCALE_MIN_WARMUP = 20
/** the idle phase that measures background CPU (pings, gossip heartbeats) before the load */
export const SCALE_IDLE_MS = 3_000
/** after the last answer, before the counters are read: late acks and pushes are still counted */
export const SCALE_SETTLE_MS = 1_000
/**
 * How long a venue of N may take to form (every terminal in quorum mode with its peers ready):
 * BASE + PER_TERMINAL × N, since each terminal starts, connects and catches up with the others
 * one after the other on a shared 2-core machine (90 s at 5, 240 s at 50).
 */
export const SCALE_FORM_BASE_MS = 75_000
export const SCALE_FORM_PER_TERMINAL_MS = 3_300
/** formation progress is printed this often */
export const SCALE_PROGRESS_MS = 5_000
/** a child's answer to start (per terminal it starts), status/sample and pay, before the run fails */
export const SCALE_START_TIMEOUT_PER_TERMINAL_MS = 30_000
export const SCALE_CALL_TIMEOUT_MS = 30_000
export const SCALE_PAY_TIMEOUT_MS = 60_000
/** formation is polled this often; every mode unchanged for SCALE_STABLE_POLLS polls = settled */
export const SCALE_POLL_MS = 250
export const SCALE_STABLE_POLLS = 12
/** a child that does not exit after `stop` is killed */
export const SCALE_STOP_TIMEOUT_MS = 15_000
/** generous caps: the figure measures cost, not the policy's limits */
export const SCALE_POLICY = {
  currencies: {
    EUR: {
      floorLimitMinor: 5_000,
      cardCapMinor: 15_000,
      deviceCapMinor: 1_000_000_000,
      venueCapMinor: 1_000_000_000,
    },
  },
  deviceMaxQueued: 10_000_000,
}
export const SCALE_AMOUNT_MINOR = 1_250
/**
 * Every terminal of a venue listens on this port, each on its own loopback address (127.0.1.k), so
 * that every address is known before any terminal starts: a port in [BASE, BASE + SPAN), drawn per
 * venue (below Linux's ephemeral range, 32768–60999, so no outgoing connection holds it)
 */
export const SCALE_BASE_PORT = 20_000
export const SCALE_PORT_SPAN = 10_000
