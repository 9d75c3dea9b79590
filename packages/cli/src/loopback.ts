/**
 * One loopback address per terminal for harnesses that run a venue on one machine (the sim, the
 * `scale` bench figure): terminal i (0-based) listens on 127.0.1.(i+1), then 127.0.2.x, … — one
 * host per terminal, as on a LAN, with traffic that never leaves loopback (Linux routes all of
 * 127.0.0.0/8 to it). The mesh dials from the address it listens on (loopbackDialSource), so per-host
 * limits see distinct hosts. 127.0.0.x is left to everything else on the machine.
 */
export function loopbackHost(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= 254 * 254)
    throw new RangeError(`no loopback host for terminal index ${index}`)
  return `127.0.${1 + Math.floor(index / 254)}.${1 + (index % 254)}`
}
