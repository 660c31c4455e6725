// The package's hand-written types as an app uses them: this file must type-check under
// `strict`, and each `@ts-expect-error` line must be an error (tsc reports an unused one).
// Checked by `make lint`; nothing here runs.
import init, {
  NonRetriableError, Outbox, OutboxError,
  type BatchOutcome, type HandlerContext, type OutboxBackup, type OutboxEvent, type SettledInfo,
} from 'offline-outbox';
import { installOutboxSync } from 'offline-outbox/sw';

interface Rename { id: string; title: string }

export async function page(): Promise<void> {
  await init();
  await init({ module_or_path: new URL('./offline_outbox_bg.wasm', import.meta.url) });
  const outbox = await Outbox.open({
    name: 'todos',
    maxConcurrency: 4,
    ordering: 'per-key',
    retry: { baseDelayMs: 1000, maxDelayMs: 60_000, maxAttempts: 10, jitter: 'full' },
    leaderElection: 'auto',
    maxAgeMs: 86_400_000,
    attemptTimeoutMs: 10_000,
    deadLetterPolicy: 'block',
    network: { policy: 'wifi-preferred', maxHoldMs: 3_600_000 },
    persist: true,
    capacity: { maxCount: 1000 },
    compress: true,
    encrypt: true,
    handlers: {
      async rename(ctx: HandlerContext<Rename>) {
        const res = await fetch(`/api/todos/${ctx.mutations.id}`, {
          method: 'PUT', body: JSON.stringify(ctx.mutations), signal: ctx.signal,
          headers: { 'Idempotency-Key': ctx.idempotencyKey },
        });
        if (res.status === 422) throw new NonRetriableError(await res.text());
        if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}`), { retryAfterMs: 5000 });
      },
      counter: { send: async () => {}, merge: (older: number, newer: number) => older + newer },
      upload: { send: async () => {}, attemptTimeoutMs: 300_000 },
      notes: {
        batchSize: 100,
        attemptTimeoutMs: 5000,
        async sendBatch(batch: HandlerContext<{ text: string }>[]): Promise<BatchOutcome[]> {
          return batch.map((t) => (t.mutations.text ? undefined : new NonRetriableError('empty')));
        },
      },
    },
  });

  const info = await outbox.enqueue({ handler: 'rename', keys: ['todo:1'], mutations: { id: '1', title: 'milk' }, priority: 'high' });
  const seq: number = info.seq;
  const done: SettledInfo = await outbox.settled(info.id);
  if (done.status === 'acknowledged' && 'handler' in done) console.log(done.handler, seq);
  await outbox.enqueue({ handler: 'http', keys: [], mutations: { method: 'POST', url: '/api/x', body: new Uint8Array([1]) } });

  const head = await outbox.peek({ limit: 50 });
  const all = await outbox.peek();
  const dead = await outbox.deadLetters({ limit: 10 });
  for (const t of [...head, ...all, ...dead]) console.log(t.status, t.attempts, t.lastError?.message, t.deadReason);
  if (dead[0]) {
    await outbox.retryDead(dead[0].id);
    await outbox.discardDead(dead[0].id);
  }
  await outbox.remove(info.id);

  const stats = await outbox.stats();
  const p50: number | null = stats.attemptLatencyMs.p50;
  console.log(stats.pending + stats.inFlight, p50, stats.storage.quota, outbox.isLeader, outbox.name);

  const report = await outbox.drain({ budgetMs: 5000 });
  if (!report.complete) console.log(report.remaining);
  outbox.notifyOnline();

  const off = outbox.subscribe((e: OutboxEvent) => {
    switch (e.type) {
      case 'retry': console.log(e.id, e.attempt, e.nextAttemptAt, e.error.name); break;
      case 'dead': console.log(e.reason, e.error.message); break;
      case 'progress': console.log(e.done / e.total); break;
      case 'capacity': console.log(e.level, e.ratio); break;
      case 'storage-lost': console.log(e.reason, e.pending); break;
      case 'leader': console.log(e.isLeader); break;
      case 'error': console.log(e.error.code); break;
      default: break;
    }
  });
  off();

  const backup: OutboxBackup = await outbox.export();
  const text = JSON.stringify(backup);
  const { pending, dead: deadCount, skipped } = await outbox.import(text);
  console.log(pending + deadCount + skipped);

  try {
    await outbox.enqueue({ handler: 'missing', keys: [], mutations: null });
  } catch (e) {
    if (e instanceof OutboxError && e.code === 'UnknownHandler') console.log(e.message);
  }
  await outbox.close();

  // @ts-expect-error: no such priority
  await outbox.enqueue({ handler: 'rename', keys: [], mutations: 1, priority: 'urgent' });
  // @ts-expect-error: keys are required
  await outbox.enqueue({ handler: 'rename', mutations: 1 });
  // @ts-expect-error: a limit is a number
  await outbox.peek({ limit: '5' });
  // @ts-expect-error: deadLetters takes only a limit
  await outbox.deadLetters({ budgetMs: 5 });
  // @ts-expect-error: drain takes only a budget
  await outbox.drain({ limit: 5 });
  // @ts-expect-error: an option the outbox does not have
  await Outbox.open({ name: 'x', handlers: {}, maxConcurency: 2 });
  // @ts-expect-error: no such error code
  if (new OutboxError('Nope').code === 'Nope') console.log('never');
  outbox.subscribe((e) => {
    // @ts-expect-error: a `sent` event has no attempt
    if (e.type === 'sent') console.log(e.attempt);
  });
}

// A module service worker.
export async function worker(): Promise<void> {
  const outbox = await installOutboxSync({
    name: 'todos', budgetMs: 20_000, attemptTimeoutMs: 10_000,
    handlers: { rename: async () => {}, notes: { sendBatch: async () => {}, batchSize: 20 } },
  });
  console.log(outbox.isLeader);
  await installOutboxSync({ name: 'todos' });
  // @ts-expect-error: the name is required
  await installOutboxSync({ handlers: {} });
}
