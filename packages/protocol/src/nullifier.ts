import { createHmac } from 'node:crypto'
import { CARD_KEY_BYTES, DOMAIN } from './constants.js'

/**
 * What marks one use of a card credential. The card's own transaction counter (EMV ATC) when it
 * supplies one: a replayed or cloned credential then collides anywhere in the mesh. Otherwise the
 * payment's idempotency key: a retried payment maps to the same nullifier and is never charged twice.
 */
export interface CredentialUse {
  credentialCounter?: number | undefined
  idempotencyKey: string
}

function normaliseToken(cardToken: string): string {
  return cardToken.replace(/[\s-]/g, '')
}

function keyedHash(hashingKey: Uint8Array, domain: string, ...parts: string[]): Uint8Array {
  const h = createHmac('sha256', hashingKey)
  h.update(domain)
  for (const p of parts) {
    // length-prefix each part so that no two different part lists hash the same input
    const b = Buffer.from(p, 'utf8')
    const len = Buffer.alloc(4)
    len.writeUInt32BE(b.byteLength)
    h.update(len)
    h.update(b)
  }
  return new Uint8Array(h.digest())
}

/**
 * HMAC-SHA256 under the venue hashing key, domain separated. Without the key nothing about the
 * card can be learned from a nullifier, and no card data can be read back from it.
 */
export function computeNullifier(hashingKey: Uint8Array, cardToken: string, use: CredentialUse): Uint8Array {
  const token = normaliseToken(cardToken)
  const marker =
    use.credentialCounter !== undefined ? `atc:${use.credentialCounter}` : `idem:${use.idempotencyKey}`
  return keyedHash(hashingKey, DOMAIN.nullifier, token, marker)
}

/** A keyed hash of the card token alone (16 bytes): the key for per-card caps and the deny list. */
export function computeCardKey(hashingKey: Uint8Array, cardToken: string): Uint8Array {
  return keyedHash(hashingKey, DOMAIN.cardKey, normaliseToken(cardToken)).subarray(0, CARD_KEY_BYTES)
}

/**
 * The issuer identification number (first 6–8 digits) when the token is a PAN-shaped string, for
 * blocked-BIN checks at the terminal. Used transiently, never stored.
 */
export function cardBin(cardToken: string, digits = 8): string | undefined {
  const token = normaliseToken(cardToken)
  return /^\d{12,19}$/.test(token) ? token.slice(0, digits) : undefined
}
