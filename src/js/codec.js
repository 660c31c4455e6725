// Backups: the value codec, the document `export()` returns and the checks `import()`
// makes before the crate stores anything.
//
// The codec carries structured-clone values as JSON (for backups and sealed payloads):
// what IndexedDB stores (Date, Map, Set, binary data, Blob, bigint, undefined, NaN,
// shared references and cycles...) must come back from a JSON document as the same value.
// Plain JSON passes through unchanged; any other value becomes an object tagged `$t`, and a
// plain object that has a `$t` key of its own is escaped, so no user data can pass for a tag.

import { fault as recordFault, makeRecord } from './records.js';
import { httpProblem } from './http.js';
import { MAX_KEYS, MAX_STRING, fault, why, isPlain, reader, tooLong } from './options.js';

const VIEWS = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array,
  Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView,
  ...(typeof Float16Array === 'undefined' ? {} : { Float16Array }), // eslint-disable-line no-undef
};

function toBase64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(s, path) {
  if (typeof s !== 'string') throw new TypeError(`${path}: binary data must be a base64 string`);
  let bin;
  try { bin = atob(s); } catch { throw new TypeError(`${path}: invalid base64`); }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Error types structured clone keeps by name; any other error comes back an `Error`. */
const ERRORS = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };

/** Sets `out[k]` as an own property, also where `k` is `__proto__` (which `=` takes as the prototype). */
function put(out, k, v) {
  if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  else out[k] = v;
}

function special(n) {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Infinity';
  if (n === -Infinity) return '-Infinity';
  if (Object.is(n, -0)) return '-0';
  return null;
}

/** The JSON form of `value`. Async because a Blob's bytes can only be read so. */
export async function encodeValue(value) {
  const blobs = [];
  const json = encode(value, blobs);
  await Promise.all(blobs.map(async ([blob, out]) => { out.v = toBase64(new Uint8Array(await blob.arrayBuffer())); }));
  return json;
}

/** The JSON form of `value` at once, or null if it holds a Blob (whose bytes need a wait). */
export function encodeValueNow(value) {
  const blobs = [];
  const json = encode(value, blobs);
  return blobs.length ? null : json;
}

/** Blobs met are listed in `blobs` as [blob, its tagged object], to be filled with bytes. */
function encode(value, blobs) {
  const seen = new Map(); // object -> its index in encounter order, for `ref`
  const enc = (v) => {
    switch (typeof v) {
      case 'undefined': return { $t: 'undefined' };
      case 'bigint': return { $t: 'bigint', v: v.toString() };
      case 'number': { const s = special(v); return s === null ? v : { $t: 'number', v: s }; }
      case 'string': case 'boolean': return v;
      case 'object': break;
      default: throw new TypeError(`a ${typeof v} cannot be stored`);
    }
    if (v === null) return null;
    if (seen.has(v)) return { $t: 'ref', v: seen.get(v) };
    seen.set(v, seen.size);
    if (Array.isArray(v)) {
      const out = [];
      let present = 0;
      for (let i = 0; i < v.length; i++) {
        if (!(i in v)) out.push({ $t: 'hole' });
        else { out.push(enc(v[i])); present++; }
      }
      // Own names past the indices (Object.keys lists indices first), which structured
      // clone keeps.
      const keys = Object.keys(v);
      if (keys.length === present) return out;
      const props = {};
      for (const k of keys.slice(present)) put(props, k, enc(v[k]));
      return { $t: 'array', v: out, props };
    }
    if (v instanceof Date) { const t = v.getTime(); return { $t: 'date', v: Number.isNaN(t) ? null : t }; }
    if (v instanceof RegExp) return { $t: 'regexp', v: v.source, flags: v.flags };
    if (v instanceof Map) return { $t: 'map', v: [...v].map(([k, x]) => [enc(k), enc(x)]) };
    if (v instanceof Set) return { $t: 'set', v: [...v].map(enc) };
    if (v instanceof ArrayBuffer) return { $t: 'arraybuffer', v: toBase64(new Uint8Array(v)) };
    if (ArrayBuffer.isView(v)) {
      const type = Object.keys(VIEWS).find((k) => v instanceof VIEWS[k]);
      // The whole buffer, by reference where shared, as structured clone keeps it.
      const length = type === 'DataView' ? v.byteLength : v.length;
      return { $t: 'view', type, buffer: enc(v.buffer), offset: v.byteOffset, length };
    }
    if (typeof Blob !== 'undefined' && v instanceof Blob) {
      const out = typeof File !== 'undefined' && v instanceof File
        ? { $t: 'file', name: v.name, type: v.type, lastModified: v.lastModified, v: '' }
        : { $t: 'blob', type: v.type, v: '' };
      blobs.push([v, out]);
      return out;
    }
    if (v instanceof Error) return { $t: 'error', name: v.name, message: v.message, stack: v.stack ?? null };
    if (v instanceof Boolean || v instanceof Number || v instanceof String || v instanceof BigInt) {
      return { $t: 'boxed', v: enc(v.valueOf()) };
    }
    const out = {};
    for (const k of Object.keys(v)) put(out, k, enc(v[k]));
    return Object.prototype.hasOwnProperty.call(v, '$t') ? { $t: 'object', v: out } : out;
  };
  return enc(value);
}

/** The value `json` encodes; throws a TypeError naming where (`path`) it is malformed. */
export function decodeValue(json, path) {
  const objects = []; // in encounter order, as `encodeValue` numbered them
  const dec = (j, at) => {
    if (j === null || typeof j === 'string' || typeof j === 'boolean') return j;
    if (typeof j === 'number') return j;
    if (typeof j !== 'object') throw new TypeError(`${at}: not JSON`);
    if (Array.isArray(j)) {
      const out = [];
      objects.push(out);
      j.forEach((x, i) => {
        if (x && typeof x === 'object' && x.$t === 'hole') out.length = i + 1;
        else out[i] = dec(x, `${at}[${i}]`);
      });
      out.length = j.length;
      return out;
    }
    if (!Object.prototype.hasOwnProperty.call(j, '$t')) return fields({}, j, at);
    const t = j.$t;
    const bad = (what) => { throw new TypeError(`${at}: ${what}`); };
    switch (t) {
      case 'undefined': return undefined;
      case 'bigint':
        if (typeof j.v !== 'string' || !/^-?\d+$/.test(j.v)) bad('bigint must be a decimal string');
        return BigInt(j.v);
      case 'number': {
        const n = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity, '-0': -0 }[j.v];
        if (n === undefined) bad(`unknown special number ${JSON.stringify(j.v)}`);
        return n;
      }
      case 'ref':
        if (!Number.isInteger(j.v) || j.v < 0 || j.v >= objects.length) bad('reference to no earlier object');
        return objects[j.v];
      case 'date': {
        if (j.v !== null && typeof j.v !== 'number') bad('date must be a number of milliseconds');
        const d = new Date(j.v === null ? NaN : j.v);
        objects.push(d);
        return d;
      }
      case 'regexp': {
        let r;
        try { r = new RegExp(j.v, j.flags); } catch { bad('invalid regular expression'); }
        objects.push(r);
        return r;
      }
      case 'map': {
        if (!Array.isArray(j.v)) bad('map entries must be an array');
        const m = new Map();
        objects.push(m);
        j.v.forEach((e, i) => {
          if (!Array.isArray(e) || e.length !== 2) bad(`map entry ${i} must be a [key, value] pair`);
          m.set(dec(e[0], `${at}<key ${i}>`), dec(e[1], `${at}<value ${i}>`));
        });
        return m;
      }
      case 'set': {
        if (!Array.isArray(j.v)) bad('set values must be an array');
        const s = new Set();
        objects.push(s);
        j.v.forEach((x, i) => s.add(dec(x, `${at}<${i}>`)));
        return s;
      }
      case 'arraybuffer': {
        const b = fromBase64(j.v, at).buffer;
        objects.push(b);
        return b;
      }
      case 'view': {
        const C = VIEWS[j.type];
        if (!C) bad(`unknown view type ${JSON.stringify(j.type)}`);
        const per = C.BYTES_PER_ELEMENT ?? 1;
        // Written before the buffer was kept: the view's own bytes, as `v`.
        if (!('buffer' in j)) {
          const bytes = fromBase64(j.v, at);
          if (bytes.length % per) bad(`${j.type} bytes are not a whole number of elements`);
          const v = new C(bytes.buffer, 0, bytes.length / per);
          objects.push(v);
          return v;
        }
        const slot = objects.push(null) - 1;
        const buffer = dec(j.buffer, `${at}.buffer`);
        if (!(buffer instanceof ArrayBuffer)) bad('a view needs an array buffer');
        try {
          objects[slot] = new C(buffer, j.offset, j.length);
        } catch {
          bad(`${j.type} does not fit its buffer`);
        }
        return objects[slot];
      }
      case 'blob': case 'file': {
        const bytes = fromBase64(j.v, at);
        if (typeof j.type !== 'string') bad('blob type must be a string');
        const b = t === 'file'
          ? new File([bytes], String(j.name ?? ''), { type: j.type, lastModified: Number(j.lastModified) || 0 })
          : new Blob([bytes], { type: j.type });
        objects.push(b);
        return b;
      }
      case 'error': {
        const known = Object.hasOwn(ERRORS, j.name);
        const e = new (known ? ERRORS[j.name] : Error)(String(j.message ?? ''));
        if (!known) e.name = String(j.name ?? 'Error');
        if (typeof j.stack === 'string') e.stack = j.stack;
        objects.push(e);
        return e;
      }
      case 'boxed': {
        const b = Object(dec(j.v, at));
        objects.push(b);
        return b;
      }
      case 'object':
        if (!j.v || typeof j.v !== 'object' || Array.isArray(j.v)) bad('escaped object must hold an object');
        return fields({}, j.v, at);
      case 'array': {
        if (!Array.isArray(j.v) || !j.props || typeof j.props !== 'object' || Array.isArray(j.props)) bad('array must hold items and props');
        const out = dec(j.v, at);
        for (const k of Object.keys(j.props)) {
          if (k === 'length') bad('array props cannot set its length');
          put(out, k, dec(j.props[k], `${at}.${k}`));
        }
        return out;
      }
      default:
        return bad(`unknown tag ${JSON.stringify(t)}`);
    }
  };
  // `out` takes the fields of JSON object `j`, numbered before them.
  const fields = (out, j, at) => {
    objects.push(out);
    for (const k of Object.keys(j)) put(out, k, dec(j[k], `${at}.${k}`));
    return out;
  };
  return dec(json, path);
}

// The document. The crate gathers the records (stored form, see records.js) and payloads
// for `backupDoc`, and writes what `readBackup` returns in one IndexedDB transaction.

const FORMAT = 'offline-outbox-backup';
const VERSION = 1;

const invalid = (message) => fault('InvalidBackup', message);
const shown = (v) => (isPlain(v) ? JSON.stringify(v) : String(v));

/**
 * The backup document of the outbox `name`: `pending` then `dead` are stored records,
 * `payloads` their `{ mutations, metadata }` in the same order (undefined where missing).
 */
export async function backupDoc(name, pending, dead, payloads) {
  let i = 0;
  const list = (records) => Promise.all(records.map(async (r) => {
    const payload = payloads[i++];
    const out = { ...r };
    try {
      out.mutations = await encodeValue(payload?.mutations);
      out.metadata = await encodeValue(payload?.metadata);
    } catch (e) {
      throw fault('NotSerializable', why(e));
    }
    return out;
  }));
  const doc = { format: FORMAT, version: VERSION, name, exportedAt: Date.now() };
  doc.pending = await list(pending);
  doc.dead = await list(dead);
  return doc;
}

/**
 * The transactions of backup `doc` (the document or its JSON text), checked whole, as
 * `[record, payload, dead]` in the order to add them: pending and dead interleaved as they
 * were (by their old seq, which the record no longer carries), so a dead letter retried
 * later takes its place among them on its keys. Each record is in stored form, as the
 * crate writes one (no seq, each key once, no fields of its own). `handlers` are the names registered;
 * `http` whether the one named "http" is the built-in. Throws at the first fault, with
 * where it is; an unregistered handler is `UnknownHandler`, any other fault `InvalidBackup`.
 */
export const readBackup = reader('InvalidBackup', 'the backup', (doc, handlers, http) => {
  if (typeof doc === 'string') {
    try {
      doc = JSON.parse(doc);
    } catch (e) {
      throw invalid(`not JSON: ${why(e)}`);
    }
  }
  if (!isPlain(doc)) throw invalid('a backup must be an object or its JSON text');
  if (doc.format !== FORMAT) throw invalid(`format must be "${FORMAT}"`);
  if (doc.version !== VERSION) throw invalid(`version ${shown(doc.version)} is not one this outbox reads (it reads ${VERSION})`);
  const rows = [];
  const ids = new Set();
  for (const [field, dead] of [['pending', false], ['dead', true]]) {
    const list = doc[field];
    if (!Array.isArray(list)) throw invalid(`${field} must be an array`);
    [...list].forEach((raw, i) => rows.push(transaction(raw, `${field}[${i}]`, dead, handlers, http)));
  }
  for (const [r] of rows) {
    for (const id of [r.id, ...(r.aliases ?? [])]) {
      if (ids.has(id)) throw invalid(`id "${id}" appears twice`);
      ids.add(id);
    }
  }
  rows.sort((a, b) => a[3] - b[3]);
  return rows.map(([r, payload, dead]) => [r, payload, dead]);
});

/** One transaction of the backup (at `at` in it), as `[record, payload, dead, old seq]`. */
function transaction(raw, at, dead, handlers, http) {
  if (!isPlain(raw)) throw invalid(`${at}: a transaction must be an object`);
  const { mutations, metadata, ...r } = raw;
  const bad = recordFault(r);
  if (bad) throw invalid(`${at}: ${bad}`);
  for (const s of [r.id, ...(r.aliases ?? []), r.idempotencyKey, r.handler]) {
    if (s.length === 0 || tooLong(s)) throw invalid(`${at}: ids, keys and names are 1 to ${MAX_STRING} bytes`);
  }
  if (r.keys.length > MAX_KEYS || r.keys.some(tooLong)) {
    throw invalid(`${at}: at most ${MAX_KEYS} keys of at most ${MAX_STRING} bytes`);
  }
  if (dead !== (r.deadReason !== undefined && r.deadReason !== null)) {
    throw invalid(`${at}: ${dead ? 'a dead letter needs its deadReason' : 'a pending transaction has no deadReason'}`);
  }
  if (!handlers.includes(r.handler)) {
    throw fault('UnknownHandler', `${at}: no handler named "${r.handler}" is registered`);
  }
  const value = (v, name) => {
    try {
      return decodeValue(v, `${at}.${name}`);
    } catch (e) {
      throw invalid(why(e));
    }
  };
  const payload = { mutations: value(mutations, 'mutations'), metadata: value(metadata, 'metadata') };
  const problem = http && r.handler === 'http' && httpProblem(payload.mutations);
  if (problem) throw invalid(`${at}: ${problem}`);
  const record = makeRecord(undefined, r.id, r.handler, [...new Set(r.keys)], r.idempotencyKey, r.priority,
    r.attempts, r.createdAt, r.nextAttemptAt, r.lastError?.name, r.lastError?.message, r.deadReason ?? undefined,
    // `bytes` 0: the store counts the payload as it writes it (sealed or not).
    r.deadAt ?? undefined, 0, r.coalesceKey ?? undefined, r.aliases?.length ? r.aliases : undefined);
  return [record, payload, dead, r.seq ?? Infinity];
}
