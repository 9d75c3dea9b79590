export const SCENARIOS = ['normal', 'double-tap', 'partition'] as const
export type Scenario = (typeof SCENARIOS)[number]

export interface SimOptions {
  terminals: number
  /** policy barrier.groupSize (default the policy's) */
  groupSize?: number | undefined
  cards: number
  payments: number
  /** payments per second */
  rate: number
  scenario: Scenario
  seed: string
  /** share of the load (from the start) during which no terminal can reach central */
  offline: number
  settleTimeoutMs: number
  json: boolean
  keep: boolean
  /** parent of the temporary directory */
  dir?: string | undefined
  progress: boolean
  /** central's store: a PostgreSQL URL; default the embedded PGlite in the run's directory */
  centralStore?: string
  /** keep the venue running after the load (dashboards up) until Ctrl-C */
  hold: boolean
}
