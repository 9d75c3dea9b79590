// Ed25519 sign/verify cost through @nullmesh/protocol vs raw KeyObjects. node scripts/bench/sig-micro.js

import { generateKeyPairSync, sign, verify } from 'node:crypto'
import { generateKeyPair, signBytes, verifyBytes } from '@nullmesh/protocol'

const k = generateKeyPair()
const msg = new Uint8Array(200).fill(1)
let sig
let t0 = performance.now()
for (let i = 0; i < 2000; i++) sig = signBytes(k.privateKey, msg)
const s = (performance.now() - t0) / 2000
t0 = performance.now()
for (let i = 0; i < 2000; i++) verifyBytes(k.publicKey, msg, sig)
const v = (performance.now() - t0) / 2000
const kp = generateKeyPairSync('ed25519')
t0 = performance.now()
for (let i = 0; i < 2000; i++) sig = sign(null, msg, kp.privateKey)
const s2 = (performance.now() - t0) / 2000
t0 = performance.now()
for (let i = 0; i < 2000; i++) verify(null, msg, kp.publicKey, sig)
const v2 = (performance.now() - t0) / 2000
console.log({ protocolSignMs: s, protocolVerifyMs: v, keyObjectSignMs: s2, keyObjectVerifyMs: v2 })
