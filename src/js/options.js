// What JS passes in, read and checked: `OutboxOptions` at open and each `NewTransaction` at
// enqueue. Everything is checked here, before anything is stored, and the crate takes the
// result as it comes: every field present (null where absent) and of its type. A fault
// throws a `Fault` (`{ code, message }`), which the crate makes an OutboxError; the other
// snippets throw it too.

import { httpProblem } from './http.js';
import { limited } from './attempt.js';

export const MAX_KEYS = 256;
export const MAX_STRING = 1024;
const SAFE = Number.MAX_SAFE_INTEGER;
const DAY = 86_400_000;
const MAX_BATCH = 10_000;
/** setTimeout's limit, for time limits: past it the timer would fire at once. */
const TIMER = 0x7fffffff;
const OPTIONS = ['name', 'handlers', 'maxConcurrency', 'ordering', 'retry', 'leaderElection', 'maxAgeMs',
  'deadLetterPolicy', 'network', 'persist', 'capacity', 'compress', 'encrypt', 'attemptTimeoutMs'];
const TRANSACTION = ['handler', 'keys', 'mutations', 'priority', 'idempotencyKey', 'metadata', 'coalesceKey'];
const HANDLER = 'a function, { send, merge?, attemptTimeoutMs? } or { sendBatch, batchSize?, merge?, attemptTimeoutMs? }';
const OPT = 'InvalidOptions';
const TX = 'InvalidTransaction';
const utf8 = new TextEncoder();

/** What these throw: the crate reads `code` and `message` into its typed error. */
class Fault {
  constructor(code, message) {
    this.code = code;
    this.message = message;
  }
}
export const fault = (code, message) => new Fault(code, message);
/** An error's message, or whatever was thrown as text. */
export const why = (e) => e?.message ?? String(e);

/**
 * `read`, made to throw only faults of `code` (or faults it made itself): reading a value
 * can run the caller's code (a getter, a Proxy trap), and what that throws is bad input too.
 */
export function reader(code, what, read) {
  return (a, b, c) => {
    try {
      return read(a, b, c);
    } catch (e) {
      throw e instanceof Fault ? e : fault(code, `${what} cannot be read: ${why(e)}`);
    }
  };
}
export const isPlain = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
/** Longer than MAX_STRING bytes of UTF-8 (a UTF-16 unit is at most 3 of them). */
export const tooLong = (s) => s.length * 3 > MAX_STRING && utf8.encode(s).length > MAX_STRING;

function rejectUnknown(obj, known, what, code) {
  let keys;
  try {
    keys = Object.keys(obj);
  } catch (e) {
    throw fault(code, `its fields cannot be read: ${why(e)}`);
  }
  if (keys.every((k) => known.includes(k))) return;
  const unknown = keys.filter((k) => !known.includes(k));
  throw fault(code, `unknown ${what} "${unknown.join('", "')}" (known: ${known.join(', ')})`);
}

/** A whole number in [min, max]; null when absent. */
function whole(obj, key, min, max, code) {
  const v = obj[key];
  if (v === undefined) return null;
  if (Number.isInteger(v) && v >= min && v <= max) return v;
  throw fault(code, `${key} must be a whole number from ${min} to ${max}`);
}

function string(obj, key, code) {
  const v = obj[key];
  if (v === undefined) return null;
  if (typeof v === 'string' && v !== '' && !tooLong(v)) return v;
  throw fault(code, `${key} must be a non-empty string of at most ${MAX_STRING} bytes`);
}

function choice(obj, key, allowed, code) {
  const v = obj[key];
  if (v === undefined || allowed.includes(v)) return v ?? null;
  const list = allowed.map((a) => `'${a}'`).join(', ');
  let s;
  try {
    s = string(obj, key, code);
  } catch {
    throw fault(code, `${key} must be one of ${list}`);
  }
  throw fault(code, `${key} must be one of ${list}, not "${s}"`);
}

function flag(obj, key, otherwise) {
  const v = obj[key];
  if (v === undefined) return otherwise;
  if (typeof v === 'boolean') return v;
  throw fault(OPT, `${key} must be a boolean`);
}

/** The option object `options[field]`, a plain object of known fields; {} when absent. */
function nested(options, field, known) {
  const v = options[field];
  if (v === undefined) return {};
  if (!isPlain(v)) throw fault(OPT, `${field} must be an object`);
  rejectUnknown(v, known, `${field} option`, OPT);
  return v;
}

/** A handler entry as `[name, send, batchSize (0: one transaction a call), merge]`; a
 *  handler with a time limit of its own is called through `limited`. */
function handler(name, v) {
  if (typeof v === 'function') return [name, v, 0, null];
  if (!isPlain(v)) throw fault(OPT, `handler "${name}" must be ${HANDLER}`);
  rejectUnknown(v, ['send', 'sendBatch', 'batchSize', 'merge', 'attemptTimeoutMs'], 'handler field', OPT);
  const fn = (field) => {
    const f = v[field];
    if (f === undefined || typeof f === 'function') return f;
    throw fault(OPT, `handler "${name}": ${field} must be a function`);
  };
  const count = (field, max) => {
    try {
      return whole(v, field, 1, max, OPT);
    } catch (e) {
      throw fault(OPT, `handler "${name}": ${e.message}`);
    }
  };
  const merge = fn('merge') ?? null;
  const send = fn('send');
  const sendBatch = fn('sendBatch');
  const ms = count('attemptTimeoutMs', TIMER);
  const own = (f) => (ms ? limited(f, ms) : f);
  if (send && !sendBatch && v.batchSize === undefined) return [name, own(send), 0, merge];
  if (!send && sendBatch) return [name, own(sendBatch), count('batchSize', MAX_BATCH) ?? 50, merge];
  throw fault(OPT, `handler "${name}" must be ${HANDLER}`);
}

/** `OutboxOptions` checked whole, with every field present (null where absent and the crate has the default). */
export const readOptions = reader(OPT, 'the options', (v) => {
  if (!isPlain(v)) throw fault(OPT, 'options must be an object');
  rejectUnknown(v, OPTIONS, 'option', OPT);
  const name = string(v, 'name', OPT);
  if (name === null) throw fault(OPT, 'name is required');
  const handlers = [];
  if (v.handlers !== undefined) {
    if (!isPlain(v.handlers)) throw fault(OPT, 'handlers must be an object of handlers');
    let entries;
    try {
      entries = Object.entries(v.handlers);
    } catch (e) {
      throw fault(OPT, `handlers cannot be read: ${why(e)}`);
    }
    for (const [key, h] of entries) handlers.push(handler(key, h));
  }
  const out = {
    name,
    handlers,
    maxConcurrency: whole(v, 'maxConcurrency', 1, 1024, OPT),
    maxAgeMs: whole(v, 'maxAgeMs', 1, SAFE, OPT),
    attemptTimeoutMs: whole(v, 'attemptTimeoutMs', 1, TIMER, OPT),
    ordering: choice(v, 'ordering', ['per-key', 'fifo'], OPT),
    leaderElection: choice(v, 'leaderElection', ['auto', 'web-locks', 'broadcast-channel', 'none'], OPT),
    deadLetterPolicy: choice(v, 'deadLetterPolicy', ['skip', 'block'], OPT),
  };
  const network = nested(v, 'network', ['policy', 'maxHoldMs', 'maxHoldBytes']);
  const wifi = choice(network, 'policy', ['always', 'wifi-preferred'], OPT) === 'wifi-preferred';
  const maxHoldMs = whole(network, 'maxHoldMs', 0, SAFE, OPT) ?? DAY;
  const maxHoldBytes = whole(network, 'maxHoldBytes', 0, SAFE, OPT) ?? 1 << 20;
  out.wifiPreferred = wifi ? [maxHoldMs, maxHoldBytes] : null;
  out.persist = flag(v, 'persist', true);
  out.compress = flag(v, 'compress', false);
  out.encrypt = flag(v, 'encrypt', false);
  const capacity = nested(v, 'capacity', ['maxCount', 'maxBytes']);
  out.maxCount = whole(capacity, 'maxCount', 1, SAFE, OPT);
  out.maxBytes = whole(capacity, 'maxBytes', 1, SAFE, OPT);
  const retry = nested(v, 'retry', ['baseDelayMs', 'maxDelayMs', 'maxAttempts', 'jitter']);
  out.baseDelayMs = whole(retry, 'baseDelayMs', 0, DAY, OPT);
  out.maxDelayMs = whole(retry, 'maxDelayMs', 0, 7 * DAY, OPT);
  out.maxAttempts = whole(retry, 'maxAttempts', 1, 0xffffffff, OPT);
  out.jitter = choice(retry, 'jitter', ['full', 'equal', 'none'], OPT);
  return out;
});

/**
 * The structured clone IndexedDB will store, taken now; undefined where structuredClone
 * is missing (the write itself then reports the failure). A value that cannot be cloned,
 * or whose reading throws (a getter, a Proxy trap), is a NotSerializable fault: left to
 * the write, the getter's own error would reach the caller untyped.
 */
export function cloneForStorage(value) {
  if (typeof structuredClone !== 'function') return undefined;
  try {
    return structuredClone(value);
  } catch (e) {
    throw fault('NotSerializable', `cannot be stored: ${why(e).slice(0, 200)}`);
  }
}

/**
 * A call's options with their one field `field` (`drain()`'s `budgetMs`, `peek()`'s and
 * `deadLetters()`'s `limit`): a whole number, or Infinity for none.
 */
export const readCallOption = reader(OPT, 'the options', (v, field) => {
  if (v === undefined || v === null) return Infinity;
  if (!isPlain(v)) throw fault(OPT, 'options must be an object');
  if (Object.keys(v).some((k) => k !== field)) throw fault(OPT, `the options take only { ${field} }`);
  const b = v[field];
  if (b === undefined) return Infinity;
  // Infinity is none; NaN fails the comparison.
  if (typeof b === 'number' && b >= 0) return Math.trunc(b);
  throw fault(OPT, `${field} must be a non-negative number`);
});

/**
 * A `NewTransaction` checked whole, for an outbox whose handlers are `handlers` (names;
 * `http` whether the one named "http" is the built-in) as `[handler, keys, payload,
 * priority, idempotencyKey, coalesceKey]`, null where absent: each key once, in first-seen
 * order (a transaction listing a key twice holds one place in its queue), and the payload
 * record `{ mutations, metadata }` as it is stored.
 */
export const readTransaction = reader(TX, 'the transaction', (v, handlers, http) => {
  if (!isPlain(v)) throw fault(TX, 'a transaction must be an object');
  rejectUnknown(v, TRANSACTION, 'transaction field', TX);
  const name = string(v, 'handler', TX);
  if (name === null) throw fault(TX, 'handler is required');
  if (!handlers.includes(name)) throw fault('UnknownHandler', `no handler named "${name}" is registered`);
  if (!Array.isArray(v.keys)) throw fault(TX, 'keys must be an array of strings');
  const keys = Array.from(v.keys);
  if (keys.length > MAX_KEYS) throw fault(TX, `at most ${MAX_KEYS} keys`);
  for (const k of keys) {
    if (typeof k !== 'string') throw fault(TX, 'keys must be an array of strings');
    if (tooLong(k)) throw fault(TX, `a key is longer than ${MAX_STRING} bytes`);
  }
  const priority = choice(v, 'priority', ['high', 'normal', 'low'], TX);
  const idempotencyKey = string(v, 'idempotencyKey', TX);
  const coalesceKey = string(v, 'coalesceKey', TX);
  const { mutations, metadata } = v;
  const problem = http && name === 'http' && httpProblem(mutations);
  if (problem) throw fault(TX, problem);
  return [name, [...new Set(keys)], { mutations, metadata }, priority, idempotencyKey, coalesceKey];
});
