// Follows the host's network interfaces (issue 15). A pulled cable or a dropped Wi-Fi often comes
// back as a *new* interface (docker network connect: eth0 -> eth1; a USB adapter; a new ifindex),
// and a multicast socket joined the group on the old one only: mDNS goes deaf for good. Polling
// os.networkInterfaces() (which lists interfaces that are up and running) is cheap and portable;
// when an interface appears that was not there at the previous poll, onAppear runs (the node
// restarts mDNS, which joins the group on every current interface, and redials its address book).
import { readFileSync } from 'node:fs'
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os'
import debug from 'debug'

const log = debug('nullmesh:mesh:iface')

/** How often interfaces are polled: a returning link is seen within a second. */
export const INTERFACE_POLL_MS = 1000

export interface InterfaceChange {
  /** interfaces (name/address/mac[/ifindex]) that appeared since the previous poll */
  added: string[]
  /** ...and those that went away */
  removed: string[]
}

export interface InterfaceWatchInit {
  /** called (not concurrently) when at least one interface appeared */
  onAppear: (change: InterfaceChange) => void | Promise<void>
  /** called when interfaces only went away (optional) */
  onRemove?: (change: InterfaceChange) => void
  intervalMs?: number
  /** for tests: the interface table (default os.networkInterfaces) */
  interfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>
  /** for tests: an interface's kernel index (default /sys/class/net/<name>/ifindex on Linux) */
  ifindex?: (name: string) => string | undefined
}

export interface InterfaceWatch {
  start(): void
  /** stops polling; resolves once a running onAppear has finished */
  stop(): Promise<void>
  /** poll now (the timer calls this); resolves once onAppear (if any) has run */
  check(): Promise<void>
  /** the current keys (name/address/mac/ifindex), sorted */
  current(): string[]
}

function linuxIfindex(name: string): string | undefined {
  if (process.platform !== 'linux') return undefined
  try {
    return readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim()
  } catch {
    return undefined
  }
}

/** IPv4, non-internal interfaces (what mDNS over udp4 joins) as name/address/mac/ifindex keys. */
export function interfaceKeys(
  table: NodeJS.Dict<NetworkInterfaceInfo[]>,
  ifindex: (name: string) => string | undefined = linuxIfindex,
): string[] {
  const keys: string[] = []
  for (const [name, infos] of Object.entries(table)) {
    for (const i of infos ?? []) {
      if (i.family !== 'IPv4' || i.internal) continue
      keys.push(`${name}/${i.address}/${i.mac}/${ifindex(name) ?? ''}`)
    }
  }
  return keys.sort()
}

export function createInterfaceWatch(init: InterfaceWatchInit): InterfaceWatch {
  const table = init.interfaces ?? networkInterfaces
  const index = init.ifindex ?? linuxIfindex
  const read = (): string[] => {
    try {
      return interfaceKeys(table(), index)
    } catch (err) {
      log('reading interfaces failed: %s', (err as Error).message)
      return last
    }
  }
  let last: string[] = []
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined

  async function check(): Promise<void> {
    if (running !== undefined) return running
    running = (async () => {
      const now = read()
      const before = new Set(last)
      const after = new Set(now)
      const added = now.filter((k) => !before.has(k))
      const removed = last.filter((k) => !after.has(k))
      last = now
      if (added.length === 0 && removed.length === 0) return
      log('interfaces changed: +[%s] -[%s]', added.join(' '), removed.join(' '))
      if (added.length > 0) await init.onAppear({ added, removed })
      else init.onRemove?.({ added, removed })
    })()
      .catch((err: unknown) => log('interface change handler failed: %s', (err as Error).message))
      .finally(() => {
        running = undefined
      })
    return running
  }

  return {
    start() {
      if (timer !== undefined) return
      last = read()
      timer = setInterval(() => void check(), init.intervalMs ?? INTERFACE_POLL_MS)
      timer.unref()
    },
    async stop() {
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
      await running
    },
    check,
    current: () => [...last],
  }
}
