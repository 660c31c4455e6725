// Drives bench/peers.html: every row for every system, each in fresh pages of one
// browser context per system (a restart is a new page on the same storage). Returns the
// table rows; run.js prints them.
const N_DRAIN = 2000;
const OPENS = 7;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
/** A system that cannot store the items of a row within this long has no figure for it
 *  (Workbox stores 100,000 in about 100 s here). */
const FILL_LIMIT_MS = 150000;

async function page(context, origin) {
  const p = await context.newPage();
  p.on('pageerror', (e) => console.error('[pageerror]', e.message));
  await p.goto(`${origin}/bench/peers.html`);
  await p.waitForFunction(() => window.peersReady === true);
  return p;
}

/** JS heap in use after a full collection, plus wasm memory, in bytes. */
async function heap(p, wasmBytes) {
  const cdp = await p.context().newCDPSession(p);
  await cdp.send('HeapProfiler.enable');
  await cdp.send('HeapProfiler.collectGarbage');
  const { usedSize } = await cdp.send('Runtime.getHeapUsage');
  await cdp.detach();
  return usedSize + wasmBytes;
}

/** Fills a fresh store in its own page; null if `n` could not be stored within the limit. */
async function filled(context, origin, system, n, keys, size) {
  const name = `peer-${n}-${Math.random().toString(36).slice(2)}`;
  const w = await page(context, origin);
  const stored = await w.evaluate(({ system, name, n, keys, size, limit }) => window.peerBench.fill(system, name, n, keys, size, limit), { system, name, n, keys, size, limit: FILL_LIMIT_MS });
  await w.close();
  return stored === n ? name : null;
}

export async function peers(browser, origin, log = () => {}) {
  const probe = await page(await browser.newContext(), origin);
  const systems = await probe.evaluate(() => window.peerBench.systems);
  await probe.context().close();
  const out = {};
  for (const system of systems) {
    log(`peers: ${system}`);
    const context = await browser.newContext();
    const r = {};
    const p = await page(context, origin);
    Object.assign(r, await p.evaluate((s) => window.peerBench.enqueueRates(s), system));
    await p.close();

    let name = await filled(context, origin, system, N_DRAIN, 64, 1000);
    let q = await page(context, origin);
    const drain = await q.evaluate(({ system, name, n }) => window.peerBench.openAndDrain(system, name, n, 0, 4), { system, name, n: N_DRAIN });
    r.drainPerSec = drain.done ? (N_DRAIN / drain.totalMs) * 1000 : null;
    await q.close();

    name = await filled(context, origin, system, 50, 50, 100);
    q = await page(context, origin);
    const keys = await q.evaluate(({ system, name }) => window.peerBench.openAndDrain(system, name, 50, 20, 8), { system, name });
    r.fiftyKeysSec = keys.done ? keys.totalMs / 1000 : null;
    await q.close();

    for (const n of [1, 10000, 100000]) {
      name = await filled(context, origin, system, n, 1000, 200);
      log(`peers: ${system}: ${n} ${name ? 'stored' : 'not stored in time'}`);
      if (!name) continue;
      // One open of 10,000 moved between 26 and 67 ms from run to run: the median of up
      // to OPENS, each in a fresh page (a handler that never answers leaves the items
      // pending), unless one takes seconds. The opens of 1 and 100,000 are the ones
      // whose heap is measured: what a system holds however little waits, and with much.
      // After each of the outbox's opens, a fresh page times the open's protocol alone
      // on the same database (see `openProtocol`).
      const firsts = [];
      const protocol = [];
      for (let i = 0; i < (n === 10000 ? OPENS : 1); i++) {
        q = await page(context, origin);
        const before = await heap(q, 0);
        const held = await q.evaluate(({ system, name, n }) => window.peerBench.openHolding(system, name, n), { system, name, n });
        firsts.push(held.firstMs || null);
        if (n !== 10000) r[`heap${n}Bytes`] = (await heap(q, held.wasmBytes)) - before;
        if (n === 1) r.heap1WasmBytes = held.wasmBytes;
        await q.close();
        if (system === 'offline-outbox' && n > 1) {
          q = await page(context, origin);
          protocol.push(await q.evaluate((name) => window.peerBench.openProtocol(name), name));
          await q.close();
        }
        if (!held.firstMs || held.firstMs > 5000) break;
      }
      if (n === 1) continue;
      r[`open${n}Ms`] = firsts.includes(null) ? null : median(firsts);
      if (protocol.length) r[`protocol${n}Ms`] = median(protocol);
    }
    await context.close();
    out[system] = r;
  }
  return out;
}
