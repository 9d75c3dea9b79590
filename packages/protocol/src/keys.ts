import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto'
import { fromBase64url, toBase64url, toHex } from './bytes.js'
import { ED25519_PUBLIC_KEY_BYTES, ED25519_SIGNATURE_BYTES } from './constants.js'

/**
 * An Ed25519 identity. The same key is a terminal's libp2p peer id, so anything it signs
 * (events, acks, proofs) can be verified from the peer id alone. Signing uses node:crypto
 * (OpenSSL) — several times faster than a JS implementation, and signing is on the barrier path.
 */
export interface KeyPair {
  /** 32-byte raw public key */
  publicKey: Uint8Array
  /** 32-byte private seed */
  privateKey: Uint8Array
}

export function generateKeyPair(): KeyPair {
  const { privateKey } = generateKeyPairSync('ed25519')
  return keyPairFromSeed(fromBase64url(privateKey.export({ format: 'jwk' }).d as string))
}

export function keyPairFromSeed(seed: Uint8Array): KeyPair {
  if (seed.byteLength !== 32) throw new TypeError('an Ed25519 seed is 32 bytes')
  const key = privateKeyObject(seed)
  const jwk = createPublicKey(key).export({ format: 'jwk' })
  return { publicKey: fromBase64url(jwk.x as string), privateKey: new Uint8Array(seed) }
}

// PKCS#8 DER header for a raw 32-byte Ed25519 seed (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const privateCache = new WeakMap<Uint8Array, KeyObject>()
function privateKeyObject(seed: Uint8Array): KeyObject {
  let key = privateCache.get(seed)
  if (key === undefined) {
    key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
    privateCache.set(seed, key)
  }
  return key
}

// Public keys arrive as fresh Uint8Arrays from the wire, so cache by hex, bounded.
const publicCache = new Map<string, KeyObject>()
const PUBLIC_CACHE_MAX = 4096
function publicKeyObject(publicKey: Uint8Array): KeyObject | undefined {
  const hex = toHex(publicKey)
  let key = publicCache.get(hex)
  if (key === undefined) {
    try {
      key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: toBase64url(publicKey) }, format: 'jwk' })
    } catch {
      return undefined
    }
    if (publicCache.size >= PUBLIC_CACHE_MAX) publicCache.delete(publicCache.keys().next().value as string)
    publicCache.set(hex, key)
  }
  return key
}

/**
 * How signatures are made and checked: Ed25519 in production. The deterministic simulator, which
 * runs every terminal of a venue in one process, injects its own scheme (a keyed hash with a secret
 * per terminal, packages/cli/src/dst/signatures.ts) through `setSignatureScheme`: the same cores,
 * validation and decoding run, only this dependency differs. See docs/protocol.md, "Simulated
 * signatures".
 */
export interface SignatureScheme {
  readonly name: string
  /** a 64-byte signature of `message` by the key whose 32-byte private seed is given */
  sign(privateKey: Uint8Array, message: Uint8Array): Uint8Array
  /** never throws; lengths were checked already */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean
}

export const ed25519: SignatureScheme = {
  name: 'ed25519',
  sign: (privateKey, message) => new Uint8Array(sign(null, message, privateKeyObject(privateKey))),
  verify: (publicKey, message, signature) => verifyUncached(publicKey, message, signature),
}

let scheme: SignatureScheme = ed25519

/** Replace the signature scheme (the simulator only); `undefined` restores Ed25519. */
export function setSignatureScheme(next: SignatureScheme | undefined): void {
  scheme = next ?? ed25519
}

export function signatureScheme(): SignatureScheme {
  return scheme
}

export function signBytes(privateKey: Uint8Array, message: Uint8Array): Uint8Array {
  return scheme.sign(privateKey, message)
}

/**
 * Memo of verification results, off by default. Only the deterministic simulator turns it on: it
 * runs every terminal of a venue in one process, where each signature would otherwise be verified
 * once per terminal (a pure function of key, message and signature, so the answer is the same).
 */
let verifyMemo: Map<string, boolean> | undefined
let verifyMemoMax = 0

export function setVerifyMemo(maxEntries: number): void {
  verifyMemo = maxEntries > 0 ? new Map() : undefined
  verifyMemoMax = maxEntries
}

/** Signature checks asked for in this process (memo hits included): the simulator's cost figures. */
let verifications = 0

export function signatureChecks(): number {
  return verifications
}

/**
 * Signatures verified on a worker thread, for one synchronous call on this thread
 * (`withPreverified`): the SHA-256 digest of (public key, signature, message) of each triple the
 * worker found valid. A check whose digest is there is answered true (once) without verifying
 * again; anything else (a tampered message, another key, a signature the worker refused) is
 * verified here as usual. The worker collects digests with `collectVerified`.
 */
let preverified: Set<string> | undefined
let collected: string[] | undefined

/** Digest of one (public key, message, signature) check. */
export function signatureDigest(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): string {
  return createHash('sha256').update(publicKey).update(signature).update(message).digest('hex')
}

/**
 * Run `fn` (synchronous) trusting the given digests of signatures a verification worker checked;
 * they are forgotten when it returns, so a digest never outlives the batch it came with.
 */
export function withPreverified<T>(digests: Iterable<string>, fn: () => T): T {
  const outer = preverified
  preverified = new Set(digests)
  try {
    return fn()
  } finally {
    preverified = outer
  }
}

/** Run `fn` (synchronous) and return the digests of every signature check it made that was valid. */
export function collectVerified(fn: () => void): string[] {
  const outer = collected
  const mine: string[] = []
  collected = mine
  try {
    fn()
  } finally {
    collected = outer
  }
  return mine
}

/** Never throws: a malformed key or signature is simply not valid. */
export function verifyBytes(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  verifications++
  if (publicKey.byteLength !== ED25519_PUBLIC_KEY_BYTES || signature.byteLength !== ED25519_SIGNATURE_BYTES)
    return false
  if (preverified !== undefined && preverified.size > 0) {
    if (preverified.delete(signatureDigest(publicKey, message, signature))) return true
  }
  if (collected !== undefined) {
    const ok = scheme.verify(publicKey, message, signature)
    if (ok) collected.push(signatureDigest(publicKey, message, signature))
    return ok
  }
  // an injected scheme is cheap: no memo (the memo's key would cost more than the check)
  if (scheme !== ed25519) return scheme.verify(publicKey, message, signature)
  if (verifyMemo !== undefined) {
    const k = `${toHex(publicKey)}${toHex(signature)}${createHash('sha256').update(message).digest('hex')}`
    const hit = verifyMemo.get(k)
    if (hit !== undefined) return hit
    const ok = verifyUncached(publicKey, message, signature)
    if (verifyMemo.size >= verifyMemoMax) verifyMemo.clear()
    verifyMemo.set(k, ok)
    return ok
  }
  return verifyUncached(publicKey, message, signature)
}

function verifyUncached(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const key = publicKeyObject(publicKey)
  if (key === undefined) return false
  try {
    return verify(null, message, key, signature)
  } catch {
    return false
  }
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

/** The 64-byte private key layout libp2p uses for Ed25519 (seed ‖ public key). */
export function toLibp2pPrivateKeyBytes(pair: KeyPair): Uint8Array {
  const out = new Uint8Array(64)
  out.set(pair.privateKey, 0)
  out.set(pair.publicKey, 32)
  return out
}

/** A JSON-friendly key file. The private seed stays base64url; the public key is also hex for humans. */
export interface KeyFile {
  type: 'ed25519'
  publicKey: string
  privateKey: string
}

export function keyPairToFile(pair: KeyPair): KeyFile {
  return { type: 'ed25519', publicKey: toHex(pair.publicKey), privateKey: toBase64url(pair.privateKey) }
}

export function keyPairFromFile(file: unknown): KeyPair {
  const f = file as Partial<KeyFile> | null
  if (f === null || typeof f !== 'object' || f.type !== 'ed25519' || typeof f.privateKey !== 'string') {
    throw new TypeError('not an ed25519 key file (expected { type: "ed25519", privateKey })')
  }
  return keyPairFromSeed(fromBase64url(f.privateKey))
}
