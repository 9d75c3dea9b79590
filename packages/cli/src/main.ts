import { Command, CommanderError, Option } from 'commander'
import {
  collect,
  durationArg,
  durationListArg,
  groupSizeArg,
  hostPortArg,
  intArg,
  multiaddrArg,
  numberArg,
  pgUrlArg,
  urlArg,
} from './args.js'
import { reportError } from './errors.js'
import { SCENARIOS } from './sim/options.js'

export const VERSION = '0.1.0'

/** Build the `nullmesh` command tree. Actions load their modules lazily, so `--help` stays fast. */
export function buildProgram(): Command {
  const program = new Command('nullmesh')
    .description(
      'peer-to-peer nullifier mesh: offline card payments across a venue’s terminals, settled exactly once',
    )
    .version(VERSION, '-V, --version')
    .showSuggestionAfterError(true)
    .configureHelp({ sortSubcommands: false, showGlobalOptions: false })
    .exitOverride()
    // parent options only before a subcommand: `central import FILE --data D` is import's --data
    .enablePositionalOptions()
    .configureOutput({
      // one line: `nullmesh: error: unknown option '--x' (see --help)`
      outputError: (str, write) => write(`nullmesh: ${str.trim().replace(/\s*\n\s*/g, ' ')} (see --help)\n`),
    })

  // ── venue ────────────────────────────────────────────────────────────────────────────────────
  const venue = program.command('venue').description('create and inspect venue bundles')
  venue
    .command('init')
    .description(
      'generate a venue offline: operator key, swarm key (pnet PSK), hashing key, policy, terminal keys and certificates',
    )
    .requiredOption('-n, --terminals <n>', 'number of terminals to enroll', intArg(1, 64))
    .requiredOption('-o, --out <dir>', 'directory to write the venue into (created if missing)')
    .option('--venue <id>', 'venue id (letters, digits, . _ -; default demo-venue)')
    .option('--force', 'replace an existing venue there (new keys: its terminals are locked out)')
    .option(
      '--group-size <g>',
      "terminals in each card's custodian group (policy barrier.groupSize; odd; default 5)",
      groupSizeArg,
    )
    .option('--json', 'print the result as JSON')
    .action(async (opts) => exit(await (await import('./commands/venue.js')).venueInit(opts)))
  venue
    .command('show')
    .description('print a venue bundle’s id, policy summary and roster')
    .requiredOption('--venue <dir>', 'venue directory')
    .option('--json', 'print JSON')
    .action(async (opts) => exit(await (await import('./commands/venue.js')).venueShow(opts)))

  venue
    .command('revoke')
    .description(
      'revoke a terminal: sign a revocation with the operator key (issue 17); its events and acks signed from --effective on stop counting',
    )
    .requiredOption('--venue <dir>', 'venue directory (with operator.key.json)')
    .requiredOption('--terminal <id>', 'the terminal’s roster id (e.g. T2) or public key')
    .requiredOption('--reason <text>', 'why (kept with the revocation, at most 200 characters)')
    .option('--effective <time>', 'effective time: ISO 8601 or ms since the epoch (default now)')
    .option('--out <file>', 'write the signed revocation to this file')
    .option('--central <url>', 'publish it to central (which hands it to the venue’s terminals)', urlArg)
    .option('--json', 'print JSON')
    .action(async (opts) => exit(await (await import('./commands/revoke.js')).venueRevoke(opts)))

  // ── terminal ─────────────────────────────────────────────────────────────────────────────────
  program
    .command('terminal')
    .description('run a terminal daemon (mesh node + local payment API) until SIGINT/SIGTERM')
    .requiredOption('--venue <dir>', 'venue directory (from `nullmesh venue init`)')
    .requiredOption('--id <id>', 'this terminal’s id in the roster, e.g. T1')
    .option('--data <dir>', 'data directory (ledger, state); default ./data/<id>')
    .option(
      '--listen <multiaddr...>',
      'libp2p listen multiaddrs (default /ip4/127.0.0.1/tcp/0)',
      collect(multiaddrArg),
    )
    .option('--api <host:port>', 'local HTTP API address (default 127.0.0.1:0 = any free port)', hostPortArg)
    .option(
      '--peers <multiaddr...>',
      'static peers: multiaddrs ending in /p2p/<peer id>',
      collect(multiaddrArg),
    )
    .addOption(
      new Option(
        '--discovery <kind>',
        'peer discovery: static (--peers only) or mdns (LAN multicast; only inside a network namespace on shared machines)',
      )
        .choices(['static', 'mdns'])
        .default('static'),
    )
    .option('--central <url>', 'central service URL (payments are authorised online when reachable)', urlArg)
    .option('--token <token>', 'bearer token for the local API (default: generated and printed)')
    .addOption(
      new Option('--mode <mode>', 'decision mode').choices(['mesh', 'floor-limit-only']).default('mesh'),
    )
    .addOption(
      new Option(
        '--stop-on-stdin-end',
        'stop when stdin closes (used by `nullmesh sim`: no orphans)',
      ).hideHelp(),
    )
    .addHelpText(
      'after',
      '\nPrints one JSON line {"ready":true,...} on stdout when ready; logs go to stderr (DEBUG=nullmesh:* for more).\nSignals: SIGINT/SIGTERM stop gracefully; SIGUSR1 cuts the node off at the mesh layer (partition), SIGUSR2 heals it.',
    )
    .action(async (opts) => exit(await (await import('./commands/terminal.js')).runTerminal(opts)))

  // ── central ──────────────────────────────────────────────────────────────────────────────────
  const central = program
    .command('central')
    .description('run the central dedup and settlement service (or `central import FILE`)')
    .option('--data <dir>', 'data directory: the embedded store (PGlite) and the simulated issuer journal')
    .option(
      '--store <url>',
      'a PostgreSQL server instead of the embedded store: postgres://user:pass@host:port/db',
      pgUrlArg,
    )
    .option('--listen <host:port>', 'HTTP address (default 127.0.0.1:0)', hostPortArg)
    .option(
      '--venues <dir...>',
      'venue directories this service settles for',
      collect((v: string) => v),
    )
    .option('--issuer-seed <seed>', 'seed of the simulated issuer (deterministic declines and codes)')
    .option(
      '--decline-rate <rate>',
      'share of payments the simulated issuer declines (0..1)',
      numberArg(0, 1),
    )
    .option(
      '--lost-or-stolen <cardKeyHex...>',
      'card keys the simulated issuer reports lost or stolen',
      collect((v: string) => v),
    )
    .option(
      '--admin-token <token>',
      'bearer token for admin endpoints (webhooks, deny list); without one they answer 403',
    )
    .option(
      '--webhook-retry <delays>',
      'webhook retry schedule: delays between attempts, e.g. 5s,30s,2m,1h (default 15 attempts over about 3 days; the endpoint is disabled when the last fails)',
      durationListArg,
    )
    .option(
      '--webhook-timeout <duration>',
      'one webhook delivery attempt may take this long (default 10s)',
      durationArg,
    )
    .option(
      '--event-retention <duration>',
      'how long the event log keeps events, e.g. 30d (default; longer while an enabled endpoint waits for one)',
      durationArg,
    )
    .addOption(
      new Option('--stop-on-stdin-end', 'stop when stdin closes (used by `nullmesh sim`)').hideHelp(),
    )
    .addHelpText('after', '\nPrints one JSON line {"ready":true,"url":...} on stdout when ready.')
    .action(async (opts) => exit(await (await import('./commands/central.js')).runCentral(opts)))
  central
    .command('import')
    .description('merge a ledger export file (from `nullmesh ledger export`) exactly like an online sync')
    .argument('<file>', 'ledger export file')
    .option('--data <dir>', 'central data directory (embedded store)')
    .option('--store <url>', 'PostgreSQL server (postgres://…) instead of the embedded store', pgUrlArg)
    .requiredOption(
      '--venues <dir...>',
      'venue directories',
      collect((v: string) => v),
    )
    .option('--json', 'print the result as JSON')
    .action(async (file, opts) =>
      exit(await (await import('./commands/central.js')).centralImport(file, opts)),
    )
  central
    .command('report')
    .description(
      'payments by venue and status, settled, failed by code, offline exposure and losses: one SQL query over the report_payments view',
    )
    .option('--data <dir>', 'central data directory (embedded store; central stopped)')
    .option('--store <url>', 'PostgreSQL server (postgres://…); central may be running', pgUrlArg)
    .option('--venue <id>', 'only this venue')
    .option('--json', 'print JSON')
    .action(async (opts) => exit(await (await import('./commands/central.js')).centralReport(opts)))

  // ── webhooks ─────────────────────────────────────────────────────────────────────────────────
  const webhooks = program
    .command('webhooks')
    .description('develop against central’s webhooks: forward its events to a local server, send test events')
  webhooks
    .command('listen')
    .description(
      'forward every new event of central’s event log, signed, to a local URL; one line per event with the status it got',
    )
    .option('--central <url>', 'central URL (default $NULLMESH_CENTRAL)', urlArg)
    .option('--token <token>', 'central’s admin token (default $NULLMESH_ADMIN_TOKEN)')
    .requiredOption(
      '--forward-to <url>',
      'where to POST each event, e.g. http://localhost:3000/hooks',
      urlArg,
    )
    .option('--events <types>', 'only these types, comma-separated (default: every type)')
    .option('--secret <secret>', 'sign with this secret (default: a new one, printed at start)')
    .option('--poll <duration>', 'how often to read the event log (default 500ms)', durationArg)
    .option('--json', 'one JSON object per event instead of a line of text')
    .addHelpText(
      'after',
      `
Reads GET /v1/events (the event log) and POSTs each new event exactly as central would: the same
body, a nullmesh-signature header made with the listen secret (verify it with constructEvent from
@nullmesh/client). Prints "Ready" and the secret on stderr, then one line per event on stdout:
  2026-12-03T10:00:00.000Z  payment.completed  evt_…  → 200
Stops on Ctrl-C. Central does not have to reach this machine: the events are pulled.`,
    )
    .action(async (opts) => exit(await (await import('./commands/webhooks.js')).webhooksListen(opts)))
  webhooks
    .command('trigger')
    .description('have central sign and send a test event of this type to a registered endpoint now')
    .argument('<type>', 'payment.queued, payment.processing, payment.completed or payment.failed')
    .requiredOption('--endpoint <id>', 'the webhook endpoint id (wh_…)')
    .option('--central <url>', 'central URL (default $NULLMESH_CENTRAL)', urlArg)
    .option('--token <token>', 'central’s admin token (default $NULLMESH_ADMIN_TOKEN)')
    .option('--json', 'print central’s answer as JSON')
    .addHelpText(
      'after',
      `
The event is made up (a test payment, "test": true), signed with the endpoint's secrets and sent
once, now, not through the outbox and not into the event log. Exit code 0 when the endpoint
answered 2xx, 1 otherwise.`,
    )
    .action(async (type, opts) =>
      exit(await (await import('./commands/webhooks.js')).webhooksTrigger(type, opts)),
    )

  // ── client commands ─────────────────────────────────────────────────────────────────────────
  program
    .command('status')
    .description('show a running terminal’s status (connectivity, mesh mode, peers, queue)')
    .option('--api <url>', 'terminal API URL (default $NULLMESH_API or http://127.0.0.1:8080)', urlArg)
    .option('--token <token>', 'bearer token (default $NULLMESH_TOKEN)')
    .option('--json', 'print JSON')
    .action(async (opts) => exit(await (await import('./commands/client.js')).status(opts)))
  program
    .command('pay')
    .description('make one payment against a running terminal')
    .option('--api <url>', 'terminal API URL (default $NULLMESH_API or http://127.0.0.1:8080)', urlArg)
    .option('--token <token>', 'bearer token (default $NULLMESH_TOKEN)')
    .requiredOption('--card <token>', 'card token (e.g. a test PAN)')
    .requiredOption('--amount <minor>', 'amount in minor units (cents)', intArg(1))
    .option('--currency <code>', 'ISO 4217 currency', 'EUR')
    .addOption(
      new Option('--method <method>', 'payment method')
        .choices(['chip', 'contactless', 'nfc', 'qr', 'swipe'])
        .default('contactless'),
    )
    .option('--idempotency-key <key>', 'idempotency key (default: random)')
    .option(
      '--counter <n>',
      'card transaction counter (EMV ATC); replays of one counter collide mesh-wide',
      intArg(0),
    )
    .addOption(
      new Option('--offline-behavior <b>', 'online/offline preference').choices([
        'prefer_online',
        'require_online',
        'force_offline',
      ]),
    )
    .option('--json', 'print the API response as JSON')
    .action(async (opts) => exit(await (await import('./commands/client.js')).pay(opts)))

  // ── ledger ───────────────────────────────────────────────────────────────────────────────────
  const ledger = program
    .command('ledger')
    .description('inspect or export a terminal’s ledger (terminal stopped)')
  ledger
    .command('inspect')
    .description('counts by event type, commit mode and origin; payments by status')
    .requiredOption('--data <dir>', 'terminal data directory (or the ledger directory itself)')
    .option('--venue <dir>', 'venue directory, to name origins by terminal id')
    .option('--json', 'print JSON')
    .action(async (opts) => exit(await (await import('./commands/ledger.js')).ledgerInspect(opts)))
  ledger
    .command('export')
    .description('write every event of a ledger to a file for `nullmesh central import`')
    .requiredOption('--data <dir>', 'terminal data directory (or the ledger directory itself)')
    .requiredOption('--out <file>', 'output file')
    .option('--venue <dir>', 'venue directory (records the venue id and terminal in the file)')
    .option('--json', 'print the result as JSON')
    .action(async (opts) => exit(await (await import('./commands/ledger.js')).ledgerExport(opts)))

  // ── keys ─────────────────────────────────────────────────────────────────────────────────────
  program
    .command('keys')
    .description('list a venue’s enrolled terminals: id, public key, libp2p peer id, certificate validity')
    .requiredOption('--venue <dir>', 'venue directory')
    .option('--json', 'print JSON')
    .action(async (opts) => exit(await (await import('./commands/keys.js')).keys(opts)))

  // ── sim ──────────────────────────────────────────────────────────────────────────────────────
  program
    .command('sim')
    .description(
      'simulate a venue on this machine: central + N terminal processes, a realistic payment load, a summary',
    )
    .option('-t, --terminals <n>', 'terminal processes', intArg(1, 32), 5)
    .option(
      '--group-size <g>',
      "terminals in each card's custodian group (odd; default the policy's 5): below --terminals, cards have groups",
      groupSizeArg,
    )
    .option('-c, --cards <n>', 'cards in the pool', intArg(1, 100_000), 60)
    .option('-p, --payments <n>', 'payments to make', intArg(1, 1_000_000), 300)
    .option('-r, --rate <perSecond>', 'payments per second', numberArg(0.1, 5_000), 30)
    .addOption(
      new Option('--scenario <name>', 'what to simulate')
        .choices(SCENARIOS as unknown as string[])
        .default('normal'),
    )
    .option('--seed <seed>', 'seed for cards, amounts and timing (default: random, printed)')
    .option(
      '--offline <share>',
      'share of the load during which the venue has no link to central (0..1)',
      numberArg(0, 1),
      0.4,
    )
    .option(
      '--settle-timeout <ms>',
      'how long to wait for sync and settlement after the load',
      intArg(0),
      30_000,
    )
    .option(
      '--central-store <url>',
      "central's store: a PostgreSQL server (postgres://…); default the embedded PGlite in the temp directory",
      pgUrlArg,
    )
    .option('--json', 'print the summary as one JSON object on the last line of stdout')
    .option('--keep', 'keep the temporary venue and data directories (and logs)')
    .option('--dir <dir>', 'where to create the temporary directory (default: the OS temp dir)')
    .option('--no-progress', 'no live progress on stderr')
    .option(
      '--hold',
      'after the load, keep the venue running (dashboards up) until Ctrl-C, then stop and summarise',
    )
    .addHelpText(
      'after',
      `
Scenarios:
  normal      ordinary payments plus some over the floor limit, deny-listed / blocked-BIN cards,
              replays of a credential at another terminal and POS retries
  double-tap  the normal mix, and bursts: a card tapped with one credential at every terminal at
              the same instant (at most one may be approved), then with fresh credentials, offline,
              several terminals at once, more taps and more money than cardCapCount and
              cardCapMinor allow (no card may end over either cap)
  partition   the normal mix; one terminal is cut off at the mesh layer mid-run, then healed;
              duplicates and cap overruns are allowed only through isolated approvals, and those
              only within the partition exposure bound

Summary figures (besides the counts): overCapCards / overCountCards (cards over the amount / count
cap in a card window), duplicateApprovals, isolatedExposureMinor vs exposureBoundMinor,
settledNotApproved (settled at central under an id no client saw approved), lost, maxDecisionMs
(longest tap → decision) vs tapBudgetMs. Any of the first five that breaks its invariant, or a
lost payment, is a violation.

Exit codes: 0 ok · 1 a process crashed or the run failed · 3 an invariant was violated · 130 interrupted`,
    )
    .action(async (opts) => exit(await (await import('./sim/sim.js')).simCommand(opts)))

  return program
}

/** An action's numeric result becomes the exit code; daemons exit explicitly (libp2p timers linger). */
function exit(code: unknown): void {
  if (typeof code === 'number') process.exitCode = code
}

/** Run the CLI. Returns the exit code (undefined: leave it to the command). */
export async function main(argv: string[]): Promise<number | undefined> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
    return undefined
  } catch (err: unknown) {
    if (err instanceof CommanderError) {
      // commander already printed the message (or help / version, which exit 0)
      return err.exitCode === 0 ? 0 : 2
    }
    return reportError(err)
  }
}
