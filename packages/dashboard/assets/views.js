// Render functions of the dashboards: snapshot JSON in, HTML string out. The same module renders the
// first page on the server (Node imports it) and every update in the browser (client.js), so the
// page reads the same with or without script. No dependencies, no DOM access here.

export function escapeHtml(s) {
  return String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
  )
}
const h = escapeHtml

export function money(minor, currency) {
  const v = (minor / 100).toLocaleString('en', { minimumFractionDigits: 2, maximumFractionDigits: 2 })
  return `${v} ${currency}`
}

function amounts(byCurrency) {
  const entries = Object.entries(byCurrency ?? {})
  return entries.length === 0 ? '—' : entries.map(([c, v]) => money(v, c)).join(' · ')
}

export function ago(ts, now) {
  if (ts === null || ts === undefined) return 'never'
  const s = Math.max(0, Math.round((now - ts) / 1000))
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  return `${Math.floor(s / 3600)} h ago`
}

function clock(ts) {
  return new Date(ts).toISOString().slice(11, 19)
}

// a state is always a colour, a symbol and a word: never colour alone
const BADGES = {
  quorum: ['ok', '●', 'QUORUM'],
  isolated: ['bad', '▲', 'ISOLATED'],
  unknown: ['unknown', '?', 'UNKNOWN'],
  ready: ['ok', '●', 'REACHABLE'],
  self: ['ok', '●', 'THIS TERMINAL'],
  disconnected: ['bad', '✕', 'UNREACHABLE'],
  online: ['ok', '●', 'ONLINE'],
  offline: ['warn', '▲', 'OFFLINE'],
  none: ['muted', '–', 'DECLINED'],
  queued: ['warn', '◔', 'QUEUED'],
  forwarded: ['info', '◑', 'FORWARDED'],
  created: ['muted', '○', 'CREATED'],
  released: ['muted', '–', 'RELEASED'],
  processing: ['info', '◑', 'PROCESSING'],
  completed: ['ok', '✓', 'COMPLETED'],
  failed: ['bad', '✕', 'FAILED'],
  voided: ['muted', '⊘', 'VOIDED'],
  critical: ['bad', '✕', 'CRITICAL'],
  warning: ['warn', '▲', 'WARNING'],
  info: ['info', 'i', 'INFO'],
}

export function badge(state, label) {
  const [cls, sym, word] = BADGES[state] ?? ['unknown', '?', String(state).toUpperCase()]
  return `<span class="badge ${cls}" data-state="${h(state)}"><span aria-hidden="true">${sym}</span> ${h(label ?? word)}</span>`
}

function meter(value, max, label) {
  const pct = max > 0 ? Math.min(100, Math.round((value / max) * 100)) : 0
  const cls = value > max ? 'bad' : pct >= 80 ? 'warn' : 'ok'
  return `<div class="meter ${cls}" role="meter" aria-valuenow="${value}" aria-valuemin="0" aria-valuemax="${max}" aria-label="${h(label)}"><div style="width:${pct}%"></div></div><div class="meter-text">${pct} % ${cls === 'bad' ? '— OVER' : cls === 'warn' ? '— high' : ''}</div>`
}

function alertsBlock(alerts, unknowns) {
  const items = alerts.map((a) => `<li class="alert ${a.level}">${badge(a.level)} ${h(a.text)}</li>`).join('')
  const unknown =
    unknowns && unknowns.length > 0
      ? `<div class="unknowns"><h3>What this terminal cannot know right now</h3><ul>${unknowns.map((u) => `<li>${h(u)}</li>`).join('')}</ul></div>`
      : ''
  return `<section class="card wide" id="alerts"><h2>Alerts</h2>${
    items === ''
      ? `<p class="calm">${badge('quorum', 'ALL CLEAR')} no alerts</p>`
      : `<ul class="alerts">${items}</ul>`
  }${unknown}</section>`
}

function paymentsTable(rows, columns) {
  if (rows.length === 0) return '<p class="muted">no payments yet</p>'
  return `<div class="scroll"><table class="payments"><thead><tr>${columns.map((c) => `<th>${h(c.title)}</th>`).join('')}</tr></thead><tbody>${rows
    .map(
      (r) =>
        `<tr data-payment="${h(r.paymentId)}" tabindex="0" title="show the payment's detail">${columns.map((c) => `<td>${c.cell(r)}</td>`).join('')}</tr>`,
    )
    .join('')}</tbody></table></div>`
}

export function renderTerminal(s) {
  const now = s.at
  const self = s.terminals.find((t) => t.self)
  const header = `<header class="top">
<h1>${h(s.venueId)} <span class="muted">· venue dashboard served by</span> ${h(s.self)}</h1>
<div class="big-states">${badge(s.mode)} ${badge(s.online ? 'online' : 'offline', s.online ? 'CENTRAL ONLINE' : 'CENTRAL OFFLINE')}</div>
<p class="muted small">policy v${h(s.policyVersion)} · quorum ${h(s.quorum)} of ${h(s.roster)} · last word from central ${h(ago(s.lastCentralAt, now))} · updated ${h(clock(now))} UTC</p>
</header>`

  const tiles = `<section class="tiles">
<div class="tile"><div class="label">terminals reachable</div><div class="num">${s.peersReady + 1}<span class="of">/${s.roster}</span></div></div>
<div class="tile"><div class="label">queued here</div><div class="num">${self ? self.queue.count : 0}</div><div class="sub">${h(amounts(self?.queue.amountsByCurrency))}</div></div>
<div class="tile"><div class="label">settled (completed / failed)</div><div class="num">${s.settlement.completed}<span class="of"> / ${s.settlement.failed}</span></div><div class="sub">${s.settlement.forwarded} at central, settling</div></div>
<div class="tile"><div class="label">alerts</div><div class="num ${s.alerts.some((a) => a.level === 'critical') ? 'bad-text' : ''}">${s.alerts.length}</div></div>
</section>`

  const rows = s.terminals
    .map(
      (t) => `<tr data-terminal="${h(t.id)}" data-mode="${h(t.mode)}" data-link="${h(t.link)}">
<th scope="row">${h(t.id)}${t.self ? ' <span class="muted">(this)</span>' : ''}</th>
<td>${badge(t.mode)}<div class="note">${h(t.modeNote)}</div></td>
<td>${badge(t.link)}</td>
<td>${t.self ? `${badge(t.online ? 'online' : 'offline')}` : '<span class="muted">not known here</span>'}</td>
<td class="numcell">${t.queue.count}<div class="note">${h(amounts(t.queue.amountsByCurrency))}</div></td>
<td class="numcell">${t.approvals}<div class="note">${t.isolatedApprovals} isolated</div></td>
<td>${h(ago(t.lastEventAt, now))}</td>
</tr>`,
    )
    .join('')
  const terminals = `<section class="card wide" id="terminals"><h2>Terminals</h2>
<div class="scroll"><table class="terminals"><thead><tr><th>terminal</th><th>mode</th><th>mesh link</th><th>central</th><th>offline queue</th><th>approvals seen</th><th>last event</th></tr></thead><tbody>${rows}</tbody></table></div>
<p class="note">Peers' queues are their offline approvals this terminal has received and central has not yet confirmed.</p></section>`

  const exposure = `<section class="card" id="exposure"><h2>Offline exposure</h2>${s.exposure
    .map(
      (
        e,
      ) => `<div class="exp"><div class="label">venue offline exposure (${h(e.currency)}, queue window)</div>
<div class="num-m">${h(money(e.venueMinor, e.currency))} <span class="of">of cap ${h(money(e.venueCapMinor, e.currency))}</span></div>${meter(e.venueMinor, e.venueCapMinor, 'venue exposure against its cap')}
<div class="label">isolated approvals not yet confirmed by central</div>
<div class="num-m">${h(money(e.isolatedMinor, e.currency))} <span class="of">of bound ${h(money(e.boundMinor, e.currency))}</span></div>${meter(e.isolatedMinor, e.boundMinor, 'isolated approvals against the reported bound')}
<p class="note">bound = what all terminals together could approve while isolated (${h(money(e.isolatedDeviceCapMinor, e.currency))} each)</p></div>`,
    )
    .join('')}</section>`

  const codes = Object.entries(s.declinesByCode)
  const declines = `<section class="card" id="declines"><h2>Declines here, by code</h2>${
    codes.length === 0
      ? '<p class="muted">none</p>'
      : `<table class="codes"><tbody>${codes.map(([c, n]) => `<tr><th scope="row"><code>${h(c)}</code></th><td class="numcell">${n}</td></tr>`).join('')}</tbody></table>`
  }<p class="note">A peer's declines stay on that peer; approvals of the whole venue are in the chart.</p></section>`

  const recent = `<section class="card wide" id="payments"><h2>Recent payments at ${h(s.self)}</h2>${paymentsTable(
    s.recent,
    [
      { title: 'time', cell: (p) => h(clock(p.createdAt)) },
      { title: 'amount', cell: (p) => `<span class="amount">${h(money(p.amountMinor, p.currency))}</span>` },
      {
        title: 'decision',
        cell: (p) =>
          p.status.startsWith('approved')
            ? badge('completed', `APPROVED · ${p.mode}`)
            : `${badge('failed', 'DECLINED')} <code>${h(p.declineCode ?? '')}</code>`,
      },
      {
        title: 'settlement',
        cell: (p) =>
          `${badge(p.settlement)}${p.syncDeclineCode ? ` <code>${h(p.syncDeclineCode)}</code>` : ''}`,
      },
      { title: 'payment', cell: (p) => `<code>${h(p.paymentId.slice(0, 10))}…</code>` },
    ],
  )}<p class="note">Settlement: queued (here) → forwarded (at central) → completed / failed. Tap a row for its proof and barrier acks.</p></section>`

  return `${header}${alertsBlock(s.alerts, s.unknowns)}${tiles}${terminals}<div class="grid2">${exposure}${declines}</div>${recent}`
}

export function renderCentral(s) {
  const now = s.at
  const header = `<header class="top"><h1>nullmesh central <span class="muted">· settlement dashboard</span></h1>
<p class="muted small">${s.venues.length} venue(s) · ${s.events} events merged · updated ${h(clock(now))} UTC</p></header>`
  const alerts = []
  for (const v of s.venues) {
    if (v.summary.partitionLosses > 0)
      alerts.push({
        level: 'critical',
        text: `${v.venueId}: ${v.summary.partitionLosses} partition loss(es), ${amounts(v.summary.partitionLossMinor)} approved twice across a partition (settled once).`,
      })
    const failed = v.summary.settled.failed
    if (failed > 0)
      alerts.push({ level: 'warning', text: `${v.venueId}: ${failed} payment(s) failed at settlement.` })
  }
  if (s.webhooks.deadLetters > 0)
    alerts.push({
      level: 'critical',
      text: `${s.webhooks.deadLetters} webhook delivery(ies) gave up (dead letters).`,
    })
  const venues = s.venues
    .map((v) => {
      const st = v.summary.byStatus
      const statusRow = ['queued', 'processing', 'completed', 'failed', 'voided', 'released', 'created']
        .map((k) => `<div class="st">${badge(k)}<div class="num-m">${st[k] ?? 0}</div></div>`)
        .join('')
      const codes = Object.entries(v.summary.failedByCode)
      return `<section class="card wide venue" data-venue="${h(v.venueId)}"><h2>${h(v.venueId)} <span class="muted">· ${v.terminals} terminals · ${v.summary.payments} payments</span></h2>
<div class="statuses">${statusRow}</div>
<div class="grid2"><div><div class="label">offline exposure (committed, not yet settled)</div><div class="num-m">${h(amounts(v.summary.offlineExposureMinor))}</div>
<div class="label">offline losses (committed, then failed)</div><div class="num-m">${h(amounts(v.summary.offlineLossMinor))}</div>
<div class="label">partition losses</div><div class="num-m ${v.summary.partitionLosses > 0 ? 'bad-text' : ''}">${v.summary.partitionLosses} <span class="of">${h(amounts(v.summary.partitionLossMinor))}</span></div></div>
<div><div class="label">failed by syncDeclineCode</div>${
        codes.length === 0
          ? '<p class="muted">none</p>'
          : `<table class="codes"><tbody>${codes.map(([c, n]) => `<tr><th scope="row"><code>${h(c)}</code></th><td class="numcell">${n}</td></tr>`).join('')}</tbody></table>`
      }</div></div></section>`
    })
    .join('')
  const wh = s.webhooks
  const webhooks = `<section class="card wide" id="webhooks"><h2>Webhooks</h2>
<div class="tiles"><div class="tile"><div class="label">endpoints</div><div class="num">${wh.endpoints.length}</div></div>
<div class="tile"><div class="label">deliveries pending</div><div class="num">${wh.pending}</div><div class="sub">${wh.oldestPendingAt ? `oldest ${h(ago(wh.oldestPendingAt, now))}` : 'none waiting'}</div></div>
<div class="tile"><div class="label">dead letters</div><div class="num ${wh.deadLetters > 0 ? 'bad-text' : ''}">${wh.deadLetters}</div></div></div>
${wh.endpoints.length === 0 ? '<p class="muted">no endpoint registered (POST /v1/webhooks with the admin token)</p>' : `<ul>${wh.endpoints.map((e) => `<li><code>${h(e.id)}</code> → ${h(e.url)}</li>`).join('')}</ul>`}</section>`
  const recent = `<section class="card wide" id="payments"><h2>Recent payments</h2>${paymentsTable(s.recent, [
    { title: 'presented', cell: (p) => h(clock(p.queuedAt)) },
    { title: 'venue · terminal', cell: (p) => `${h(p.venue)} · ${h(p.terminal)}` },
    { title: 'amount', cell: (p) => `<span class="amount">${h(money(p.amountMinor, p.currency))}</span>` },
    { title: 'mode', cell: (p) => h(p.mode ?? '—') },
    {
      title: 'status',
      cell: (p) =>
        `${badge(p.status)}${p.syncDeclineCode || p.declineCode ? ` <code>${h(p.syncDeclineCode ?? p.declineCode)}</code>` : ''}${p.partitionLoss ? ` ${badge('critical', 'PARTITION LOSS')}` : ''}`,
    },
    { title: 'payment', cell: (p) => `<code>${h(p.paymentId.slice(0, 10))}…</code>` },
  ])}<p class="note">created → queued → processing → completed | failed (syncDeclineCode). Tap a row for the detail.</p></section>`
  return `${header}${alertsBlock(alerts, [])}${venues}${webhooks}${recent}`
}

/** A payment's detail (the terminal's GET /v1/payments/:id or central's). */
export function renderDetail(p) {
  const rows = []
  const add = (k, v) => rows.push(`<tr><th scope="row">${h(k)}</th><td>${v}</td></tr>`)
  add('payment id', `<code class="wrap">${h(p.paymentId)}</code>`)
  if (p.amountMinor !== undefined) add('amount', h(money(p.amountMinor, p.currency)))
  if (p.status !== undefined) {
    const state =
      p.status in BADGES
        ? p.status
        : /^approved/.test(p.status)
          ? 'completed'
          : /^declined/.test(p.status)
            ? 'failed'
            : 'info'
    add('status', badge(state, p.status.replace('_', ' ').toUpperCase()))
  }
  if (p.mode !== undefined) add('mode', h(p.mode))
  if (p.declineCode) add('decline code', `<code>${h(p.declineCode)}</code>`)
  if (p.nullifier) add('nullifier', `<code>${h(p.nullifier.slice(0, 16))}…</code>`)
  if (p.barrier)
    add(
      'barrier',
      `${h(p.barrier.acks)} acks of quorum ${h(p.barrier.quorum)} in ${h(Math.round(p.barrier.ms))} ms`,
    )
  if (p.proof) add('proof (87 bytes, base64url)', `<code class="wrap">${h(p.proof)}</code>`)
  if (p.settlement)
    add(
      'settlement',
      `${badge(p.settlement.status)}${p.settlement.syncDeclineCode ? ` <code>${h(p.settlement.syncDeclineCode)}</code>` : ''}`,
    )
  if (p.syncDeclineCode) add('sync decline code', `<code>${h(p.syncDeclineCode)}</code>`)
  if (p.origin) add('origin terminal key', `<code>${h(String(p.origin).slice(0, 16))}…</code>`)
  if (p.partitionLoss) add('partition loss', badge('critical', 'YES'))
  if (p.statuses) add('history', h(p.statuses.map((x) => x.status).join(' → ')))
  return `<h2>Payment</h2><table class="detail"><tbody>${rows.join('')}</tbody></table>`
}
