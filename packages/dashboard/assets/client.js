// The dashboards' only script: renders each snapshot that arrives over Server-Sent Events with the
// same functions the server used for the first page, keeps the uPlot chart up to date and shows a
// payment's detail on demand. The login cookie authorises every request (same origin).
import { renderCentral, renderDetail, renderTerminal } from './views.js'

const body = document.body
const kind = body.dataset.kind
const view = document.getElementById('view')
const live = document.getElementById('live')
const liveText = document.getElementById('live-text')
const render = kind === 'central' ? renderCentral : renderTerminal
let chart
let current = JSON.parse(document.getElementById('snapshot').textContent)

function chartData(s) {
  const m = s.perMinute
  return [m.minutes.map((t) => t / 1000), m.approvedVenue, m.approvedHere, m.declinedHere]
}

function drawChart(s) {
  const box = document.getElementById('chart')
  if (kind !== 'terminal' || !box || typeof window.uPlot !== 'function') return
  const width = Math.max(280, box.clientWidth)
  if (chart === undefined) {
    chart = new window.uPlot(
      {
        width,
        height: 220,
        series: [
          {},
          { label: 'approved (venue)', stroke: '#1a7f37', width: 3, fill: 'rgba(26,127,55,0.12)' },
          { label: 'approved here', stroke: '#0969da', width: 2 },
          { label: 'declined here', stroke: '#cf222e', width: 2, dash: [6, 4] },
        ],
        axes: [{}, { label: 'per minute' }],
      },
      chartData(s),
      box,
    )
  } else {
    chart.setData(chartData(s))
  }
}

function show(s) {
  current = s
  view.innerHTML = render(s)
  drawChart(s)
}

function setLive(ok, text) {
  live.classList.toggle('down', !ok)
  liveText.textContent = text
}

show(current)
const source = new EventSource(body.dataset.stream)
source.addEventListener('snapshot', (e) => {
  show(JSON.parse(e.data))
  setLive(true, `live · ${new Date(current.at).toISOString().slice(11, 19)} UTC`)
})
source.addEventListener('open', () => setLive(true, 'live'))
source.addEventListener('error', () =>
  setLive(false, 'connection lost — retrying (the page shows the last state)'),
)

window.addEventListener('resize', () => {
  const box = document.getElementById('chart')
  if (chart !== undefined && box) chart.setSize({ width: Math.max(280, box.clientWidth), height: 220 })
})

async function openDetail(id) {
  const url = kind === 'central' ? `/v1/dashboard/payments/${id}` : `/v1/payments/${id}`
  const dialog = document.getElementById('detail')
  const out = document.getElementById('detail-body')
  try {
    const res = await fetch(url, { credentials: 'same-origin' })
    const json = await res.json()
    out.innerHTML = res.ok ? renderDetail(json) : `<p>${json.message ?? res.status}</p>`
  } catch (err) {
    out.textContent = `cannot load the payment: ${err}`
  }
  dialog.showModal()
}

view.addEventListener('click', (e) => {
  const row = e.target.closest('tr[data-payment]')
  if (row?.dataset.payment) void openDetail(row.dataset.payment)
})
view.addEventListener('keydown', (e) => {
  const row = e.target.closest('tr[data-payment]')
  if (row?.dataset.payment && (e.key === 'Enter' || e.key === ' ')) {
    e.preventDefault()
    void openDetail(row.dataset.payment)
  }
})
