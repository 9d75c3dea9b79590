import { type KeyPair, type SignatureScheme, sha256, toHex } from './deps.js'

/**
 * The simulator's signature scheme (docs/protocol.md, "Simulated signatures"), injected into the
 * protocol package with `setSignatureScheme` in place of Ed25519: a keyed hash (a MAC) under a
 * secret per terminal. The cores sign with their own private key only; the verifier looks the
 * secret up by the claimed public key, so a signature verifies only if it was made by that key's
 * holder over exactly those bytes — an unknown key, another key's signature, a tampered message or
 * a made-up signature all fail, as with Ed25519. Nothing in the simulated world sees another
 * terminal's secret, and nothing searches for collisions, so a 64-byte tag of a well-mixed keyed
 * hash is as unforgeable here as Ed25519 (a mutant that accepts a bad signature or a forged ack
 * is still caught). What it drops is the cost: Ed25519 was most of a run's time.
 */
export class SimulatedSignatures implements SignatureScheme {
  readonly name = 'dst-keyed-hash'

  /** public key (hex) → its holder's secret */
  private readonly byPublic = new Map<string, Uint32Array>()

  /** private seed → secret; by identity first, by hex for copies */
  private readonly byPrivate = new WeakMap<Uint8Array, Uint32Array>()

  private readonly byPrivateHex = new Map<string, Uint32Array>()

  /** the secret of each key the world knows (terminals and the operator) */
  register(key: KeyPair): void {
    const hex = toHex(key.publicKey)
    if (this.byPublic.has(hex)) return
    // derived from the private seed, so a terminal can only sign as itself
    const d = sha256(new TextEncoder().encode('nullmesh-dst-signature-secret'), key.privateKey)
    const secret = new Uint32Array(8)
    for (let i = 0; i < 8; i++)
      secret[i] = (d[4 * i]! | (d[4 * i + 1]! << 8) | (d[4 * i + 2]! << 16) | (d[4 * i + 3]! << 24)) >>> 0
    this.byPublic.set(hex, secret)
    this.byPrivate.set(key.privateKey, secret)
    this.byPrivateHex.set(toHex(key.privateKey), secret)
  }

  sign(privateKey: Uint8Array, message: Uint8Array): Uint8Array {
    let secret = this.byPrivate.get(privateKey)
    if (secret === undefined) {
      secret = this.byPrivateHex.get(toHex(privateKey))
      if (secret === undefined) throw new Error('dst: signing with a key the simulated world does not know')
      this.byPrivate.set(privateKey, secret)
    }
    return tag(secret, message)
  }

  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    const secret = this.byPublic.get(toHex(publicKey))
    if (secret === undefined) return false
    const expected = tag(secret, message)
    let diff = 0
    for (let i = 0; i < 64; i++) diff |= expected[i]! ^ signature[i]!
    return diff === 0
  }
}

/** the simulated world's keys (venueOf registers them) */
export const simSignatures = new SimulatedSignatures()

/**
 * 64-byte tag of (secret, message): eight 32-bit lanes, each a multiply–rotate hash (murmur3's
 * mixing) seeded by one word of the secret, over the message and its length, then cross-mixed so
 * every output byte depends on every lane.
 */
function tag(secret: Uint32Array, m: Uint8Array): Uint8Array {
  const h = new Uint32Array(8)
  for (let l = 0; l < 8; l++) h[l] = secret[l]! ^ Math.imul(m.byteLength + l, 0x9e3779b1)
  const words = m.byteLength >>> 2
  for (let i = 0; i < words; i++) {
    const o = i << 2
    let k = m[o]! | (m[o + 1]! << 8) | (m[o + 2]! << 16) | (m[o + 3]! << 24)
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    // each word feeds two lanes (a rotating pair): every lane sees half the message, every pair all
    const a = i & 7
    const b = (i + 3) & 7
    let x = h[a]! ^ k
    x = (x << 13) | (x >>> 19)
    h[a] = Math.imul(x, 5) + 0xe6546b64
    let y = h[b]! ^ Math.imul(k, 0x85ebca6b)
    y = (y << 17) | (y >>> 15)
    h[b] = Math.imul(y, 9) + 0x3c6ef372
  }
  let tail = 0
  for (let o = words << 2, s = 0; o < m.byteLength; o++, s += 8) tail |= m[o]! << s
  h[words & 7] = h[words & 7]! ^ Math.imul(tail ^ 0x5bd1e995, 0xcc9e2d51)
  // finalise: two rounds of fmix32 across the lanes
  for (let r = 0; r < 2; r++)
    for (let l = 0; l < 8; l++) {
      let x = (h[l]! + h[(l + 1) & 7]! + secret[(l + r) & 7]!) >>> 0
      x ^= x >>> 16
      x = Math.imul(x, 0x85ebca6b)
      x ^= x >>> 13
      x = Math.imul(x, 0xc2b2ae35)
      x ^= x >>> 16
      h[l] = x
    }
  const out = new Uint8Array(64)
  for (let l = 0; l < 8; l++) {
    const x = h[l]!
    const y = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) ^ secret[(l + 5) & 7]!
    out[8 * l] = x
    out[8 * l + 1] = x >>> 8
    out[8 * l + 2] = x >>> 16
    out[8 * l + 3] = x >>> 24
    out[8 * l + 4] = y
    out[8 * l + 5] = y >>> 8
    out[8 * l + 6] = y >>> 16
    out[8 * l + 7] = y >>> 24
  }
  return out
}
