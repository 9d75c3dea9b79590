import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type Commit,
  type CommitMode,
  generateKeyPair,
  type KeyPair,
  type Release,
  type Reservation,
  type SignedEvent,
  signAck,
  signEvent,
  toHex,
} from '@nullmesh/protocol'

export const VENUE = 'test-venue'
export const T0 = 1_700_000_000_000

let counter = 0
function uniqueBytes(length: number, tag: number): Uint8Array {
  counter++
  const out = new Uint8Array(length)
  new DataView(out.buffer).setUint32(0, counter)
  out[length - 1] = tag
  return out
}

/** A terminal identity that signs events with consecutive seqs. */
export class Origin {
  readonly key: KeyPair = generateKeyPair()
  readonly hex = toHex(this.key.publicKey)
  seq = 0

  reservation(
    fields: Partial<Omit<Reservation, 'type' | 'venue' | 'origin'>> = {},
  ): SignedEvent<Reservation> {
    return signEvent(this.key, {
      type: 'reservation',
      venue: VENUE,
      origin: this.key.publicKey,
      seq: fields.seq ?? ++this.seq,
      ts: fields.ts ?? T0,
      nullifier: fields.nullifier ?? uniqueBytes(32, 1),
      cardKey: fields.cardKey ?? uniqueBytes(16, 2),
      amountMinor: fields.amountMinor ?? 1000,
      currency: fields.currency ?? 'EUR',
      method: fields.method ?? 'contactless',
      policyVersion: fields.policyVersion ?? 1,
    })
  }

  commit(
    reservation: SignedEvent<Reservation>,
    mode: CommitMode = 'quorum',
    seq?: number,
  ): SignedEvent<Commit> {
    return signEvent(this.key, {
      type: 'commit',
      venue: VENUE,
      origin: this.key.publicKey,
      seq: seq ?? ++this.seq,
      ts: reservation.event.ts + 1,
      reservation,
      mode,
      acks: [],
    })
  }

  release(reservation: SignedEvent<Reservation>, reason = 'timeout', seq?: number): SignedEvent<Release> {
    return signEvent(this.key, {
      type: 'release',
      venue: VENUE,
      origin: this.key.publicKey,
      seq: seq ?? ++this.seq,
      ts: reservation.event.ts + 1,
      reservationId: reservation.id,
      reason,
    })
  }

  ack(reservation: SignedEvent<Reservation>, ok = true) {
    return signAck(this.key, {
      venue: VENUE,
      acker: this.key.publicKey,
      reservationId: reservation.id,
      ok,
      reason: ok ? '' : 'conflict',
      ts: reservation.event.ts + 1,
    })
  }
}

export function newBytes(length: number): Uint8Array {
  return uniqueBytes(length, 9)
}

export async function tempDir(prefix = 'nullmesh-ledger-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix))
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of iterable) out.push(item)
  return out
}
