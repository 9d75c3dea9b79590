// A verification worker thread (see verify-pool.ts). Input: a chunk of wire events packed into one
// buffer; output: per event, the validity of every signature it carries, in the order the engine
// checks them. Only pure answers cross the thread boundary: the engine still decodes and judges
// each event itself, in its usual order, so rejections and codes are those of inline checking.
import { parentPort } from 'node:worker_threads'
import { decodeEvent, verifyAckSignature, verifyEventSignature } from './events.js'
import { collectVerified } from './keys.js'
import type { VerifyRequest, VerifyResponse } from './verify-pool.js'

/**
 * Per event: a count k, then k bytes 1/0: the event's own signature; for a Commit also its
 * embedded reservation's and each ack's, in the certificate's order. k = 0: it did not decode.
 */
export function checkSignatures(events: Uint8Array[]): Uint8Array {
  const out: number[] = []
  for (const bytes of events) {
    const d = decodeEvent(bytes)
    if (!d.ok) {
      out.push(0)
      continue
    }
    const e = d.value.event
    const flags = [verifyEventSignature(d.value)]
    if (e.type === 'commit') {
      flags.push(verifyEventSignature(e.reservation))
      for (const a of e.acks) flags.push(verifyAckSignature(a))
    }
    out.push(flags.length, ...flags.map((f) => (f ? 1 : 0)))
  }
  return Uint8Array.from(out)
}

parentPort?.on('message', (req: VerifyRequest) => {
  const events: Uint8Array[] = []
  for (let i = 0; i + 1 < req.offsets.length; i++) {
    events.push(new Uint8Array(req.buf, req.offsets[i], (req.offsets[i + 1] ?? 0) - (req.offsets[i] ?? 0)))
  }
  let res: VerifyResponse
  try {
    if (req.want === 'digests') {
      res = { id: req.id, digests: collectVerified(() => checkSignatures(events)) }
      parentPort?.postMessage(res)
      return
    }
    const flags = checkSignatures(events)
    res = { id: req.id, flags }
    parentPort?.postMessage(res, [flags.buffer as ArrayBuffer])
  } catch (err: unknown) {
    res = { id: req.id, error: err instanceof Error ? err.message : String(err) }
    parentPort?.postMessage(res)
  }
})
