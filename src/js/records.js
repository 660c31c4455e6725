// Stored metadata records cross into wasm packed: the numbers of all of them in one
// Float64Array, their strings concatenated into one string with their lengths beside.
// Reading each field through its own call into JS cost more than the IndexedDB read
// itself (about 90 µs a record when a new leader reads 1,000).

/** Numbers per record; see `packRecords`. */
export const FIELDS = 11;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const PRIORITIES = ['high', 'normal', 'low'];
const REASONS = ['handler-rejected', 'max-attempts', 'corrupt', 'expired'];
const IDEMPOTENCY = 1;
const LAST_ERROR = 2;
const COALESCE = 4;

const absent = (v) => v === undefined || v === null;
const whole = (v) => typeof v === 'number' && v >= 0 && v <= MAX_SAFE && Number.isInteger(v);
// Spread, so that a hole (which every() passes over) reads as undefined.
const strings = (v) => Array.isArray(v) && [...v].every((s) => typeof s === 'string');

/** Why `r` is not a metadata record, or null. Optional fields may be null or absent. */
export function fault(r) {
  if (typeof r !== 'object' || r === null) return 'not an object';
  for (const k of ['id', 'handler', 'idempotencyKey']) if (typeof r[k] !== 'string') return `${k} must be a string`;
  if (!strings(r.keys)) return 'keys must be an array of strings';
  if (!absent(r.aliases) && !strings(r.aliases)) return 'aliases must be an array of strings';
  if (!PRIORITIES.includes(r.priority)) return 'priority must be high, normal or low';
  for (const k of ['attempts', 'createdAt', 'nextAttemptAt']) if (!whole(r[k])) return `${k} must be a whole number`;
  if (r.attempts > 0xffffffff) return 'attempts must be a count';
  for (const k of ['seq', 'deadAt', 'bytes']) if (!absent(r[k]) && !whole(r[k])) return `${k} must be a whole number`;
  if (!absent(r.deadReason) && !REASONS.includes(r.deadReason)) return 'deadReason must be a dead-letter reason';
  if (!absent(r.coalesceKey) && typeof r.coalesceKey !== 'string') return 'coalesceKey must be a string';
  const e = r.lastError;
  if (!absent(e) && (typeof e.name !== 'string' || typeof e.message !== 'string')) return 'lastError must have a string name and message';
  return null;
}

/**
 * `{ nums, text, lens, faults }`: per record FIELDS numbers (seq, attempts, createdAt,
 * nextAttemptAt, deadAt, bytes: NaN where absent; priority and deadReason as indexes;
 * key count, alias count, flags), then its strings in `text`, each `lens[i]` UTF-16
 * units long: id, handler, the idempotency key where it differs from the id, keys,
 * aliases, lastError name and message, coalesce key. A record with a fault has only
 * NaNs and no strings; `faults[i]` says why.
 */
export function packRecords(records) {
  const nums = new Float64Array(records.length * FIELDS).fill(NaN);
  const parts = [];
  const faults = [];
  records.forEach((r, i) => {
    const why = fault(r);
    if (why) {
      faults[i] = why;
      return;
    }
    const aliases = r.aliases ?? [];
    let flags = 0;
    parts.push(r.id, r.handler);
    if (r.idempotencyKey !== r.id) {
      flags |= IDEMPOTENCY;
      parts.push(r.idempotencyKey);
    }
    parts.push(...r.keys, ...aliases);
    if (!absent(r.lastError)) {
      flags |= LAST_ERROR;
      parts.push(r.lastError.name, r.lastError.message);
    }
    if (!absent(r.coalesceKey)) {
      flags |= COALESCE;
      parts.push(r.coalesceKey);
    }
    const at = i * FIELDS;
    nums[at] = r.seq ?? NaN;
    nums[at + 1] = r.attempts;
    nums[at + 2] = r.createdAt;
    nums[at + 3] = r.nextAttemptAt;
    nums[at + 4] = r.deadAt ?? NaN;
    nums[at + 5] = r.bytes ?? 0;
    nums[at + 6] = PRIORITIES.indexOf(r.priority);
    nums[at + 7] = absent(r.deadReason) ? NaN : REASONS.indexOf(r.deadReason);
    nums[at + 8] = r.keys.length;
    nums[at + 9] = aliases.length;
    nums[at + 10] = flags;
  });
  return { nums, text: parts.join(''), lens: Uint32Array.from(parts, (s) => s.length), faults };
}

/**
 * A metadata record from its fields, in one call instead of one per field. Absent
 * optional fields come as undefined; so does an idempotency key equal to the id.
 */
export function makeRecord(seq, id, handler, keys, idempotencyKey, priority, attempts, createdAt, nextAttemptAt,
  errorName, errorMessage, deadReason, deadAt, bytes, coalesceKey, aliases) {
  const r = {};
  if (seq !== undefined) r.seq = seq;
  r.id = id;
  r.handler = handler;
  r.keys = keys;
  r.idempotencyKey = idempotencyKey ?? id;
  r.priority = priority;
  r.attempts = attempts;
  r.createdAt = createdAt;
  r.nextAttemptAt = nextAttemptAt;
  if (errorName !== undefined) r.lastError = { name: errorName, message: errorMessage };
  if (deadReason !== undefined) r.deadReason = deadReason;
  if (deadAt !== undefined) r.deadAt = deadAt;
  r.bytes = bytes;
  if (coalesceKey !== undefined) r.coalesceKey = coalesceKey;
  if (aliases !== undefined) r.aliases = aliases;
  return r;
}

/**
 * The dead letter (reason `corrupt`) for `raw`, a record under `seq` that does not decode:
 * what can be read of it, under an id unique even when its own is missing or clashes, and
 * the raw record kept for inspection.
 */
export function corruptRecord(raw, seq, reason, now) {
  const field = (k) => (typeof raw?.[k] === 'string' ? raw[k] : undefined);
  const number = (k) => (Number.isFinite(raw?.[k]) && raw[k] >= 0 ? Math.trunc(raw[k]) : undefined);
  const id = field('id');
  const r = makeRecord(seq, id === undefined ? `corrupt-${seq}` : `${id}#corrupt-${seq}`, field('handler') ?? '', [],
    field('idempotencyKey'), 'normal', Math.min(number('attempts') ?? 0, 0xffffffff), number('createdAt') ?? now, now,
    'DecodeError', reason, 'corrupt', now, 0);
  r.raw = raw;
  return r;
}

/** What `settled` reports for a transaction this context holds no record of. */
export function acknowledged(id) {
  return { id, status: 'acknowledged' };
}

/** A transaction as the API reports it (TransactionInfo), from its record. */
export function infoOf(r, seq, status, payload) {
  const t = {
    id: r.id,
    handler: r.handler,
    keys: [...r.keys],
    mutations: payload?.mutations,
    metadata: payload?.metadata,
    idempotencyKey: r.idempotencyKey,
  };
  seq ??= r.seq;
  if (seq !== undefined) t.seq = seq;
  t.priority = r.priority;
  t.status = status;
  t.attempts = r.attempts;
  t.createdAt = r.createdAt;
  t.nextAttemptAt = r.nextAttemptAt;
  if (r.lastError) t.lastError = { ...r.lastError };
  if (r.deadReason) t.deadReason = r.deadReason;
  if (r.coalesceKey) t.coalesceKey = r.coalesceKey;
  return t;
}
