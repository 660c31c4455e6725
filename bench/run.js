// `make bench`: runs the benchmarks in headless Chromium and prints figures with ratios
// against baselines measured in the same run. Targets are printed, never asserted.
import os from 'node:os';
import { startServer, launch } from '../tests-e2e/harness.js';
import { failover } from './failover.js';

const srv = await startServer();
const browser = await launch();
try {
  const page = await (await browser.newContext()).newPage();
  page.on('pageerror', (e) => console.error('[pageerror]', e.message));
  await page.goto(`${srv.origin}/bench/bench.html`);
  await page.waitForFunction(() => window.benchReady === true);
  const r = await page.evaluate(() => window.runBench());
  const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const rows = [
    ['sequential enqueue (1 KiB, awaited)', `${fmt(r.sequentialEnqueuePerSec)} /s`,
      `${fmt(r.sequentialRatio, 2)}x raw put (${fmt(r.rawSequentialPerSec)} /s)`, '>= 0.8x'],
    ['100 concurrent enqueues', `${fmt(r.concurrentEnqueuePerSec)} /s`,
      `${fmt(r.concurrentRatio, 1)}x raw put (${fmt(r.concurrentRawSequentialPerSec)} /s); ${fmt(r.concurrentVsRawConcurrent, 1)}x 100 raw puts at once (${fmt(r.rawConcurrentPerSec)} /s)`, '>= 5x'],
    [`drain, instant handler (${r.drainCount} after reopen)`, `${fmt(r.drainPerSec)} tx/s`, '', '>= 5,000 tx/s'],
    ['50 keys, 20 ms handler, maxConcurrency 8', `${fmt(r.fiftyKeysSec, 3)} s`,
      `${fmt(r.fiftyKeysFifoSec / r.fiftyKeysSec, 1)}x faster than fifo (${fmt(r.fiftyKeysFifoSec, 3)} s)`, '<= 0.25 s'],
  ];
  console.log(`offline-outbox benchmarks — ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}, Chromium ${browser.version()}`);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((row) => row[i].length), 6));
  const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(line(['benchmark', 'figure', 'ratio (same run)', 'target']));
  for (const row of rows) console.log(line(row));
  console.log('');
  for (const [what, figure, target] of await failover(srv.origin)) console.log(line([what, figure, '', target]));

  // Compression: per payload kind, each codec's size against the JSON and its times.
  const comp = await page.evaluate(() => window.runCompression());
  console.log('');
  console.log('compression of payloads (JSON text as the outbox seals it; per payload, sequential, same page)');
  const cw = [22, 36, 10, 16, 12, 12];
  const cline = (cells) => cells.map((c, i) => String(c).padEnd(cw[i])).join('  ');
  console.log(cline(['payload', 'codec', 'JSON', 'stored', 'compress', 'decompress']));
  for (const c of comp) {
    console.log(cline([c.kind, c.codec, `${fmt(c.json)} B`, `${fmt(c.size)} B (${fmt(c.json / c.size, 1)}x)`, `${fmt(c.packUs)} us`, `${fmt(c.unpackUs)} us`]));
  }
  const rest = await page.evaluate(() => window.runAtRest());
  console.log('');
  console.log('the outbox at rest, form payloads: 100 concurrent enqueues (median of 10), stored size, drain of 1,000 after reopen');
  const rw = [20, 22, 22, 16];
  const rline = (cells) => cells.map((c, i) => String(c).padEnd(rw[i])).join('  ');
  console.log(rline(['mode', 'enqueue', 'stored per payload', 'drain']));
  for (const x of rest) console.log(rline([x.mode, `${fmt(x.enqueuePerSec)} /s`, `${fmt(x.bytesPerPayload)} B`, `${fmt(x.drainPerSec)} tx/s`]));
} finally {
  await browser.close();
  await srv.close();
}
