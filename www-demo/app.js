// The demo app: a to-do list whose every change goes through the outbox. The list shown
// is the server's state with the outbox's pending changes laid over it, so the page is
// right offline too; each item shows where its latest change is.
import init, { Outbox } from '../pkg/offline_outbox.js';

const $ = (id) => document.getElementById(id);
await init();
const outbox = await Outbox.open({
  name: 'demo',
  handlers: {},
  retry: { baseDelayMs: 1000, maxDelayMs: 15000 },
  // A request the server has not answered in 10 s is aborted and retried: set the latency
  // switch above that to see it.
  attemptTimeoutMs: 10000,
});

let server = new Map(); // id -> item, as last fetched
let pending = [];
let dead = [];
// The chart's queue depth over the last minute: [time, depth] samples, newest last.
const CHART_MS = 60000;
const depth = [];

function change(op, item) {
  return outbox.enqueue({
    handler: 'http',
    keys: [`item:${item.id}`],
    // Edits of an item not sent yet fold into one request.
    coalesceKey: op === 'put' ? `put:${item.id}` : undefined,
    mutations: {
      method: 'POST', url: '/api/mutate', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ op, ...item }),
    },
  });
}

const bodyOf = (tx) => JSON.parse(tx.mutations?.body ?? '{}');

/** The server's items with pending changes applied, in order, and each item's latest change. */
function view() {
  const items = new Map([...server].map(([id, it]) => [id, { ...it }]));
  const latest = new Map();
  for (const tx of [...pending, ...dead].sort((a, b) => a.seq - b.seq)) {
    const b = bodyOf(tx);
    latest.set(b.id, tx);
    if (tx.status === 'dead') continue;
    if (b.op === 'put') items.set(b.id, { id: b.id, text: b.text, done: Boolean(b.done) });
    else if (b.op === 'delete') items.delete(b.id);
  }
  for (const tx of dead) {
    const b = bodyOf(tx);
    if (b.op === 'put' && !items.has(b.id) && latest.get(b.id) === tx) items.set(b.id, { id: b.id, text: b.text, done: Boolean(b.done) });
  }
  return { items: [...items.values()], latest };
}

function statusOf(tx) {
  if (!tx) return ['synced', 'synced'];
  if (tx.status === 'dead') return ['failed', `failed: ${tx.lastError?.message ?? tx.deadReason}`];
  if (tx.status === 'in-flight') return ['sending', 'sending…'];
  if (tx.lastError && tx.nextAttemptAt > Date.now()) {
    return ['retrying', `retrying in ${Math.ceil((tx.nextAttemptAt - Date.now()) / 1000)} s (${tx.lastError.message})`];
  }
  return ['pending', tx.lastError ? `pending (${tx.lastError.message})` : 'pending'];
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  e.append(...children);
  return e;
}

function button(label, onclick, disabled = false) {
  return el('button', { type: 'button', textContent: label, disabled, onclick: () => Promise.resolve(onclick()).then(refresh, (e) => log(`${label}: ${e.code ?? e.message}`)) });
}

function renderItems() {
  const { items, latest } = view();
  $('items').replaceChildren(...items.map((it) => {
    const tx = latest.get(it.id);
    const [cls, text] = statusOf(tx);
    const check = el('input', { type: 'checkbox', checked: it.done, onchange: () => change('put', { ...it, done: !it.done }).then(refresh) });
    const label = el('span', { textContent: it.text, className: it.done ? 'done-text' : '' });
    const actions = el('td');
    if (cls === 'failed') {
      actions.append(button('retry', () => outbox.retryDead(tx.id)), button('discard', () => outbox.discardDead(tx.id)));
    } else {
      actions.append(
        button('edit', () => {
          const text = prompt('Edit item', it.text);
          return text === null ? undefined : change('put', { ...it, text });
        }),
        button('delete', () => change('delete', { id: it.id })),
      );
    }
    const tr = el('tr', {}, el('td', {}, check), el('td', {}, label), el('td', {}, el('span', { className: `badge ${cls}`, textContent: text })), actions);
    tr.dataset.id = it.id;
    tr.dataset.status = cls;
    return tr;
  }));
}

function renderTables() {
  $('outbox').replaceChildren(...pending.map((tx) => {
    const b = bodyOf(tx);
    const [cls, text] = statusOf(tx);
    return el('tr', {},
      el('td', { textContent: tx.seq }),
      el('td', { textContent: `${b.op} ${b.text ?? b.id}` }),
      el('td', {}, el('span', { className: `badge ${cls}`, textContent: tx.status })),
      el('td', { textContent: tx.attempts }),
      el('td', { textContent: text }),
      el('td', {}, button('cancel', () => outbox.remove(tx.id), tx.status === 'in-flight')));
  }));
  $('dead').replaceChildren(...dead.map((tx) => {
    const b = bodyOf(tx);
    return el('tr', {},
      el('td', { textContent: tx.seq }),
      el('td', { textContent: `${b.op} ${b.text ?? b.id}` }),
      el('td', { textContent: tx.deadReason }),
      el('td', { textContent: tx.lastError?.message ?? '' }),
      el('td', {}, button('retry', () => outbox.retryDead(tx.id)), button('discard', () => outbox.discardDead(tx.id))));
  }));
}

function renderBadges() {
  $('leader').textContent = outbox.isLeader ? 'this tab sends' : 'another tab sends';
  $('leader').className = `badge ${outbox.isLeader ? 'leader' : 'follower'}`;
  $('net').textContent = navigator.onLine ? 'online' : 'offline';
  $('net').className = `badge ${navigator.onLine ? 'online' : 'offline'}`;
  $('depth').textContent = `${pending.length} waiting, ${dead.length} failed`;
}

/** Adds a queue depth sample and redraws the chart. */
function sampleDepth(n) {
  const now = performance.now();
  depth.push([now, n]);
  while (depth[0][0] < now - CHART_MS) depth.shift();
  drawChart(now);
}

/**
 * Draws the depth as steps over the last minute, now at the right edge; the top strip
 * holds the labels, so a full queue's line never runs under them.
 */
function drawChart(now) {
  const c = $('chart');
  const g = c.getContext('2d');
  const { width: w, height: h } = c;
  const top = 20;
  const bottom = h - 4;
  g.fillStyle = '#fff';
  g.fillRect(0, 0, w, h);
  g.strokeStyle = '#e9ecef';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = Math.round(top + ((bottom - top) * i) / 4) + 0.5;
    g.beginPath(); g.moveTo(0, y); g.lineTo(w, y); g.stroke();
  }
  const max = Math.max(4, ...depth.map(([, d]) => d));
  const x = (t) => w - ((now - t) / CHART_MS) * w;
  const y = (d) => bottom - (d / max) * (bottom - top);
  const line = [];
  depth.forEach(([t, d], i) => {
    if (i > 0) line.push([x(t), y(depth[i - 1][1])]);
    line.push([x(t), y(d)]);
  });
  if (line.length) {
    line.push([w, line[line.length - 1][1]]);
    g.beginPath();
    g.moveTo(line[0][0], bottom);
    for (const [px, py] of line) g.lineTo(px, py);
    g.lineTo(w, bottom);
    g.closePath();
    g.fillStyle = 'rgba(51, 154, 240, .25)';
    g.fill();
    g.beginPath();
    line.forEach(([px, py], i) => (i ? g.lineTo(px, py) : g.moveTo(px, py)));
    g.strokeStyle = '#1c7ed6';
    g.lineWidth = 2;
    g.stroke();
  }
  g.fillStyle = '#495057';
  g.font = '12px system-ui';
  g.textAlign = 'left';
  g.fillText(`max ${max} · last minute`, 6, 14);
  g.textAlign = 'right';
  g.fillText(`${depth.length ? depth[depth.length - 1][1] : 0} now`, w - 6, 14);
}

let refreshing = null;
let again = false;
/** Reads the outbox and the server again; calls arriving meanwhile fold into one more pass. */
async function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    do {
      again = false;
      const [p, d, s] = await Promise.all([
        outbox.peek(), outbox.deadLetters(),
        fetch('/api/items').then((r) => r.json()).catch(() => null),
      ]);
      pending = p;
      dead = d;
      if (s) server = new Map(s.items.map((it) => [it.id, it]));
      renderItems();
      renderTables();
      renderBadges();
      sampleDepth(pending.length);
    } while (again);
  })();
  try { await refreshing; } finally { refreshing = null; }
}

function log(line) {
  $('log').prepend(el('div', { textContent: `${new Date().toLocaleTimeString()} ${line}` }));
  while ($('log').childElementCount > 200) $('log').lastChild.remove();
}

outbox.subscribe((e) => {
  if (e.type === 'progress') {
    $('progress').style.visibility = 'visible';
    $('progress').firstElementChild.style.width = `${Math.round((100 * e.done) / Math.max(1, e.total))}%`;
    window.demoProgressSeen = (window.demoProgressSeen ?? 0) + 1;
  } else if (e.type === 'drained') {
    setTimeout(() => { $('progress').style.visibility = 'hidden'; }, 600);
  }
  if (e.type !== 'progress') log(`${e.type}${e.id ? ` ${e.id.slice(0, 8)}` : ''}${e.error ? `: ${e.error.message}` : ''}${e.type === 'leader' ? `: ${e.isLeader}` : ''}`);
  refresh();
});

$('add').onsubmit = async (ev) => {
  ev.preventDefault();
  const text = $('text').value.trim();
  if (!text) return;
  $('text').value = '';
  await change('put', { id: crypto.randomUUID().slice(0, 8), text, done: false });
  refresh();
};

async function settings(patch) {
  await fetch('/api/settings', { method: 'POST', body: JSON.stringify(patch) }).catch(() => {});
}
$('down').onchange = (e) => settings({ down: e.target.checked });
$('failure').onchange = (e) => settings({ failureRate: Number(e.target.value) });
$('latency').onchange = (e) => settings({ latencyMs: Number(e.target.value) });
$('drain').onclick = () => { outbox.notifyOnline(); outbox.drain().then((r) => log(`send now: ${r.sent} sent, ${r.remaining} left`)); };
addEventListener('online', refresh);
addEventListener('offline', refresh);

// Queue depth twice a second for the chart (each refresh adds one too), and countdowns.
setInterval(async () => {
  const s = await outbox.stats().catch(() => null);
  if (s) sampleDepth(s.pending + s.inFlight);
}, 500);
setInterval(() => { renderItems(); renderTables(); renderBadges(); }, 1000);
await refresh();
window.demoOutbox = outbox;
window.demoReady = true;
