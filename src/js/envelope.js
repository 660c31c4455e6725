// Payload records at rest. As given, `{ mutations, metadata }` is stored by structured
// clone. Sealed, it is `{ $sealed: 1, z, iv?, data }`: the record as JSON text through the
// backup codec, deflated (`z`) where that pays, then encrypted with AES-GCM under the
// outbox's key when `iv` is present. The transaction id is the cipher's additional data,
// so a sealed payload cannot be passed off as another transaction's.

import { encodeValue, encodeValueNow, decodeValue } from './codec.js';
import { fault, why } from './options.js';

const utf8 = new TextEncoder();
const KEY = 'cryptoKey';
/** JSON of at most this many bytes is not worth deflating. */
const COMPRESS_ABOVE = 1024;
/** A sealed payload inflating past this is treated as damaged rather than allocated. */
const INFLATE_LIMIT = 256 << 20;

const unserializable = (e) => fault('NotSerializable', `cannot be sealed: ${why(e)}`);

/** `json` deflated, or null where that does not pay. */
function packed(json) {
  if (json.length <= COMPRESS_ABOVE) return null;
  const z = deflate(json);
  return z.length < json.length ? z : null;
}

/**
 * The record to write for payload `record` without waiting, compressed; null to write it as
 * given (compression does not pay, or a Blob inside: IndexedDB keeps those natively). Not
 * waiting is what keeps an enqueue that compresses inside its group commit.
 */
export function sealNow(record) {
  let json;
  try {
    json = encodeValueNow(record);
    if (json === null) return null;
    json = utf8.encode(JSON.stringify(json));
  } catch (e) {
    throw unserializable(e);
  }
  const z = packed(json);
  return z && { $sealed: 1, z: true, data: z };
}

/**
 * The record to write for payload `record` of transaction `id`: compressed if `compress`
 * (where that pays), then encrypted under `key`.
 */
export async function seal(record, id, key, compress) {
  let json;
  try {
    json = utf8.encode(JSON.stringify(await encodeValue(record)));
  } catch (e) {
    throw unserializable(e);
  }
  const z = compress ? packed(json) : null;
  const iv = crypto.getRandomValues(new Uint8Array(12));
  try {
    const data = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: utf8.encode(id) }, key, z ?? json);
    return { $sealed: 1, z: z !== null, iv, data: new Uint8Array(data) };
  } catch (e) {
    throw fault('StorageUnavailable', `encrypting the payload: ${why(e)}`);
  }
}

function fromJsonBytes(bytes) {
  return decodeValue(JSON.parse(new TextDecoder().decode(bytes)), 'payload');
}

function isSealed(v) {
  return v !== null && typeof v === 'object' && v.$sealed === 1;
}

async function decrypt(record, id, key) {
  if (!key) throw 'it is encrypted and this database holds no key';
  try {
    const { iv, data } = record;
    return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: utf8.encode(id) }, key, data));
  } catch (e) {
    throw e?.name === 'OperationError' ? 'it was altered or encrypted under another key' : why(e);
  }
}

// The key of each database whose outbox does not encrypt, read when an encrypted payload
// (one written while it did, or by a context that does) is first met; not remembered
// while there is none, so a key another context creates later is found.
const keys = new WeakMap();

/**
 * Opens the sealed records among `values` (payload records as read from `db`, of
 * transactions `ids`) in place; null at once when none is sealed, else a promise. One that
 * cannot be opened (altered, its key gone) becomes `{ $unreadable: why }`. With `key` null,
 * the database's key is read if an encrypted one is met.
 */
export function openAll(values, ids, key, db) {
  if (!values.some(isSealed)) return null;
  if (key === null && values.some((v) => isSealed(v) && v.iv)) {
    const known = keys.get(db);
    const loading = known ? Promise.resolve(known) : loadKey(db, false).then((k) => {
      if (k) keys.set(db, k);
      return k;
    }, () => null);
    // No key found is `undefined`, not null: the second pass does not look again, and
    // the encrypted ones become unreadable.
    return loading.then((stored) => openAll(values, ids, stored ?? undefined, db));
  }
  return Promise.all(values.map(async (v, i) => {
    if (!isSealed(v)) return;
    try {
      let bytes = v.iv ? await decrypt(v, ids[i], key) : v.data;
      if (v.z === true && !(bytes instanceof Uint8Array && (bytes = inflate(bytes, INFLATE_LIMIT)))) {
        throw 'its compressed bytes are damaged';
      }
      try {
        values[i] = fromJsonBytes(bytes);
      } catch (e) {
        throw `it does not decode: ${why(e)}`;
      }
    } catch (reason) {
      values[i] = { $unreadable: `cannot open the sealed payload: ${reason}` };
    }
  }));
}

/**
 * The outbox's AES-GCM key from the meta store. With `create`, makes one if there is
 * none: generated first (that is async), then kept only if no other context stored one
 * in the meantime, inside one transaction. Non-extractable: script can use it, never read it.
 */
export async function loadKey(db, create) {
  const read = () => new Promise((resolve, reject) => {
    const req = db.transaction('meta', 'readonly').objectStore('meta').get(KEY);
    req.onsuccess = () => resolve(req.result ?? null);
    req.onerror = () => reject(req.error);
  });
  const existing = await read();
  if (existing || !create) return existing;
  const fresh = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  return new Promise((resolve, reject) => {
    const tx = db.transaction('meta', 'readwrite');
    const meta = tx.objectStore('meta');
    const req = meta.get(KEY);
    let key = fresh;
    req.onsuccess = () => {
      if (req.result) key = req.result;
      else meta.put(fresh, KEY);
    };
    tx.oncomplete = () => resolve(key);
    tx.onabort = () => reject(tx.error);
  });
}

// Raw deflate (RFC 1951), what payloads are compressed with. The compressor finds matches
// with a hash chain and one step of lazy matching, then writes blocks with Huffman codes
// built for each (lengths limited by halving the counts until they fit): 2.9 KiB of the
// gzipped package, where the same code with the sealing compiled into the wasm took 5.8
// KiB. The decompressor reads
// any raw deflate stream (stored, fixed and dynamic blocks), so what other encoders wrote
// stays readable. Damage is `null`, never a throw. (In this module rather than one of its
// own: wasm-bindgen ships only the modules a Rust binding names.)

const LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LEN_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
/** The order in which a dynamic block lists its code-length code. */
const CLEN_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

const WINDOW = 1 << 15;
const MAX_MATCH = 258;
const HASH_SHIFT = 32 - 14;
/** How many earlier positions a match search looks at: longer chains buy little on JSON. */
const CHAIN = 32;
/** Tokens per block: bounds what a large payload holds at once, and each block's codes fit its own part. */
const BLOCK = 1 << 16;

/** The symbol of a match length (3..=258): four per power of two above 10. */
function lenSymbol(len) {
  if (len === MAX_MATCH) return 28;
  const x = len - 3;
  if (x < 8) return x;
  const b = 31 - Math.clz32(x);
  return 4 * (b - 1) + ((x >> (b - 2)) & 3);
}

/** The symbol of a distance (1..=32768): two per power of two above 4. */
function distSymbol(dist) {
  const x = dist - 1;
  if (x < 4) return x;
  const b = 31 - Math.clz32(x);
  return 2 * b + ((x >> (b - 1)) & 1);
}

/** `code`'s low `len` bits in reverse order: deflate sends Huffman codes high bit first. */
function reverse(code, len) {
  let r = 0;
  for (let i = 0; i < len; i++, code >>= 1) r = (r << 1) | (code & 1);
  return r;
}

/**
 * Code lengths of a Huffman code for these counts, none over `limit` bits. There are at most
 * 2^`limit` counts (deflate's alphabets: 286 for 15 bits, 19 for 7), or no code fits.
 */
export function codeLengths(counts, limit) {
  const f = Array.from(counts);
  // Every tree gets two codes at least: a decoder needs one bit even for a lone code.
  for (let s = 0; s < 2; s++) {
    if (f.filter((c) => c > 0).length < 2 && f[s] === 0) f[s] = 1;
  }
  for (;;) {
    // Count and symbol in one number, sorted by count, then symbol.
    const n = f.filter((c) => c > 0).length;
    const leaves = new Float64Array(n);
    for (let s = 0, m = 0; s < f.length; s++) if (f[s] > 0) leaves[m++] = f[s] * 512 + s;
    leaves.sort();
    // Two queues: leaves by weight, then the merged nodes, which come out in weight order.
    const weight = Array.from(leaves, (l) => Math.floor(l / 512));
    const parent = new Int32Array(2 * n - 1);
    let i = 0;
    let j = n;
    for (let k = n; k < 2 * n - 1; k++) {
      weight[k] = 0;
      for (let p = 0; p < 2; p++) {
        const a = i < n && (j === k || weight[i] <= weight[j]) ? i++ : j++;
        weight[k] += weight[a];
        parent[a] = k;
      }
    }
    const depth = new Int32Array(2 * n - 1);
    for (let k = 2 * n - 3; k >= 0; k--) depth[k] = depth[parent[k]] + 1;
    if (depth.subarray(0, n).every((d) => d <= limit)) {
      const out = new Uint8Array(counts.length);
      leaves.forEach((l, k) => { out[l % 512] = depth[k]; });
      return out;
    }
    // Flatter counts make a shallower tree; all ones make a balanced one.
    for (let s = 0; s < f.length; s++) if (f[s] > 0) f[s] = Math.max(Math.floor(f[s] / 2), 1);
  }
}

/** The canonical codes for these lengths (RFC 1951, 3.2.2), bit-reversed; null if they over-subscribe. */
export function canonical(lengths) {
  const count = new Int32Array(16);
  for (let s = 0; s < lengths.length; s++) count[lengths[s]]++;
  count[0] = 0;
  const next = new Int32Array(16);
  let code = 0;
  let left = 1;
  for (let len = 1; len < 16; len++) {
    left = (left << 1) - count[len];
    if (left < 0) return null;
    code = (code + count[len - 1]) << 1;
    next[len] = code;
  }
  const codes = new Int32Array(lengths.length);
  for (let s = 0; s < lengths.length; s++) {
    const len = lengths[s];
    if (len) codes[s] = reverse(next[len]++, len);
  }
  return codes;
}

// The compressor's chains, kept between calls (it never runs twice at once): `head` is
// where each 3-byte hash was last seen, `prev` a ring over the window of the position
// before it with the same hash.
let head = null;
let prev = null;
let tokens = null;

const hash = (data, i) => Math.imul(data[i] | (data[i + 1] << 8) | (data[i + 2] << 16), 0x9e3779b1) >>> HASH_SHIFT;

/** Adds positions `from`..`to` (exclusive, none within 2 of the end) to the chains. */
function insert(data, from, to) {
  for (let i = from; i < Math.min(to, data.length - 2); i++) {
    const h = hash(data, i);
    prev[i & (WINDOW - 1)] = head[h];
    head[h] = i;
  }
}

/** The longest earlier match for position `i`, as length << 16 | distance; 0 if none. */
function longest(data, i) {
  const n = data.length;
  if (i + 3 > n) return 0;
  const max = Math.min(n - i, MAX_MATCH);
  let best = 0;
  let dist = 0;
  let cand = head[hash(data, i)];
  for (let k = 0; k < CHAIN && cand >= 0 && i - cand <= WINDOW; k++) {
    const probe = Math.min(best, max - 1);
    if (data[cand + probe] === data[i + probe]) {
      let len = 0;
      while (len < max && data[cand + len] === data[i + len]) len++;
      if (len > best) {
        best = len;
        dist = i - cand;
        if (len === max) break;
      }
    }
    // A slot the ring has reused holds a later position: the chain ends there.
    const before = prev[cand & (WINDOW - 1)];
    if (before >= cand) break;
    cand = before;
  }
  return best >= 3 ? (best << 16) | dist : 0;
}

/** Bits out, least significant first. */
class BitWriter {
  constructor(size) {
    this.out = new Uint8Array(size);
    this.at = 0;
    this.buf = 0;
    this.bits = 0;
  }

  /** `count` bits of `value` (at most 16, so `buf` stays within 24 bits). */
  put(value, count) {
    this.buf |= value << this.bits;
    this.bits += count;
    while (this.bits >= 8) {
      this.out = room(this.out, this.at, this.at + 1, Infinity);
      this.out[this.at++] = this.buf & 255;
      this.buf >>>= 8;
      this.bits -= 8;
    }
  }
}

/** A code being written: each symbol's length and (bit-reversed) code. */
function writing(counts, limit) {
  const lengths = codeLengths(counts, limit);
  return { lengths, codes: canonical(lengths), used: (least) => Math.max(lengths.findLastIndex((l) => l > 0) + 1, least) };
}

/** `data` (a Uint8Array) as raw deflate: blocks with Huffman codes built for each. */
export function deflate(data) {
  const n = data.length;
  head ??= new Int32Array(1 << (32 - HASH_SHIFT));
  prev ??= new Int32Array(WINDOW);
  tokens ??= new Int32Array(BLOCK);
  head.fill(-1);
  const w = new BitWriter((n >> 2) + 64);
  // Positions before `next` are in the chains.
  let next = 0;
  let i = 0;
  for (;;) {
    // Literals (below 1 << 16) and matches (length << 16 | distance), a block of them at most.
    let t = 0;
    while (i < n && t < BLOCK) {
      insert(data, next, i);
      next = i;
      const match = longest(data, i);
      // Lazy matching: a longer match one byte on is worth a literal first.
      let lazier = false;
      if (match) {
        insert(data, next, i + 1);
        next = i + 1;
        lazier = longest(data, i + 1) >>> 16 > match >>> 16;
      }
      if (!match || lazier) {
        tokens[t++] = data[i++];
      } else {
        tokens[t++] = match;
        i += match >>> 16;
      }
    }
    writeBlock(w, t, i === n);
    if (i === n) {
      w.put(0, 7); // flushes the last partial byte
      return w.out.slice(0, w.at);
    }
  }
}

/** The first `t` of `tokens` as one block with its own codes. */
function writeBlock(w, t, last) {
  const litCounts = new Uint32Array(286);
  const distCounts = new Uint32Array(30);
  litCounts[256] = 1;
  for (let k = 0; k < t; k++) {
    const tok = tokens[k];
    if (tok < 1 << 16) {
      litCounts[tok]++;
    } else {
      litCounts[257 + lenSymbol(tok >>> 16)]++;
      distCounts[distSymbol(tok & 0xffff)]++;
    }
  }
  const lit = writing(litCounts, 15);
  const dst = writing(distCounts, 15);
  const nlit = lit.used(257);
  const ndist = dst.used(1);
  // The lengths of both codes, run-length coded: 16 repeats the last 3-6 times, 17 and 18
  // write 3-10 and 11-138 zeros.
  const lengths = [...lit.lengths.subarray(0, nlit), ...dst.lengths.subarray(0, ndist)];
  const runs = [];
  for (let k = 0; k < lengths.length;) {
    const v = lengths[k];
    let run = 1;
    while (k + run < lengths.length && lengths[k + run] === v) run++;
    if (v === 0 && run >= 3) {
      const r = Math.min(run, 138);
      runs.push(r >= 11 ? [18, r - 11] : [17, r - 3]);
      k += r;
      continue;
    }
    runs.push([v, 0]);
    k++;
    for (let rest = run - 1; v > 0 && rest >= 3;) {
      const r = Math.min(rest, 6);
      runs.push([16, r - 3]);
      rest -= r;
      k += r;
    }
  }
  const clenCounts = new Uint32Array(19);
  for (const [sym] of runs) clenCounts[sym]++;
  const clen = writing(clenCounts, 7);
  let nclen = 19;
  while (nclen > 4 && clen.lengths[CLEN_ORDER[nclen - 1]] === 0) nclen--;

  w.put(last ? 0b101 : 0b100, 3); // dynamic codes
  w.put(nlit - 257, 5);
  w.put(ndist - 1, 5);
  w.put(nclen - 4, 4);
  for (let k = 0; k < nclen; k++) w.put(clen.lengths[CLEN_ORDER[k]], 3);
  for (const [sym, extra] of runs) {
    w.put(clen.codes[sym], clen.lengths[sym]);
    if (sym >= 16) w.put(extra, [2, 3, 7][sym - 16]);
  }
  for (let k = 0; k < t; k++) {
    const tok = tokens[k];
    if (tok < 1 << 16) {
      w.put(lit.codes[tok], lit.lengths[tok]);
      continue;
    }
    const len = tok >>> 16;
    const l = lenSymbol(len);
    w.put(lit.codes[257 + l], lit.lengths[257 + l]);
    w.put(len - LEN_BASE[l], LEN_EXTRA[l]);
    const dist = tok & 0xffff;
    const d = distSymbol(dist);
    w.put(dst.codes[d], dst.lengths[d]);
    w.put(dist - DIST_BASE[d], DIST_EXTRA[d]);
  }
  w.put(lit.codes[256], lit.lengths[256]);
}

/** Codes up to this long are decoded by one lookup; longer (rare) ones bit by bit. */
const LOOKUP_BITS = 10;

/**
 * A code for decoding: `entries` looks up its next `width` input bits (each entry the symbol
 * shifted left by 4 and the code's length, 0 where no code that short matches), `counts`
 * and `symbols` (by length, then value) decode longer codes. Null if the lengths
 * over-subscribe.
 */
function table(lengths) {
  const codes = canonical(lengths);
  if (!codes) return null;
  let width = 0;
  const counts = new Uint16Array(16);
  for (const l of lengths) {
    width = Math.max(width, l);
    counts[l]++;
  }
  width = Math.min(width, LOOKUP_BITS);
  counts[0] = 0;
  const entries = new Uint16Array(1 << width);
  const symbols = new Uint16Array(lengths.length);
  const at = new Uint16Array(16);
  for (let l = 1; l < 16; l++) at[l] = at[l - 1] + counts[l - 1];
  for (let sym = 0; sym < lengths.length; sym++) {
    const len = lengths[sym];
    if (len === 0) continue;
    symbols[at[len]++] = sym;
    for (let e = len <= width ? codes[sym] : entries.length; e < entries.length; e += 1 << len) entries[e] = (sym << 4) | len;
  }
  return { width, entries, counts, symbols };
}

/** Bits in, least significant first. Past the end it reads zeros; `over` tells when those were used. */
class BitReader {
  constructor(data) {
    this.data = data;
    this.pos = 0;
    this.buf = 0;
    this.bits = 0;
  }

  /** At least `count` bits in `buf`. */
  fill(count) {
    for (; this.bits < count; this.bits += 8) this.buf |= (this.pos < this.data.length ? this.data[this.pos] : 0) << this.bits, this.pos++;
  }

  take(count) {
    this.fill(count);
    const v = this.buf & ((1 << count) - 1);
    this.buf >>>= count;
    this.bits -= count;
    return v;
  }

  /** The next symbol of code `t`; -1 where no code matches. */
  decode(t) {
    this.fill(t.width);
    const entry = t.entries[this.buf & ((1 << t.width) - 1)];
    const len = entry & 15;
    if (len) {
      this.buf >>>= len;
      this.bits -= len;
      return entry >> 4;
    }
    // Longer than the lookup: canonical codes of each length follow those of the length
    // before, so one bit at a time finds the length whose range holds the code.
    let code = 0;
    let first = 0;
    let index = 0;
    for (let l = 1; l < 16; l++) {
      code |= this.take(1);
      const count = t.counts[l];
      if (code - first < count) return t.symbols[index + code - first];
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
    return -1;
  }

  get over() {
    return this.pos * 8 - this.bits > this.data.length * 8;
  }
}

/**
 * `out` (of which `size` bytes are used) with room for `need` bytes: itself, a bigger copy,
 * or null if `need` is past `limit`.
 */
function room(out, size, need, limit) {
  if (need <= out.length) return out;
  if (need > limit) return null;
  const bigger = new Uint8Array(Math.min(Math.max(out.length * 2, need), limit));
  bigger.set(out.subarray(0, size));
  return bigger;
}

/** The bytes a raw deflate stream holds (a Uint8Array), or null if it is damaged or inflates past `limit` bytes. */
export function inflate(data, limit) {
  const r = new BitReader(data);
  let out = new Uint8Array(Math.min(data.length * 4 + 64, limit));
  let size = 0;
  for (;;) {
    const last = r.take(1);
    const kind = r.take(2);
    if (kind === 0) {
      r.take(r.bits % 8);
      const len = r.take(16);
      if (len !== (~r.take(16) & 0xffff) || r.over || !(out = room(out, size, size + len, limit))) return null;
      for (let k = 0; k < len; k++) out[size++] = r.take(8);
      if (r.over) return null;
    } else if (kind === 3) {
      return null;
    } else {
      const codes = kind === 1 ? fixedCodes() : dynamicCodes(r);
      if (!codes) return null;
      const [lit, dst] = codes;
      for (;;) {
        const sym = r.decode(lit);
        if (sym < 0 || r.over) return null;
        if (sym < 256) {
          if (size === out.length && !(out = room(out, size, size + 1, limit))) return null;
          out[size++] = sym;
          continue;
        }
        if (sym === 256) break;
        const l = sym - 257;
        if (l >= 29) return null;
        const len = LEN_BASE[l] + r.take(LEN_EXTRA[l]);
        const d = r.decode(dst);
        if (d < 0 || d >= 30) return null;
        const back = DIST_BASE[d] + r.take(DIST_EXTRA[d]);
        if (r.over || back > size || !(out = room(out, size, size + len, limit))) return null;
        if (back >= len && len > 32) {
          out.copyWithin(size, size - back, size - back + len);
          size += len;
        } else {
          // Short, or overlapping (each byte then reads what the copy wrote): byte by byte.
          for (let k = 0; k < len; k++, size++) out[size] = out[size - back];
        }
      }
    }
    if (last) return out.subarray(0, size);
  }
}

/** The fixed codes (RFC 1951, 3.2.6), made on first use. */
let fixed = null;
const fixedCodes = () => (fixed ??= [
  table(new Uint8Array(288).fill(8, 0, 144).fill(9, 144, 256).fill(7, 256, 280).fill(8, 280)),
  table(new Uint8Array(30).fill(5)),
]);

/** A dynamic block's codes, read from its header; null if they are damaged. */
function dynamicCodes(r) {
  const nlit = r.take(5) + 257;
  const ndist = r.take(5) + 1;
  const nclen = r.take(4) + 4;
  const clenLengths = new Uint8Array(19);
  for (let k = 0; k < nclen; k++) clenLengths[CLEN_ORDER[k]] = r.take(3);
  const clen = table(clenLengths);
  if (!clen) return null;
  const lengths = new Uint8Array(nlit + ndist);
  for (let k = 0; k < nlit + ndist;) {
    const sym = r.decode(clen);
    let value = sym;
    let repeat = 1;
    if (sym < 0 || r.over) return null;
    if (sym === 16) {
      if (k === 0) return null;
      value = lengths[k - 1];
      repeat = 3 + r.take(2);
    } else if (sym === 17) {
      value = 0;
      repeat = 3 + r.take(3);
    } else if (sym === 18) {
      value = 0;
      repeat = 11 + r.take(7);
    }
    if (k + repeat > nlit + ndist) return null;
    lengths.fill(value, k, k + repeat);
    k += repeat;
  }
  if (lengths[256] === 0) return null; // no end-of-block code
  const lit = table(lengths.subarray(0, nlit));
  const dst = table(lengths.subarray(nlit));
  return lit && dst && [lit, dst];
}
