// One handler call: the context's signal, the outcome within `attemptTimeoutMs`, and the
// message a failure leaves in `lastError`. A handler awaiting something that never
// answers would otherwise hold its keys and a concurrency slot until the outbox closes;
// timed out, it fails like any retryable error, and its signal aborts so that the handler
// (the built-in http handler's fetch included) can stop.

/** A handler's context, but its signal: the transaction's fields and its payload record's. */
export const handlerContext = (id, idempotencyKey, keys, { mutations, metadata }, attempt) =>
  ({ id, idempotencyKey, keys, mutations, metadata, attempt });

/** Handlers with a time limit of their own (a handler's `attemptTimeoutMs`), by the
 *  function `limited` made for each: one function may serve two handlers. */
const own = new WeakMap();

/** `f` as a handler whose attempts have `ms`, in place of the outbox's limit. */
export function limited(f, ms) {
  const g = (arg) => f(arg);
  own.set(g, ms);
  return g;
}

/**
 * Calls handler `f` with `arg`, a context or a batch's array of them, each given the
 * attempt's signal: `outer` (the outbox's: close, lost leadership), or with `ms` (0: no
 * limit; a `limited` handler's own in its place) one that follows it and also aborts with
 * a TimeoutError once `ms` pass, rejecting the call then; a late outcome is dropped, since
 * the attempt has already failed. A call that throws at once rejects.
 */
export function callHandler(f, arg, outer, ms) {
  ms = own.get(f) ?? ms;
  let signal = outer;
  let follow;
  let timer;
  if (ms) {
    const controller = new AbortController();
    ({ signal } = controller);
    follow = () => controller.abort(outer.reason);
    if (outer.aborted) follow();
    outer.addEventListener('abort', follow);
    timer = setTimeout(() => controller.abort(new DOMException(`no outcome within ${ms} ms`, 'TimeoutError')), ms);
  }
  for (const ctx of [arg].flat()) ctx.signal = signal;
  const called = new Promise((resolve) => resolve(f(arg)));
  // Without a limit, nothing more on every attempt's path.
  if (!follow) return called;
  return new Promise((resolve, reject) => {
    const stop = () => reject(signal.reason);
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop);
    called.then(resolve, reject);
  }).finally(() => {
    clearTimeout(timer);
    // The outbox's signal lives as long as the leadership: a listener left on it per
    // attempt would pile up over a long drain.
    outer.removeEventListener('abort', follow);
  });
}

/**
 * The most of a message `lastError` keeps, in UTF-16 units: it is stored with its
 * transaction and held in memory, so a whole error page thrown as the message would cost
 * that much on every transaction it failed.
 */
const MAX_MESSAGE = 1000;

/**
 * The message of whatever a handler threw, for `lastError`: an error's `message`, else an
 * object as JSON, else the value as text; cut here, before it crosses into wasm.
 */
export function messageOf(e) {
  let m = '';
  try {
    m = e === null || typeof e !== 'object' ? String(e)
      : typeof e.message === 'string' ? e.message : JSON.stringify(e) ?? '';
  } catch { /* a getter, toJSON or toString that throws: no message */ }
  return m.slice(0, MAX_MESSAGE);
}
