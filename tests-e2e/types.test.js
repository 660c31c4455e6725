// The package's TypeScript types against what it hands out at run time: the values a page
// gets (transaction infos, settled answers, stats, a drain report, a backup and its import
// report, every kind of event, a handler's context) are written out as object literals
// typed with the d.ts, and tsc checks them. An object literal may have no property its
// type lacks and must have every one it requires, so a field added, renamed or dropped on
// either side fails here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startSuite, stopSuite, ROOT } from './harness.js';

let srv, browser, context, page;

before(async () => ({ srv, browser, context, page } = await startSuite({ page: true })));
after(() => stopSuite({ srv, browser }));

test('what the package hands out at run time matches its TypeScript types', async () => {
  const shapes = await page.evaluate(async () => {
    const { Outbox, NonRetriableError } = window.lib;
    const events = [];
    const contexts = [];
    let fail = true;
    const ob = await Outbox.open({
      name: 'types-runtime', maxConcurrency: 1, capacity: { maxCount: 2 },
      retry: { baseDelayMs: 1, maxDelayMs: 1, jitter: 'none' },
      handlers: {
        flaky: async (ctx) => {
          const { signal, ...rest } = ctx;
          contexts.push({ ...rest, signalIsAbortSignal: signal instanceof AbortSignal });
          if (fail) { fail = false; throw new Error('once'); }
        },
        refuse: async () => { throw new NonRetriableError('no'); },
        hold: () => new Promise(() => {}),
        counter: { send: async () => {}, merge: (a, b) => a + b },
        clash: { send: async () => {}, merge: () => { throw new Error('no merge'); } },
      },
    });
    ob.subscribe((e) => events.push(e));
    // Handlers of the same names for the other instances; what they send is not checked.
    const stubs = { flaky: async () => {}, refuse: async () => {}, hold: async () => {}, counter: async () => {}, clash: async () => {} };
    // A second instance waits on the lock: it gains leadership, with a leader event, at
    // the first one's close.
    const next = await Outbox.open({ name: 'types-runtime', handlers: stubs });
    // Everything it hears came through the channel from the leader: checked too.
    next.subscribe((e) => events.push(e));
    const a = await ob.enqueue({ handler: 'flaky', keys: ['a'], mutations: { when: new Date(0), tags: ['x'] }, metadata: { by: 'me' }, priority: 'high' });
    const b = await ob.enqueue({ handler: 'refuse', keys: ['b'], mutations: 1 });
    const settled = [await ob.settled(a.id)];
    try { await ob.settled(b.id); } catch { /* dead */ }
    // An id this context never held: only id and status.
    settled.push(await ob.settled('00000000-0000-4000-8000-000000000000'));
    const report = await ob.drain();
    const held = await ob.enqueue({ handler: 'hold', keys: ['h'], mutations: 'h' });
    const c1 = await ob.enqueue({ handler: 'counter', keys: ['c'], mutations: 1, coalesceKey: 'c' });
    await ob.enqueue({ handler: 'counter', keys: ['c'], mutations: 2, coalesceKey: 'c', idempotencyKey: 'own-key' });
    // Behind the held one (the only slot): the fold's merge throws, an error event.
    await ob.enqueue({ handler: 'clash', keys: ['x'], mutations: 1, coalesceKey: 'x' });
    await ob.enqueue({ handler: 'clash', keys: ['x'], mutations: 2, coalesceKey: 'x' });
    const gone = await ob.enqueue({ handler: 'counter', keys: ['r'], mutations: 3 });
    await ob.remove(gone.id);
    const infos = [a, held, c1, ...(await ob.peek()), ...(await ob.deadLetters())];
    const stats = await ob.stats();
    const backup = await ob.export();
    const other = await Outbox.open({ name: 'types-runtime-copy', handlers: stubs });
    const imported = await other.import(backup);
    await other.close();
    await ob.close();
    while (!next.isLeader) await new Promise((r) => setTimeout(r, 10));
    await next.close();
    // An outbox whose database is deleted under it says so.
    const lost = await Outbox.open({ name: 'types-runtime-lost', handlers: { flaky: async () => {} } });
    lost.subscribe((e) => events.push(e));
    indexedDB.deleteDatabase('offline-outbox:types-runtime-lost');
    while (!events.some((e) => e.type === 'storage-lost')) await new Promise((r) => setTimeout(r, 10));
    // Each value as TypeScript source: JSON would drop a field whose value is undefined
    // (metadata not given), which the types must still declare.
    const lit = (v) => {
      if (v === undefined) return 'undefined';
      if (v instanceof Date) return `new Date(${v.getTime()})`;
      // An error's message and name are not its own enumerable fields.
      if (v instanceof Error) return lit({ name: v.name, message: v.message, ...v });
      if (Array.isArray(v)) return `[${v.map(lit).join(', ')}]`;
      if (v !== null && typeof v === 'object') return `{ ${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${lit(x)}`).join(', ')} }`;
      return JSON.stringify(v);
    };
    const types = [...new Set(events.map((e) => e.type))];
    const signals = contexts.map((c) => c.signalIsAbortSignal);
    const plain = contexts.map(({ signalIsAbortSignal, ...c }) => c);
    return {
      types, signals,
      source: Object.entries({ infos, settled, stats, report, backup, imported, events, contexts: plain }).map(([k, v]) => [k, lit(v)]),
    };
  });
  const seen = new Set(shapes.types);
  for (const type of ['enqueued', 'sending', 'sent', 'retry', 'dead', 'removed', 'drained', 'progress', 'coalesced', 'capacity', 'leader', 'storage-lost', 'error']) {
    assert.ok(seen.has(type), `no ${type} event to check`);
  }
  assert.ok(shapes.signals.length >= 2 && shapes.signals.every(Boolean), 'each context has an AbortSignal');
  const declared = {
    infos: 'TransactionInfo[]', settled: 'SettledInfo[]', stats: 'OutboxStats', report: 'DrainReport',
    backup: 'OutboxBackup', imported: 'ImportReport', events: 'OutboxEvent[]', contexts: "Omit<HandlerContext, 'signal'>[]",
  };
  const source = `import type { DrainReport, HandlerContext, ImportReport, OutboxBackup, OutboxEvent, OutboxStats, SettledInfo, TransactionInfo } from 'offline-outbox';
${shapes.source.map(([name, value]) => `export const ${name}: ${declared[name]} = ${value};`).join('\n')}
`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-types-'));
  try {
    fs.writeFileSync(path.join(dir, 'runtime.ts'), source);
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true, exactOptionalPropertyTypes: true, noEmit: true, target: 'es2022', module: 'esnext',
        moduleResolution: 'bundler', lib: ['es2022', 'dom', 'esnext.disposable'],
        paths: { 'offline-outbox': [path.join(ROOT, 'pkg-template/offline_outbox.d.ts')] },
      },
      files: ['runtime.ts'],
    }));
    try {
      execFileSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', dir], { encoding: 'utf8' });
    } catch (e) {
      assert.fail(`the run-time values do not match the types:\n${e.stdout}${e.stderr}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
