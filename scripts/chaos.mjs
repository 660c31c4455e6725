// A randomized stress run, not part of `make test` (its calls race on purpose, so each run
// differs): three tabs share one outbox and make 150 random calls each at once (enqueues
// awaited or not, bursts, coalescing, imports, remove, retryDead/discardDead, drain, close
// and reopen), then every id is asked of every tab. It fails when a call hangs, when two tabs
// answer an id differently, when a key's transactions first reached the server out of seq
// order, when an id acknowledged everywhere never reached the server,
// or when one removed everywhere did, unless an attempt of it was cut off: a `sending` no
// context ever reported the outcome of (its leader closed, aborting the handler, or lost
// its place), or one that timed out (`attemptTimeoutMs`). Such an attempt may have reached
// the server; remove() cannot take it back.
//
//   node scripts/chaos.mjs [web-locks|broadcast-channel] [seed] ['{"compress":true}']
//
// The third argument adds options to Outbox.open. Needs pkg/ built (`make pkg`).
import { startServer, launch, openApp, sleep } from '../tests-e2e/harness.js';

const [mode = 'web-locks', seedArg = '1', extraArg = '{}'] = process.argv.slice(2);
const seed = Number(seedArg);
const CALLS = 150;
const HANG_MS = 60000;

const srv = await startServer();
srv.api.delayMs = 2;
const browser = await launch();
const context = await browser.newContext();
const name = `chaos-${Math.random().toString(36).slice(2)}`;
const pages = [];
for (let i = 0; i < 3; i++) pages.push(await openApp(context, srv.origin));
const failures = [];
const hang = setTimeout(async () => {
  console.log(`FAIL: the calls did not finish within ${HANG_MS / 1000} s`);
  await browser.close();
  process.exit(1);
}, HANG_MS);

const runs = await Promise.all(pages.map((p, tab) => p.evaluate(async ({ name, mode, tab, seed, extra, calls }) => {
  const { Outbox, NonRetriableError } = window.lib;
  const open = () => Outbox.open({
    name, leaderElection: mode, maxConcurrency: 3, retry: { baseDelayMs: 20, maxDelayMs: 80 }, ...extra,
    handlers: {
      post: {
        send: async (ctx) => {
          const { n } = ctx.mutations;
          if (n % 11 === 0) throw new NonRetriableError('no');
          if (n % 5 === 0 && ctx.attempt === 1) throw new Error('flaky');
          await window.handlers.post(ctx);
        },
        merge: (a, b) => ({ ...b, log: [...(a.log ?? [a.n]), ...(b.log ?? [b.n])] }),
      },
    },
  });
  const events = [];
  const watch = (o) => o.subscribe((e) => {
    if (e.id && e.type !== 'progress') events.push([Math.round(performance.timeOrigin + performance.now()), tab, e.type, e.id, e.into ?? e.seq ?? e.attempt ?? e.reason ?? '', e.error?.name]);
  });
  let ob = await open();
  watch(ob);
  let s = seed * 7919 + tab;
  const rnd = () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648; };
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const nOf = {};
  const keysOf = {};
  const later = [];
  let n = tab * 100000;
  const enqueue = (keys, coalesce) => {
    const t = { handler: 'post', keys, mutations: { key: keys[0], n: n++ }, priority: pick(['high', 'normal', 'low']) };
    if (coalesce) t.coalesceKey = `ck-${keys[0]}`;
    keysOf[t.mutations.n] = keys;
    return ob.enqueue(t).then((x) => { nOf[x.id] = t.mutations.n; }, () => {});
  };
  for (let i = 0; i < calls; i++) {
    const r = rnd();
    if (r < 0.12) {
      const burst = Array.from({ length: 2 + Math.floor(rnd() * 30) }, () => enqueue([pick(['a', 'b', 'c', 'd'])], rnd() < 0.2));
      if (rnd() < 0.5) await Promise.all(burst); else later.push(...burst);
    } else if (r < 0.55) {
      const key = pick(['a', 'b', 'c']);
      const p = enqueue(rnd() < 0.1 ? [key, 'z'] : [key], rnd() < 0.3);
      if (rnd() < 0.5) await p; else later.push(p);
    } else if (r < 0.65) {
      const ids = Object.keys(nOf);
      if (ids.length) await ob.remove(pick(ids)).catch(() => {});
    } else if (r < 0.75) {
      const dead = await ob.deadLetters();
      if (dead.length) {
        const d = pick(dead);
        await (rnd() < 0.5 ? ob.retryDead(d.id) : ob.discardDead(d.id)).catch(() => {});
      }
    } else if (r < 0.8) {
      await ob.drain({ budgetMs: 200 }).catch(() => {});
    } else if (r < 0.84) {
      await ob.close();
      ob = await open();
      watch(ob);
    } else if (r < 0.87) {
      // A backup from elsewhere: fresh ids, taken in like enqueues (import resolves once
      // the leader has them).
      const pending = Array.from({ length: 1 + Math.floor(rnd() * 3) }, (_, i) => {
        const id = `imported-${tab}-${n}`;
        const key = pick(['a', 'b', 'c']);
        const t = { id, seq: i + 1, handler: 'post', keys: [key], idempotencyKey: id, priority: 'normal', attempts: 0,
          createdAt: Date.now(), nextAttemptAt: 1, mutations: { key, n }, metadata: { $t: 'undefined' } };
        keysOf[n] = [key];
        nOf[id] = n++;
        return t;
      });
      await ob.import({ format: 'offline-outbox-backup', version: 1, name: 'elsewhere', exportedAt: 1, pending, dead: [] });
    } else if (r < 0.9) {
      await ob.peek();
    } else {
      await new Promise((res) => setTimeout(res, rnd() * 20));
    }
  }
  await Promise.all(later);
  window.ob = ob;
  window.events = events;
  return { nOf, keysOf };
}, { name, mode, tab, seed, extra: JSON.parse(extraArg), calls: CALLS })));
clearTimeout(hang);

// Let the work left drain, then ask every tab about every id.
const nOf = Object.assign({}, ...runs.map((r) => r.nOf));
const keysOf = Object.assign({}, ...runs.map((r) => r.keysOf));
const ids = Object.keys(nOf);
await sleep(1500);
const answers = await Promise.all(pages.map((p) => p.evaluate((ids) => Promise.all(ids.map((id) => Promise.race([
  window.ob.settled(id).then(() => 'acknowledged', (e) => e.code),
  new Promise((r) => setTimeout(() => r('waiting'), 8000)),
]))), ids)));
// Every tab hears every context's events, so an outcome any tab heard was reported.
const events = (await Promise.all(pages.map((p) => p.evaluate(() => window.events)))).flat().sort((a, b) => a[0] - b[0]);
const started = new Map();
const foldedInto = new Map();
const seqOf = new Map();
const everDead = new Set();
for (const [, , type, id, more, error] of events) {
  if (type === 'coalesced') foldedInto.set(id, more);
  if (type === 'enqueued') seqOf.set(id, more);
  if (type === 'dead') everDead.add(id);
  const attempts = started.get(id) ?? started.set(id, new Set()).get(id);
  if (type === 'sending') attempts.add(more);
  // A timed-out attempt's outcome is as unknown as a cut-off one's.
  else if (type === 'retry' && error !== 'TimeoutError') attempts.delete(more);
  else if (type === 'sent' || type === 'dead') attempts.clear();
}
// A folded id is sent as part of the transaction it joined.
const cutOff = (id) => started.get(id)?.size > 0 || (foldedInto.has(id) && cutOff(foldedInto.get(id)));
let removedAfterCutOff = 0;

// What reached the server, and per-key order: each record's first arrival (by idempotency
// key), per key, in seq order. A record's seq is its lowest member's (a fold joins the
// earliest pending record with the same keys). Records with a member that was ever dead are
// left out (retryDead puts it back after later ones ran), and so are those with a member
// whose seq no event gave.
const idOfN = new Map(ids.map((id) => [nOf[id], id]));
const atServer = new Set();
const lastSeq = {};
const lastId = {}; // per key, the id whose seq lastSeq holds
const arrived = new Set();
let orderChecked = 0;
for (const { key, body } of srv.api.received) {
  const { n, log } = JSON.parse(body);
  for (const m of log ?? [n]) atServer.add(m);
  if (arrived.has(key)) continue;
  arrived.add(key);
  const members = (log ?? [n]).map((m) => idOfN.get(m));
  if (members.some((id) => !id || everDead.has(id) || !seqOf.has(id))) continue;
  const seq = Math.min(...members.map((id) => seqOf.get(id)));
  const id = members.find((m) => seqOf.get(m) === seq);
  orderChecked++;
  for (const k of keysOf[n]) {
    if (lastSeq[k] > seq) failures.push(`${id}: key ${k}: seq ${seq} first reached the server after seq ${lastSeq[k]} (${lastId[k]})`);
    else [lastSeq[k], lastId[k]] = [seq, id];
  }
}
const tally = {};
ids.forEach((id, i) => {
  const said = answers.map((a) => a[i]);
  tally[said.join('/')] = (tally[said.join('/')] ?? 0) + 1;
  if (new Set(said).size > 1) failures.push(`${id}: the tabs answer ${said.join(' / ')}`);
  else if (said[0] === 'acknowledged' && !atServer.has(nOf[id])) failures.push(`${id}: acknowledged, never at the server`);
  else if (said[0] === 'Removed' && atServer.has(nOf[id])) {
    if (cutOff(id)) removedAfterCutOff++;
    else failures.push(`${id}: removed, yet at the server`);
  }
});
// Every tab hears each event: count attempts, not events.
const timedOut = new Set(events.filter(([, , type, , , error]) => type === 'retry' && error === 'TimeoutError')
  .map(([, , , id, attempt]) => `${id}#${attempt}`)).size;
console.log(JSON.stringify({ mode, seed, ids: ids.length, tally, removedAfterCutOff, orderChecked, timedOut }));
for (const f of failures) console.log(`FAIL: ${f}`);
if (failures.length && process.env.CHAOS_TRACE) {
  // Every event about the ids a failure names and the ids folded with them, in time order.
  const related = new Set(failures.flatMap((f) => f.match(/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}/g) ?? []));
  for (let grew = true; grew;) {
    grew = false;
    for (const [, , type, id, into] of events) {
      if (type === 'coalesced' && (related.has(id) || related.has(into)) && !(related.has(id) && related.has(into))) { related.add(id); related.add(into); grew = true; }
    }
  }
  for (const [at, tab, type, id, more] of events) if (related.has(id)) console.log(at - events[0][0], `tab${tab}`, type, id.slice(0, 8), String(more).slice(0, 8), id in nOf ? nOf[id] : '');
}
await browser.close();
await srv.close();
process.exit(failures.length ? 1 : 0);
