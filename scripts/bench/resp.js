// A minimal RESP2 client over node:net (no Redis client package is installed in this repo):
// one connection, pipelined requests answered in order.
import { connect } from 'node:net'

export class Resp {
  constructor(port, host = '127.0.0.1') {
    this.port = port
    this.host = host
    this.queue = []
    this.buf = Buffer.alloc(0)
  }

  open() {
    return new Promise((resolve, reject) => {
      this.sock = connect({ port: this.port, host: this.host, noDelay: true }, resolve)
      this.sock.once('error', reject)
      this.sock.on('data', (d) => this.onData(d))
      this.sock.on('close', () => {
        for (const q of this.queue) q.reject(new Error('redis connection closed'))
        this.queue = []
      })
    })
  }

  close() {
    this.sock?.end()
  }

  command(...args) {
    const parts = [`*${args.length}\r\n`]
    for (const a of args) {
      const s = Buffer.isBuffer(a) ? a : Buffer.from(String(a))
      parts.push(`$${s.length}\r\n`, s, '\r\n')
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject })
      this.sock.write(Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)))))
    })
  }

  onData(d) {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d])
    for (;;) {
      const r = parse(this.buf, 0)
      if (r === undefined) return
      this.buf = this.buf.subarray(r.end)
      const q = this.queue.shift()
      if (q === undefined) continue
      if (r.value instanceof Error) q.reject(r.value)
      else q.resolve(r.value)
    }
  }
}

function parse(buf, at) {
  const nl = buf.indexOf('\r\n', at)
  if (nl < 0) return undefined
  const kind = String.fromCharCode(buf[at])
  const line = buf.toString('utf8', at + 1, nl)
  switch (kind) {
    case '+':
      return { value: line, end: nl + 2 }
    case '-':
      return { value: new Error(line), end: nl + 2 }
    case ':':
      return { value: Number(line), end: nl + 2 }
    case '$': {
      const len = Number(line)
      if (len < 0) return { value: null, end: nl + 2 }
      if (buf.length < nl + 2 + len + 2) return undefined
      return { value: buf.toString('utf8', nl + 2, nl + 2 + len), end: nl + 2 + len + 2 }
    }
    case '*': {
      const n = Number(line)
      if (n < 0) return { value: null, end: nl + 2 }
      const out = []
      let end = nl + 2
      for (let i = 0; i < n; i++) {
        const r = parse(buf, end)
        if (r === undefined) return undefined
        out.push(r.value)
        end = r.end
      }
      return { value: out, end }
    }
    default:
      throw new Error(`bad RESP byte ${kind}`)
  }
}

/**
 * The per-card check-and-increment a venue would run on one Redis instead of the mesh: refuse a
 * nullifier already used, refuse if the card's total would pass its cap, else record both.
 * KEYS[1] nullifier, KEYS[2] card total; ARGV amount, cap, window ms.
 */
export const CHECK_AND_INCREMENT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
if total + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
redis.call('INCRBY', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`
