import init, { Outbox } from '../pkg/offline_outbox.js';

const $ = (id) => document.getElementById(id);
await init();
const outbox = await Outbox.open({ name: 'demo', handlers: {}, retry: { baseDelayMs: 1000, maxDelayMs: 30000 } });

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function describe(tx) {
  if (tx.status === 'in-flight') return 'sending';
  if (tx.lastError && tx.nextAttemptAt > Date.now()) {
    return `retrying in ${Math.ceil((tx.nextAttemptAt - Date.now()) / 1000)} s (${tx.lastError.message})`;
  }
  return tx.lastError ? tx.lastError.message : '';
}

async function render() {
  const [pending, dead, server] = await Promise.all([
    outbox.peek(), outbox.deadLetters(), fetch('/api/items').then((r) => r.json()).catch(() => ({ items: [] })),
  ]);
  const rows = pending.map((tx) => {
    const tr = document.createElement('tr');
    const body = JSON.parse(tx.mutations.body);
    const status = cell(tx.status);
    status.className = tx.status;
    const remove = document.createElement('button');
    remove.textContent = 'cancel';
    remove.disabled = tx.status === 'in-flight';
    remove.onclick = () => outbox.remove(tx.id).then(render, (e) => log(`remove: ${e.code}`));
    const actions = document.createElement('td');
    actions.append(remove);
    tr.append(cell(tx.seq), cell(`${body.op} ${body.text ?? body.id}`), status, cell(tx.attempts), cell(describe(tx)), actions);
    return tr;
  });
  $('outbox').replaceChildren(...rows);
  $('dead').replaceChildren(...dead.map((tx) => {
    const tr = document.createElement('tr');
    const body = JSON.parse(tx.mutations.body);
    const actions = document.createElement('td');
    for (const [label, fn] of [['retry', () => outbox.retryDead(tx.id)], ['discard', () => outbox.discardDead(tx.id)]]) {
      const b = document.createElement('button');
      b.textContent = label;
      b.onclick = () => fn().then(render);
      actions.append(b);
    }
    tr.append(cell(tx.seq), cell(`${body.op} ${body.text ?? body.id}`), cell(tx.deadReason), cell(tx.lastError?.message ?? ''), actions);
    return tr;
  }));
  $('server').replaceChildren(...server.items.map((it) => {
    const tr = document.createElement('tr');
    tr.append(cell(it.id), cell(it.text));
    return tr;
  }));
  $('leader').textContent = outbox.isLeader ? 'this tab sends' : 'follower';
  $('net').textContent = navigator.onLine ? 'online' : 'offline';
}

function log(line) {
  const div = document.createElement('div');
  div.textContent = `${new Date().toLocaleTimeString()} ${line}`;
  $('log').prepend(div);
}

outbox.subscribe((e) => {
  log(`${e.type}${e.id ? ` ${e.id.slice(0, 8)}` : ''}${e.error ? `: ${e.error.message}` : ''}`);
  render();
});

$('add').onsubmit = async (ev) => {
  ev.preventDefault();
  const text = $('text').value.trim();
  if (!text) return;
  const id = crypto.randomUUID().slice(0, 8);
  await outbox.enqueue({
    handler: 'http', keys: [`item:${id}`],
    mutations: { method: 'POST', url: '/api/mutate', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ op: 'put', id, text }) },
  });
  $('text').value = '';
  render();
};

async function settings(patch) {
  await fetch('/api/settings', { method: 'POST', body: JSON.stringify(patch) }).catch(() => {});
}
$('down').onchange = (e) => settings({ down: e.target.checked });
$('failure').onchange = (e) => settings({ failureRate: Number(e.target.value) });
$('latency').onchange = (e) => settings({ latencyMs: Number(e.target.value) });
$('drain').onclick = () => { outbox.notifyOnline(); outbox.drain().then((r) => log(`drain: ${r.sent} sent, ${r.remaining} left`)); };
addEventListener('online', render);
addEventListener('offline', render);
setInterval(render, 1000);
render();
window.demoReady = true;
