import { execFileSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { runScale, scaleGoals } from '@nullmesh/cli'
import { describe, expect, it } from 'vitest'

const scaleDirs = () => readdirSync(tmpdir()).filter((d) => d.startsWith('nullmesh-bench-scale3-'))
const scaleChildren = () =>
  execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes('scale-child.js'))

// The harness of bench figure `scale`, small: real terminals (libp2p, LevelDB) in two child
// processes. It checks the shape of the figure and that the mesh counters are wired (a payment
// costs barrier messages and fsyncs); no figure is judged on its value.
describe('bench figure scale (harness)', () => {
  it('runs 3 terminals in 2 processes and reports well-formed JSON with nonzero counters, leaving nothing behind', async () => {
    const dirsBefore = scaleDirs()
    const figure = await runScale({
      sizes: [3],
      processes: 2,
      rate: 5,
      payments: 6,
      warmup: 3,
      idleMs: 200,
      settleMs: 300,
      formTimeoutMs: 90_000,
    })
    const parsed = JSON.parse(JSON.stringify(figure)) as typeof figure
    expect(parsed.parameters).toMatchObject({ sizes: [3], processes: 2, ratePerSecond: 5, payments: 6 })
    expect(parsed.parameters.terminalsPerProcess).toEqual({ 3: [2, 1] })
    expect(parsed.runs).toHaveLength(1)
    const run = parsed.runs[0]!
    expect(run.error).toBeUndefined()
    expect(run).toMatchObject({
      terminals: 3,
      processes: 2,
      terminalsPerProcess: [2, 1],
      payments: 6,
      errors: 0,
    })
    expect(run.tapToDecisionMs).toMatchObject({ count: 6 })
    expect(typeof run.tapToDecisionMs?.p50).toBe('number')
    expect(typeof run.tapToDecisionMs?.p99).toBe('number')
    // offline approvals went through the barrier: each one sent requests, got answers and was fsync'd
    expect(run.approved).toBeGreaterThan(0)
    expect(run.messagesPerPaymentByKind?.barrierRequests).toBeGreaterThan(0)
    expect(run.messagesPerPaymentByKind?.barrierAnswers).toBeGreaterThan(0)
    expect(run.messagesPerPayment).toBeGreaterThan(0)
    expect(run.fsyncsPerPayment).toBeGreaterThan(0)
    expect(run.cpuMsPerPaymentPerTerminal).toBeGreaterThan(0)
    expect(parsed.lines.length).toBe(2)
    // no 5- or 50-terminal run: the goals say so instead of judging
    const goals = scaleGoals(parsed)
    expect(goals.scaleP50.met).toBeNull()
    expect(goals.scaleMessages.met).toBeNull()
    // every child process has exited and the temp dirs are gone
    expect(scaleChildren()).toEqual([])
    expect(scaleDirs()).toEqual(dirsBefore)
  }, 180_000)
})
