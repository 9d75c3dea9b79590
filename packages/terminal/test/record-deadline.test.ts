import { Worker } from 'node:worker_threads'
import type { Terminal } from '@nullmesh/terminal'
import { afterEach, expect, test } from 'vitest'
import { http, payment, startVenue, type TestVenue, TOKEN, waitFor } from './helpers.js'

const busy = (ms: number): void => {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // this thread's event loop is blocked: nothing reads the sockets meanwhile
  }
}

// Issue 10, item 9 (the tap budget): the payment record is written after the decision, and under
// load that write waited 0.2–1.4 s behind other batches, outside the decision's deadline. The
// answer now waits for it until the deadline and no longer; the key stays in flight until the
// record is written, so a retry meanwhile gets the same answer, and a retry after gets it from
// the record. Without the mechanism (the answer awaiting the write) every pay() below hangs while
// the gate is shut and the test times out.

let venue: TestVenue | undefined
afterEach(async () => {
  await venue?.cleanup()
  venue = undefined
})

/** Hold this terminal's payment records (not its events) until the returned function is called. */
function gatePaymentRecords(t: Terminal): { open: () => void; held: () => number } {
  const ledger = t.ledger as { putPayment: Terminal['ledger']['putPayment'] }
  const original = ledger.putPayment.bind(t.ledger)
  let open!: () => void
  const gate = new Promise<void>((r) => {
    open = r
  })
  let held = 0
  ledger.putPayment = async (...args) => {
    held++
    await gate
    return original(...args)
  }
  return {
    open: () => {
      ledger.putPayment = original
      open()
    },
    held: () => held,
  }
}

test('[record deadline] a decision is answered by its deadline while its record is still being written; retries get the same answer', async () => {
  venue = await startVenue(1, { policy: { tapBudgetMs: 400, barrier: { timeoutMs: 200 } } })
  const t = venue.terminals[0]!
  const gate = gatePaymentRecords(t)

  // a decline (no central link: an online-only payment is declined at once) and an approval
  const decline = payment({ offlineBehavior: 'require_online' })
  const approve = payment({ offlineBehavior: 'force_offline' })
  const declined = await t.pay(decline)
  const approved = await t.pay(approve)
  expect(declined.status).toBe('declined_offline')
  expect(declined.declineCode).toBe('offline_not_allowed')
  expect(approved.status).toBe('approved_offline')
  expect(gate.held()).toBe(2)
  // neither record is written yet
  expect(await t.ledger.getPaymentByIdempotencyKey(decline.idempotencyKey)).toBeUndefined()

  // a POS retry while the records are on their way joins the decision: the same answer, no second
  // decision (a second decision would have asked for a third record)
  expect(await t.pay(decline)).toEqual(declined)
  expect(await t.pay(approve)).toEqual(approved)
  expect(gate.held()).toBe(2)

  gate.open()
  await waitFor(async () => (await t.ledger.getPaymentByIdempotencyKey(decline.idempotencyKey)) !== undefined)
  await waitFor(async () => (await t.ledger.getPaymentByIdempotencyKey(approve.idempotencyKey)) !== undefined)
  // and after: answered from the records
  expect(await t.pay(decline)).toEqual(declined)
  expect(await t.pay(approve)).toEqual(approved)
})

test('[record deadline] stop() waits for records answered before they were written', async () => {
  venue = await startVenue(1, { policy: { tapBudgetMs: 400, barrier: { timeoutMs: 200 } } })
  const t = venue.terminals[0]!
  const gate = gatePaymentRecords(t)
  const body = payment({ offlineBehavior: 'force_offline' })
  const answer = await t.pay(body)
  expect(answer.status).toBe('approved_offline')
  const stopped = t.stop()
  let done = false
  void stopped.then(() => {
    done = true
  })
  await new Promise((r) => setTimeout(r, 100))
  expect(done).toBe(false) // still waiting for the record
  gate.open()
  await stopped
  // the record reached the ledger before it closed
  const again = await venue.restart(0)
  expect((await again.ledger.getPaymentByIdempotencyKey(body.idempotencyKey))?.response).toEqual(answer)
})

test('[tap budget from arrival] the budget counts from when the request arrived, not from when its decision began', async () => {
  venue = await startVenue(1, { policy: { tapBudgetMs: 400, barrier: { timeoutMs: 200 } } })
  const t = venue.terminals[0]!
  // arrived a whole budget ago (parsed late on a starved process): no time left for a barrier round
  const late = await t.pay(payment({ offlineBehavior: 'force_offline' }), {
    receivedAt: performance.now() - 400,
  })
  expect(late.status).toBe('declined_offline')
  expect(late.declineCode).toBe('barrier_timeout')
  expect(t.status().decisions.overBudget).toBe(1)
  // the same payment arriving now is approved
  const now = await t.pay(payment({ offlineBehavior: 'force_offline' }))
  expect(now.status).toBe('approved_offline')
})

// Retried: the estimate dates back a request read within LOOP_LAG_READ_WINDOW_MS (20 ms) of the
// overdue tick; on a CI machine running other test files on both cores the process can be
// descheduled longer than that between the two, and the request is then timed from its read (it
// failed 2 of 4 clean-clone runs on 2026-12-05). Three misses in a row still fail the test.
test('[arrival behind a busy loop] a payment read after its terminal was busy for longer than the budget is declined at once, not decided late', {
  retry: 2,
}, async () => {
  venue = await startVenue(1, { policy: { tapBudgetMs: 400, barrier: { timeoutMs: 200 } } })
  const t = venue.terminals[0]!
  // the POS is another thread: its request reaches the socket while this thread's loop is busy.
  // It sends only once this thread has started to be busy (a shared flag it waits on): sent on a
  // message instead, the request could be read before the message was, and be decided in time
  const go = new Int32Array(new SharedArrayBuffer(4))
  const pos = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads')
     const headers = { authorization: 'Bearer ' + workerData.token, 'content-type': 'application/json' }
     // warm (fetch loads lazily, the connection is kept): the paid request leaves at once
     fetch(workerData.url + '/v1/status', { headers }).then((r) => r.text()).then(() => {
       parentPort.postMessage('ready')
       Atomics.wait(workerData.go, 0, 0)
       return fetch(workerData.url + '/v1/payments', { method: 'POST', headers, body: JSON.stringify(workerData.body) })
     }).then((r) => r.json()).then((j) => parentPort.postMessage(j), (e) => parentPort.postMessage({ error: String(e) }))`,
    {
      eval: true,
      workerData: { url: t.apiUrl, token: TOKEN, go, body: payment({ offlineBehavior: 'force_offline' }) },
    },
  )
  try {
    const answered = new Promise<Record<string, unknown>>((resolve) =>
      pos.on('message', (m) => {
        if (m !== 'ready') return resolve(m as Record<string, unknown>)
        Atomics.store(go, 0, 1)
        Atomics.notify(go, 0)
        busy(600)
      }),
    )
    const late = await answered
    // it waited unread through the busy stretch: no time left in the budget for a barrier round
    expect(late.status).toBe('declined_offline')
    expect(late.declineCode).toBe('barrier_timeout')
    // the same payment with the loop free is approved
    const r = await http(`${t.apiUrl}/v1/payments`, { body: payment({ offlineBehavior: 'force_offline' }) })
    expect(r.json.status).toBe('approved_offline')
  } finally {
    await pos.terminate()
  }
})
