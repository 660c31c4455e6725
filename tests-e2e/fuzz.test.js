// Seeded random calls through the public API in a real page (pages/fuzz.js says what is
// checked). FUZZ_SEEDS=1,2,3 runs other seeds; FUZZ_STEPS sets the calls per run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSuite, stopSuite } from './harness.js';

let srv, browser, context, page;
const logs = [];

before(async () => {
  ({ srv, browser, context, page } = await startSuite({ page: true }));
  // A Rust panic is a bare trap in the package build: a RuntimeError "unreachable", logged
  // where nothing caught it (a caught one fails the run as an error that is no OutboxError).
  page.on('console', (m) => { if (/panicked|unreachable/.test(m.text())) logs.push(m.text()); });
});
after(() => stopSuite({ srv, browser }));

const seeds = (process.env.FUZZ_SEEDS ?? '1').split(',').map(Number);
const steps = Number(process.env.FUZZ_STEPS ?? 200);

const modes = [
  {}, { compress: true }, { compress: true, encrypt: true },
  // Leading through a Web Lock rather than on its own; dead letters holding their keys;
  // one transaction at a time in enqueue order.
  { leaderElection: 'web-locks' }, { deadLetterPolicy: 'block' }, { ordering: 'fifo', maxConcurrency: 1 },
  // Every call made by a follower (a second instance in the page) while the first leads.
  { follower: true },
  // The transactions that fail once do so by never answering, past the outbox's limit or
  // their handler's own.
  { attemptTimeoutMs: 20 }, { ownTimeout: true },
];
for (const options of modes) {
  test(`random calls, ${JSON.stringify(options)}: documented errors only, nothing changed by a refusal, values kept`, async (t) => {
    const tally = {};
    for (const seed of seeds) {
      const r = await page.evaluate(async (args) => (await import('/tests-e2e/pages/fuzz.js')).run(args), { seed, steps, options });
      assert.deepEqual(r.failures, [], r.failures.slice(0, 10).join('\n'));
      assert.ok(r.checked > steps / 10, `only ${r.checked} enqueues checked for fidelity`);
      assert.deepEqual(logs, []);
      for (const [k, n] of Object.entries(r.tally)) tally[k] = (tally[k] ?? 0) + n;
    }
    t.diagnostic(Object.entries(tally).sort().map(([k, n]) => `${k}: ${n}`).join(', '));
  });
}
