import { createHash } from 'node:crypto'
import type { PaymentMethod, PaymentRequest } from '@nullmesh/client'
import type { Scenario } from './options.js'
import { Random } from './random.js'

export type CardKind = 'ordinary' | 'denylisted' | 'blocked_bin'

export interface SimCard {
  index: number
  token: string
  kind: CardKind
}

/** Why the generator made a payment: ordinary, or built to probe one rule. */
export type PaymentKind = 'ordinary' | 'over_floor' | 'replay' | 'double_tap' | 'cap_burst'

export interface PlannedPayment {
  /** 0-based index among the run's distinct payments */
  n: number
  /** 0-based terminal index */
  terminal: number
  kind: PaymentKind
  card: number
  request: PaymentRequest
  /** double-tap group: every payment of a group has the same card credential */
  group?: number
  /** double-tap scenario: the burst (one card, many credentials) this payment belongs to */
  burst?: number
  /** a replay: the payment whose credential it reuses */
  replayOf?: number
}

export type Step =
  | { atMs: number; kind: 'pay'; payments: PlannedPayment[] }
  /** the POS re-sends payment `of` (same idempotency key, same terminal) once it was answered */
  | { atMs: number; kind: 'retry'; of: number }
  /** the terminal's link to central goes down or comes back */
  | { atMs: number; kind: 'link'; terminal: number; up: boolean }
  /** the terminal is cut off at the mesh layer (SIGUSR1) or healed (SIGUSR2) */
  | { atMs: number; kind: 'partition'; terminal: number; on: boolean }

export interface PlanInput {
  seed: string
  scenario: Scenario
  terminals: number
  cards: number
  payments: number
  rate: number
  offline: number
  currency: string
  floorLimitMinor: number
  /** the policy's per-card offline caps, which the double-tap scenario's bursts overrun */
  cardCapMinor: number
  cardCapCount: number
  /** a BIN prefix the venue policy blocks */
  blockedBin: string
}

export interface Plan {
  cards: SimCard[]
  steps: Step[]
  /** planned payments by n */
  payments: PlannedPayment[]
  /** expected duration of the load, ms */
  durationMs: number
  /** the terminal (0-based) cut off in the partition scenario */
  partitioned?: number
}

const ORDINARY_BINS = [
  '41111111',
  '45320151',
  '40128888',
  '52555544',
  '55000000',
  '51051051',
  '37828224',
  '60110009',
]

/** Deterministic in the seed: cards, amounts, methods, terminals and timing. */
export function makePlan(input: PlanInput): Plan {
  const rnd = new Random(input.seed)
  const tag = createHash('sha256').update(input.seed).digest('hex').slice(0, 8)
  const n = input.terminals

  // ── the card pool ──
  const cards: SimCard[] = []
  const special = input.cards >= 4 ? Math.max(1, Math.round(input.cards * 0.05)) : 0
  for (let i = 0; i < input.cards; i++) {
    const kind: CardKind = i < special ? 'denylisted' : i < 2 * special ? 'blocked_bin' : 'ordinary'
    const bin = kind === 'blocked_bin' ? input.blockedBin.padEnd(8, '0') : rnd.pick(ORDINARY_BINS)
    cards.push({ index: i, token: bin + rnd.digits(16 - bin.length), kind })
  }
  // shuffle so that special cards are not the first ones drawn
  for (let i = cards.length - 1; i > 0; i--) {
    const j = rnd.int(0, i)
    ;[cards[i], cards[j]] = [cards[j]!, cards[i]!]
  }
  cards.forEach((c, i) => {
    c.index = i
  })
  const counters = cards.map(() => rnd.int(1, 900))

  const floor = input.floorLimitMinor
  const ordinaryAmount = (): number => {
    // log-uniform between 1.50 and 90% of the floor limit, rounded to 10 minor units
    const lo = Math.log(150)
    const hi = Math.log(Math.max(200, floor * 0.9))
    return Math.max(10, Math.round(Math.exp(lo + rnd.next() * (hi - lo)) / 10) * 10)
  }
  const overFloorAmount = (): number => floor + 10 * rnd.int(1, Math.max(1, Math.floor(floor / 10)))
  const method = (): PaymentMethod =>
    rnd.weighted({ contactless: 55, chip: 20, nfc: 17, qr: 5, swipe: 3 }) as PaymentMethod

  const payments: PlannedPayment[] = []
  const steps: Step[] = []
  const withCounter: number[] = []
  const msPerPayment = 1000 / input.rate
  let t = 0
  let group = 0
  let bursts = 0
  // bursts take ordinary cards in turn, so that as many cards as possible are pushed over
  const ordinary = cards.filter((c) => c.kind === 'ordinary')
  if (ordinary.length === 0) ordinary.push(...cards)
  let nextBurst = 0

  const request = (
    idx: number,
    terminal: number,
    card: SimCard,
    amountMinor: number,
    m: PaymentMethod,
    counter: number | undefined,
  ): PaymentRequest => {
    const r: PaymentRequest = {
      idempotencyKey: `sim-${tag}-${idx}`,
      cardToken: card.token,
      amountMinor,
      currency: input.currency,
      method: m,
      context: { location: `stand-${terminal + 1}`, vertical: 'hospitality', eventId: `sim-${tag}` },
    }
    if (counter !== undefined) r.credentialCounter = counter
    const behaviour = rnd.weighted({ default: 92, force_offline: 5, require_online: 3 })
    if (behaviour !== 'default') r.offlineBehavior = behaviour
    return r
  }

  while (payments.length < input.payments) {
    const idx = payments.length
    const terminal = rnd.int(0, n - 1)
    const remaining = input.payments - idx
    const doubleTap = input.scenario === 'double-tap' && n > 1 && rnd.chance(0.12)
    if (doubleTap) {
      // A card tapped again and again at several terminals at once: first one credential (same
      // counter) at every terminal, then rounds of fresh credentials, offline, whose amounts and
      // count overrun both card caps. Only enforcement keeps its approvals within them.
      const card = ordinary[nextBurst++ % ordinary.length]!
      const amounts = burstAmounts(input, bursts % 2 === 0 ? 'count' : 'amount')
      const b = bursts++
      const counter = ++counters[card.index]!
      const g = group++
      const batch: PlannedPayment[] = []
      for (let k = 0; k < Math.min(n, remaining); k++) {
        const p: PlannedPayment = {
          n: idx + k,
          terminal: k,
          kind: 'double_tap',
          card: card.index,
          group: g,
          burst: b,
          request: { ...request(idx + k, k, card, amounts[0]!, 'contactless', counter) },
        }
        delete p.request.offlineBehavior
        batch.push(p)
      }
      payments.push(...batch)
      steps.push({ atMs: t, kind: 'pay', payments: batch })
      t += batch.length * msPerPayment
      // the other taps, n at a time (one per terminal, at the same instant)
      const rest = amounts.slice(1)
      for (let r = 0; r < rest.length && payments.length < input.payments; r += n) {
        const round: PlannedPayment[] = []
        for (const [k, amount] of rest.slice(r, r + n).entries()) {
          if (payments.length + round.length >= input.payments) break
          const i = payments.length + round.length
          const p: PlannedPayment = {
            n: i,
            terminal: k,
            kind: 'cap_burst',
            card: card.index,
            burst: b,
            request: request(i, k, card, amount, 'contactless', ++counters[card.index]!),
          }
          // offline even when central is reachable: only offline approvals count toward the caps
          p.request.offlineBehavior = 'force_offline'
          round.push(p)
        }
        payments.push(...round)
        steps.push({ atMs: t, kind: 'pay', payments: round })
        t += round.length * msPerPayment
      }
      continue
    }
    const kind = rnd.weighted({
      ordinary: 86,
      over_floor: 8,
      replay: withCounter.length > 0 ? 6 : 0,
    }) as PaymentKind
    let p: PlannedPayment
    if (kind === 'replay') {
      // the same credential (card + counter) presented again, at another terminal
      const original = payments[rnd.pick(withCounter)]!
      const other = n > 1 ? (original.terminal + rnd.int(1, n - 1)) % n : original.terminal
      const card = cards[original.card]!
      p = {
        n: idx,
        terminal: other,
        kind,
        card: card.index,
        replayOf: original.n,
        request: request(
          idx,
          other,
          card,
          original.request.amountMinor,
          original.request.method,
          original.request.credentialCounter,
        ),
      }
    } else {
      const card = rnd.pick(cards)
      const m = method()
      const counter = m === 'qr' || m === 'swipe' ? undefined : ++counters[card.index]!
      const amount = kind === 'over_floor' ? overFloorAmount() : ordinaryAmount()
      p = {
        n: idx,
        terminal,
        kind,
        card: card.index,
        request: request(idx, terminal, card, amount, m, counter),
      }
      if (counter !== undefined) withCounter.push(idx)
    }
    payments.push(p)
    steps.push({ atMs: t, kind: 'pay', payments: [p] })
    // a POS retry now and then (same idempotency key): must return the first decision
    if (rnd.chance(0.03)) steps.push({ atMs: t + 0.5 * msPerPayment, kind: 'retry', of: idx })
    t += msPerPayment
  }
  const durationMs = t

  // ── connectivity and partitions, as shares of the load ──
  const at = (share: number): number => Math.round(share * durationMs)
  const control: Step[] = []
  if (input.offline > 0) {
    for (let k = 0; k < n; k++) {
      control.push({ atMs: 0, kind: 'link', terminal: k, up: false })
      if (input.offline < 1) control.push({ atMs: at(input.offline), kind: 'link', terminal: k, up: true })
    }
  }
  let partitioned: number | undefined
  if (input.scenario === 'partition' && n > 1) {
    // a switch fails: terminal 2 loses the other terminals and central alike, then comes back
    partitioned = 1
    const from = at(0.3)
    const to = at(0.65)
    control.push({ atMs: from, kind: 'partition', terminal: partitioned, on: true })
    control.push({ atMs: from, kind: 'link', terminal: partitioned, up: false })
    control.push({ atMs: to, kind: 'partition', terminal: partitioned, on: false })
    if (input.offline < 0.65) control.push({ atMs: to, kind: 'link', terminal: partitioned, up: true })
  } else if (n > 1 && input.offline < 0.6) {
    // the last terminal's uplink flaps once more late in the run (its payments sync afterwards)
    const k = n - 1
    control.push({ atMs: at(0.6), kind: 'link', terminal: k, up: false })
    control.push({ atMs: at(0.8), kind: 'link', terminal: k, up: true })
  }

  const all = [...control, ...steps].sort((a, b) => a.atMs - b.atMs || order(a) - order(b))
  const plan: Plan = { cards, steps: all, payments, durationMs }
  if (partitioned !== undefined) plan.partitioned = partitioned
  return plan
}

/** control events first at equal times, so that a payment at the same instant sees the new state */
function order(s: Step): number {
  return s.kind === 'pay' || s.kind === 'retry' ? 1 : 0
}

const round10 = (x: number): number => Math.max(10, Math.floor(x / 10) * 10)

/**
 * The amounts of one card's burst, each within the floor limit, together over both card caps:
 * more than cardCapCount taps summing to more than cardCapMinor. `count`: cardCapCount + 1 small
 * taps that fit the amount cap (the count cap is the one that must stop the last), then large
 * ones; `amount`: large taps only, so the amount cap bites first when the floor allows it.
 */
export function burstAmounts(
  input: Pick<PlanInput, 'floorLimitMinor' | 'cardCapMinor' | 'cardCapCount'>,
  profile: 'count' | 'amount',
): number[] {
  const cap = Math.max(0, input.cardCapMinor)
  const count = Math.max(0, input.cardCapCount)
  const floor = Math.max(10, input.floorLimitMinor)
  const large = Math.min(floor, round10((1.5 * cap) / Math.max(1, count)))
  const amounts: number[] =
    profile === 'count' ? Array(count + 1).fill(Math.min(large, round10((0.9 * cap) / (count + 1)))) : []
  let sum = amounts.reduce((a, b) => a + b, 0)
  while (sum <= cap || amounts.length <= count + 1) {
    amounts.push(large)
    sum += large
  }
  return amounts
}
