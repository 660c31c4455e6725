// The two error classes of the public API. They live in JS because a Rust type cannot
// extend Error; the package entry re-exports them. Each names itself in a static field:
// the package's build renames classes, and `err.constructor.name` should still say which.

/** Thrown (or rejected) by the outbox; `code` says which failure it is. */
export class OutboxError extends Error {
  static name = 'OutboxError';

  constructor(code, message, options) {
    super(message, options);
    this.name = 'OutboxError';
    this.code = code;
  }
}

/** Throw from a handler to send the transaction to the dead letters instead of retrying. */
export class NonRetriableError extends Error {
  static name = 'NonRetriableError';

  constructor(message, options) {
    super(message, options);
    this.name = 'NonRetriableError';
  }
}
