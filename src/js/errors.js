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

/** Throw from a handler to send the transaction to the dead letters instead of retrying. */
export class NonRetriableError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'NonRetriableError';
  }
}
