// Attribute a V8 CPU profile (.cpuprofile, as the idle figure writes them): self time by package
// (the node_modules package or workspace package a function's script belongs to) and by function.
import { readFile } from 'node:fs/promises'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface ProfileSummary {
  /** the profile's wall time, ms */
  wallMs: number
  /** sampled time not idle, ms */
  busyMs: number
  byPackage: { name: string; ms: number }[]
  byFunction: { name: string; ms: number }[]
  /** time with the function on the stack (callers included once per sample): what a timer's callback costs */
  inclusive: { name: string; ms: number }[]
}

/** '@libp2p/yamux', 'mesh', 'node:internal', '(garbage collector)', … */
export function packageOf(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native)'
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/')
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  const ws = /\/packages\/([^/]+)\//.exec(url)
  if (ws) return `@nullmesh/${ws[1]}`
  if (url.startsWith('node:')) return url.split('/')[0]!.replace(/^node:internal.*/, 'node:internal')
  return url
}

export async function summarizeProfile(path: string, top = 25): Promise<ProfileSummary> {
  const p = JSON.parse(await readFile(path, 'utf8')) as CpuProfile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  // the profiler's own start and stop (inspector.Session.post) are not the terminal's work
  const profiling = (id: number): boolean => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at))
      if (byId.get(at)!.callFrame.url === 'node:inspector') return true
    return false
  }
  const self = new Map<number, number>()
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!
    if (profiling(id)) continue
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0))
  }
  const keyOf = (n: ProfileNode): string => {
    const { functionName, url, lineNumber } = n.callFrame
    return `${functionName || '(anonymous)'} ${packageOf(url, functionName)} ${url.split('/').at(-1) ?? ''}:${lineNumber + 1}`
  }
  const incl = new Map<string, number>()
  for (const [id, us] of self) {
    if (byId.get(id)!.callFrame.functionName === '(idle)') continue
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = keyOf(byId.get(at)!)
      if (seen.has(k)) continue
      seen.add(k)
      incl.set(k, (incl.get(k) ?? 0) + us)
    }
  }
  const pkgs = new Map<string, number>()
  const fns = new Map<string, number>()
  let busy = 0
  for (const [id, us] of self) {
    const n = byId.get(id)!
    const { functionName, url, lineNumber } = n.callFrame
    if (functionName === '(idle)') continue
    busy += us
    const pkg = packageOf(url, functionName)
    pkgs.set(pkg, (pkgs.get(pkg) ?? 0) + us)
    const file = url.split('/').slice(-1)[0] ?? ''
    const key = `${functionName || '(anonymous)'} ${pkg} ${file}:${lineNumber + 1}`
    fns.set(key, (fns.get(key) ?? 0) + us)
  }
  const sorted = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 100) / 10 }))
  return {
    wallMs: Math.round((p.endTime - p.startTime) / 1000),
    busyMs: Math.round(busy / 1000),
    byPackage: sorted(pkgs),
    byFunction: sorted(fns),
    inclusive: sorted(incl),
  }
}
