import { decodeCertificate } from '@nullmesh/protocol'
import { existingDir } from '../args.js'
import { openVenue, rosterView } from '../venue-tools.js'

/** `nullmesh keys --venue DIR`: the roster with peer ids and certificate validity. */
export async function keys(opts: { venue: string; json?: boolean }): Promise<void> {
  const dir = existingDir(opts.venue, '--venue')
  const bundle = await openVenue(dir)
  const rows = rosterView(bundle).map((r, i) => {
    const cert = decodeCertificate(bundle.roster[i]!.certificate)
    const c = cert.ok ? cert.value.certificate : undefined
    return {
      ...r,
      notBefore: c === undefined ? null : new Date(c.notBefore).toISOString(),
      notAfter: c === undefined ? null : new Date(c.notAfter).toISOString(),
    }
  })
  if (opts.json === true) {
    console.log(
      JSON.stringify({
        venueId: bundle.venueId,
        operatorPublicKey: Buffer.from(bundle.operatorPublicKey).toString('hex'),
        terminals: rows,
      }),
    )
    return
  }
  console.log(`venue ${bundle.venueId}, operator ${Buffer.from(bundle.operatorPublicKey).toString('hex')}`)
  for (const r of rows)
    console.log(
      `${r.id.padEnd(4)} ${r.publicKey}  ${r.peerId}  valid ${r.notBefore?.slice(0, 10)} → ${r.notAfter?.slice(0, 10)}`,
    )
}
