// The two error classes of the public API. They live in JS because a Rust type cannot
// extend Error; the package entry re-exports them.

/** Thrown (or rejected) by the outbox; `code` says which failure it is. */
export class OutboxError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'OutboxError';
    this.code = code;
  }
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

/** Throw from a handler to send the transaction to the dead letters instead of retrying. */
export class NonRetriableError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'NonRetriableError';
  }
}
