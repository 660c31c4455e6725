// One handler call under attemptTimeoutMs (src/js/attempt.js): the signal a handler gets,
// when the call settles, and that nothing stays registered on the outbox's signal. The
// e2e suite runs the same through the outbox in Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { callHandler, limited } from '../src/js/attempt.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const never = () => new Promise(() => {});
const outcome = (p) => p.then((v) => ['resolved', v], (e) => ['rejected', e.name, e.message]);

test('without a limit: the outbox signal itself, the call as it settles, a throw at once rejects', async () => {
  const outer = new AbortController().signal;
  const batch = [{}, {}];
  assert.deepEqual(await outcome(callHandler((b) => b.length, batch, outer, 0)), ['resolved', 2]);
  assert.ok(batch.every((c) => c.signal === outer));
  const boom = () => { throw new TypeError('at once'); };
  assert.deepEqual(await outcome(callHandler(boom, {}, outer, 0)), ['rejected', 'TypeError', 'at once']);
  assert.equal(getEventListeners(outer, 'abort').length, 0);
});

test('a call with no outcome in time rejects with a TimeoutError, its signal aborted with it; a late outcome is ignored', async () => {
  const outer = new AbortController().signal;
  const ctx = {};
  assert.deepEqual(await outcome(callHandler(never, ctx, outer, 30)), ['rejected', 'TimeoutError', 'no outcome within 30 ms']);
  assert.equal(ctx.signal.reason.name, 'TimeoutError');
  assert.equal(outer.aborted, false);
  const late = callHandler(() => sleep(80).then(() => 'late'), {}, outer, 30);
  assert.deepEqual(await outcome(late), ['rejected', 'TimeoutError', 'no outcome within 30 ms']);
  await sleep(100);
  assert.deepEqual(await outcome(late), ['rejected', 'TimeoutError', 'no outcome within 30 ms']);
  assert.equal(getEventListeners(outer, 'abort').length, 0);
});

test('a call that settles in time: its outcome, and its signal never aborts afterwards', async () => {
  const outer = new AbortController().signal;
  const ctx = {};
  assert.deepEqual(await outcome(callHandler(() => sleep(5).then(() => 'ok'), ctx, outer, 40)), ['resolved', 'ok']);
  const failing = callHandler(async () => { throw new RangeError('no'); }, {}, outer, 40);
  assert.deepEqual(await outcome(failing), ['rejected', 'RangeError', 'no']);
  await sleep(80);
  assert.equal(ctx.signal.aborted, false);
  assert.equal(getEventListeners(outer, 'abort').length, 0);
});

test('the outbox signal aborting (close, lost leadership) aborts the attempt with its reason, also when already aborted', async () => {
  const controller = new AbortController();
  const ctx = {};
  const p = callHandler(never, ctx, controller.signal, 10_000);
  controller.abort(new Error('closed'));
  assert.deepEqual(await outcome(p), ['rejected', 'Error', 'closed']);
  assert.equal(ctx.signal.reason.message, 'closed');
  const again = {};
  assert.deepEqual(await outcome(callHandler(never, again, controller.signal, 10_000)), ['rejected', 'Error', 'closed']);
  assert.equal(again.signal.aborted, true);
});

test('a handler\'s own limit takes the outbox\'s place, longer or shorter, or where it has none; one function may carry two', async () => {
  const outer = new AbortController().signal;
  const slow = (ctx) => sleep(80).then(() => ctx.signal.aborted);
  const longer = limited(slow, 1000);
  assert.deepEqual(await outcome(callHandler(longer, {}, outer, 30)), ['resolved', false]);
  assert.deepEqual(await outcome(callHandler(limited(slow, 30), {}, outer, 1000)), ['rejected', 'TimeoutError', 'no outcome within 30 ms']);
  const ctx = {};
  assert.deepEqual(await outcome(callHandler(limited(never, 20), ctx, outer, 0)), ['rejected', 'TimeoutError', 'no outcome within 20 ms']);
  assert.equal(ctx.signal.reason.name, 'TimeoutError');
  // The same function, unwrapped, keeps the outbox's limit.
  assert.deepEqual(await outcome(callHandler(slow, {}, outer, 30)), ['rejected', 'TimeoutError', 'no outcome within 30 ms']);
  assert.equal(getEventListeners(outer, 'abort').length, 0);
});
