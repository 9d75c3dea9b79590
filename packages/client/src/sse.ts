/** One parsed Server-Sent Events message. */
export interface SseMessage {
  event: string
  data: string
  id: string
}

/**
 * Incremental SSE parser (https://html.spec.whatwg.org/multipage/server-sent-events.html):
 * feed it decoded text chunks, it returns complete messages. Comments (`:` lines) are skipped.
 */
export class SseParser {
  #buffer = ''
  #event = ''
  #data: string[] = []
  #id = ''
  #lastId = ''

  push(chunk: string): SseMessage[] {
    this.#buffer += chunk
    const out: SseMessage[] = []
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.#buffer)
      if (match === null) break
      // a lone '\r' at the end may be the first half of '\r\n': wait for more
      if (match[0] === '\r' && match.index === this.#buffer.length - 1) break
      const line = this.#buffer.slice(0, match.index)
      this.#buffer = this.#buffer.slice(match.index + match[0].length)
      const message = this.#line(line)
      if (message !== undefined) out.push(message)
    }
    return out
  }

  #line(line: string): SseMessage | undefined {
    if (line === '') {
      if (this.#data.length === 0) {
        this.#event = ''
        return undefined
      }
      const message = {
        event: this.#event === '' ? 'message' : this.#event,
        data: this.#data.join('\n'),
        id: this.#id,
      }
      this.#lastId = this.#id
      this.#event = ''
      this.#data = []
      return message
    }
    if (line.startsWith(':')) return undefined
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') this.#event = value
    else if (field === 'data') this.#data.push(value)
    else if (field === 'id' && !value.includes('\0')) this.#id = value
    return undefined
  }

  get lastEventId(): string {
    return this.#lastId
  }
}
