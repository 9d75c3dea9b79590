const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

/** Bitcoin base58 (the encoding of libp2p peer ids). */
export function base58btc(bytes: Uint8Array): string {
  let zeros = 0
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++
  const digits: number[] = []
  for (let i = zeros; i < bytes.length; i++) {
    let carry = bytes[i]!
    for (let j = 0; j < digits.length; j++) {
      carry += digits[j]! << 8
      digits[j] = carry % 58
      carry = Math.floor(carry / 58)
    }
    while (carry > 0) {
      digits.push(carry % 58)
      carry = Math.floor(carry / 58)
    }
  }
  let out = '1'.repeat(zeros)
  for (let i = digits.length - 1; i >= 0; i--) out += ALPHABET[digits[i]!]
  return out
}

/**
 * The libp2p peer id of an Ed25519 public key: the identity multihash of the key's protobuf
 * encoding (`{ Type: Ed25519, Data: key }`), base58btc ("12D3KooW…"). Lets the CLI name a terminal's
 * peer before it starts, from the venue roster alone.
 */
export function peerIdFromEd25519(publicKey: Uint8Array): string {
  if (publicKey.byteLength !== 32) throw new TypeError('an Ed25519 public key is 32 bytes')
  const proto = new Uint8Array(36)
  proto.set([0x08, 0x01, 0x12, 0x20], 0)
  proto.set(publicKey, 4)
  const multihash = new Uint8Array(38)
  multihash.set([0x00, 36], 0)
  multihash.set(proto, 2)
  return base58btc(multihash)
}
