// This machine's Ed25519 verification capacity, for figure 7 (central ingest): every core verifies
// at once, on worker threads, for a fixed time. Two measures of the same signature mix as the
// figure's events (each event's own signature; a Commit's embedded reservation and acks):
//   raw      node:crypto verify with cached KeyObjects over (key, message, signature) triples of the
//            same message lengths — the Ed25519 floor;
//   protocol verifyEventSignature / verifyAckSignature on the figure's own events — the calls central
//            makes (CBOR signing bytes + verify).
// The capacity in events/s is verify/s ÷ signatures per event.
import { generateKeyPairSync, sign, verify } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { decodeEvent, verifyAckSignature, verifyEventSignature } from '@nullmesh/protocol'

/** The signatures an event carries: [bytes of the signed thing] for each (own, reservation, acks). */
function signedParts(bytes) {
  const d = decodeEvent(bytes)
  if (!d.ok) return []
  const e = d.value.event
  const parts = [{ kind: 'event', signed: d.value }]
  if (e.type === 'commit') {
    parts.push({ kind: 'event', signed: e.reservation })
    for (const a of e.acks) parts.push({ kind: 'ack', signed: a })
  }
  return parts
}

/**
 * @param {Uint8Array[]} events distinct events of the workload (a sample is enough)
 * @param {{ threads?: number, ms?: number }} [opts]
 */
export async function measureVerifyCapacity(events, { threads = availableParallelism(), ms = 3000 } = {}) {
  let sigs = 0
  for (const b of events) sigs += signedParts(b).length
  const sample = events.slice(0, 2000)
  const workers = Array.from(
    { length: threads },
    () => new Worker(new URL(import.meta.url), { workerData: { events: sample } }),
  )
  try {
    await Promise.all(workers.map((w) => once(w, 'ready')))
    const run = async (mode) => {
      const answers = workers.map((w) => once(w, 'done'))
      for (const w of workers) w.postMessage({ mode, ms })
      const counts = (await Promise.all(answers)).map((a) => a.count / (a.ms / 1000))
      return {
        verifyPerSecond: Math.round(counts.reduce((s, c) => s + c, 0)),
        perThread: counts.map(Math.round),
      }
    }
    const raw = await run('raw')
    const protocol = await run('protocol')
    const perEvent = sigs / events.length
    return {
      threads,
      ms,
      signaturesPerEvent: Math.round(perEvent * 1000) / 1000,
      raw: { ...raw, eventsPerSecond: Math.round(raw.verifyPerSecond / perEvent) },
      protocol: { ...protocol, eventsPerSecond: Math.round(protocol.verifyPerSecond / perEvent) },
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
}

function once(w, type) {
  return new Promise((resolve, reject) => {
    const onMsg = (m) => {
      if (m.type !== type) return
      w.off('message', onMsg)
      resolve(m)
    }
    w.on('message', onMsg)
    w.once('error', reject)
  })
}

if (!isMainThread) {
  const parts = workerData.events.flatMap((b) => signedParts(b))
  // raw triples: same message lengths, signed by a handful of keys as a venue's terminals would be
  const keys = Array.from({ length: 5 }, () => generateKeyPairSync('ed25519'))
  const triples = parts.map((p, i) => {
    const k = keys[i % keys.length]
    const message = new Uint8Array(Math.max(1, p.signed.bytes.byteLength - 64)).fill(i & 0xff)
    return { key: k.publicKey, message, signature: sign(null, message, k.privateKey) }
  })
  parentPort.on('message', ({ mode, ms }) => {
    let count = 0
    let ok = true
    const t0 = performance.now()
    let elapsed = 0
    while (elapsed < ms) {
      for (let i = 0; i < 50; i++) {
        const j = count % parts.length
        if (mode === 'raw') {
          const t = triples[j]
          ok = verify(null, t.message, t.key, t.signature) && ok
        } else {
          const p = parts[j]
          ok = (p.kind === 'ack' ? verifyAckSignature(p.signed) : verifyEventSignature(p.signed)) && ok
        }
        count++
      }
      elapsed = performance.now() - t0
    }
    if (!ok) throw new Error('a signature of the capacity sample did not verify')
    parentPort.postMessage({ type: 'done', count, ms: elapsed })
  })
  parentPort.postMessage({ type: 'ready' })
}

/**
 * Figure 7's capacity and ratio: the higher raw measure of the two (before, after the ingest) is
 * the capacity, so a load spike during one measurement does not flatter the ratio.
 */
export function capacityFigures(eventsPerSecond, before, after) {
  const capacity = Math.max(before.raw.eventsPerSecond, after.raw.eventsPerSecond)
  const ratio = Math.round((eventsPerSecond / capacity) * 1000) / 1000
  const v = (c) => `${c.raw.verifyPerSecond} raw / ${c.protocol.verifyPerSecond} protocol verify/s`
  return {
    capacity,
    ratio,
    capacityLine:
      `Ed25519 capacity, ${before.threads} threads × ${before.ms} ms: before ${v(before)}, after ${v(after)}; ` +
      `${before.signaturesPerEvent} signatures/event → ${capacity} events/s; ingest = ${Math.round(ratio * 1000) / 10} % of it`,
  }
}
