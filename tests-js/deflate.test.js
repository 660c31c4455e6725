// The payload codec (the deflate in src/js/envelope.js), checked against Node's zlib both
// ways on seeded random inputs: what it writes is standard raw deflate, and it reads what a
// general deflater writes (stored, fixed and dynamic blocks). Run by `make unit`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { deflate, inflate, codeLengths, canonical } from '../src/js/envelope.js';

/** xorshift32: every run checks the same inputs. */
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const utf8 = new TextEncoder();

/** JSON shaped like an app's payload: repeated keys, words, ids. */
function json(seed, items) {
  const r = rng(seed);
  const words = ['alpha', 'site', 'inspection', 'done', 'the', 'north', 'gate', 'valve', 'ok'];
  const answers = Array.from({ length: items }, (_, i) => ({
    questionId: `q-${i}`,
    id: Math.floor(r() * 2 ** 32).toString(16).padStart(8, '0') + Math.floor(r() * 2 ** 32).toString(16).padStart(8, '0'),
    value: Array.from({ length: 6 }, () => words[Math.floor(r() * words.length)]).join(' '),
    flagged: r() < 1 / 7,
  }));
  return utf8.encode(JSON.stringify({ formId: 'site-inspection-v3', answers }));
}

/** Pseudo-random bytes, which match nothing by chance. */
function noise(seed, n) {
  const r = rng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

/** One of the three kinds of input the property tests draw from. */
function sample(r) {
  const kind = Math.floor(r() * 3);
  if (kind === 0) return noise(Math.floor(r() * 2 ** 31), Math.floor(r() * 3000));
  // Few distinct bytes: long and overlapping matches, runs past 258.
  if (kind === 1) return Uint8Array.from({ length: Math.floor(r() * 6000) }, () => Math.floor(r() * 3));
  return json(Math.floor(r() * 2 ** 31), Math.floor(r() * 80));
}

const CASES = 256;
const concat = (...parts) => Uint8Array.from(parts.flatMap((p) => [...p]));

test('JSON shrinks to well under a third, and comes back', () => {
  const data = json(7, 40);
  const packed = deflate(data);
  assert.ok(packed.length * 3 < data.length, `${packed.length} of ${data.length}`);
  assert.deepEqual(inflate(packed, data.length), data);
});

test('empty and tiny inputs round-trip', () => {
  for (const s of ['', 'a', 'ab', 'abc', 'aaaa']) {
    const data = utf8.encode(s);
    assert.deepEqual(inflate(deflate(data), 10), data);
    assert.deepEqual(new Uint8Array(zlib.inflateRawSync(deflate(data))), data);
  }
});

test('large inputs span several blocks and the whole window', () => {
  // 200,000 literals: four blocks of at most 65,536 tokens. Then a repeat exactly as far
  // back as deflate reaches, one just beyond, and JSON.
  const far = noise(2, 32768);
  const beyond = noise(3, 32769);
  const data = concat(noise(1, 200000), far, far, beyond, beyond, json(9, 2000));
  const packed = deflate(data);
  assert.deepEqual(inflate(packed, data.length), data);
  assert.deepEqual(new Uint8Array(zlib.inflateRawSync(packed)), data);
  // The repeat 32,768 back costs next to nothing (the one beyond cannot be matched).
  const once = concat(noise(1, 200000), far, beyond, beyond, json(9, 2000));
  assert.ok(packed.length < deflate(once).length + 2000);
});

test('the limit is a damage, not an allocation', () => {
  const data = new Uint8Array(100000).fill(120);
  const packed = deflate(data);
  assert.ok(packed.length < 1000);
  assert.equal(inflate(packed, 99999), null);
  assert.deepEqual(inflate(packed, 100000), data);
});

test('streams that end early or lie are damaged', () => {
  const packed = deflate(json(3, 30));
  for (const cut of [0, 1, packed.length >> 1, packed.length - 1]) {
    assert.equal(inflate(packed.subarray(0, cut), Infinity), null, `cut at ${cut}`);
  }
  // A distance further back than anything written so far: the final block with fixed
  // codes, 'a', a match of length 3 at distance 2, end of block.
  const bits = [];
  const put = (v, n) => { for (let i = 0; i < n; i++) bits.push((v >> i) & 1); };
  const code = (c, n) => { for (let i = n - 1; i >= 0; i--) bits.push((c >> i) & 1); };
  put(0b011, 3);
  code(0x30 + 97, 8);
  code(1, 7);
  code(1, 5);
  code(0, 7);
  const bytes = Uint8Array.from({ length: Math.ceil(bits.length / 8) }, (_, i) => bits.slice(i * 8, i * 8 + 8).reduce((a, b, k) => a | (b << k), 0));
  assert.equal(inflate(bytes, 100), null);
  // Block type 3 is reserved; a stored block's length must match its complement.
  assert.equal(inflate(Uint8Array.of(0b111), 100), null);
  assert.equal(inflate(Uint8Array.of(1, 2, 0, 0, 0, 104, 105), 100), null);
  assert.deepEqual(inflate(Uint8Array.of(1, 2, 0, 0xfd, 0xff, 104, 105), 100), utf8.encode('hi'));
});

test('the deepest tree is cut to the limit', () => {
  // Fibonacci counts make the deepest Huffman tree there is: 30 symbols, 29 levels.
  const counts = [1, 1];
  while (counts.length < 30) counts.push(counts.at(-1) + counts.at(-2));
  const lengths = codeLengths(counts, 15);
  assert.ok(lengths.every((l) => l >= 1 && l <= 15), String(lengths));
  assert.ok(canonical(lengths));
  assert.ok(codeLengths(counts, 7).every((l) => l >= 1 && l <= 7));
});

test('it round-trips, and zlib reads what it writes', () => {
  const r = rng(1);
  for (let c = 0; c < CASES; c++) {
    const data = sample(r);
    const packed = deflate(data);
    assert.deepEqual(inflate(packed, data.length), data, `case ${c}`);
    assert.deepEqual(new Uint8Array(zlib.inflateRawSync(packed)), data, `case ${c}`);
  }
});

test('it reads what zlib writes: stored, fixed and dynamic blocks', () => {
  const r = rng(2);
  for (let c = 0; c < CASES; c++) {
    const data = sample(r);
    const level = [0, 1, 6, 9][c % 4];
    const strategy = c % 8 < 4 ? zlib.constants.Z_DEFAULT_STRATEGY : zlib.constants.Z_FIXED;
    const packed = zlib.deflateRawSync(data, { level, strategy });
    assert.deepEqual(inflate(new Uint8Array(packed), data.length), data, `case ${c}, level ${level}`);
  }
});

test('code lengths are a prefix code within their limit', () => {
  // Every counted symbol gets a code (and at least two symbols do), none longer than the
  // limit, and the lengths form a prefix code. Deflate's alphabets fit their limits: at
  // most 286 symbols in 15 bits, 19 in 7.
  const r = rng(3);
  for (let c = 0; c < CASES; c++) {
    const limit = 9 + Math.floor(r() * 7);
    const counts = Array.from({ length: 2 + Math.floor(r() * 298) }, () => {
      const k = r();
      return k < 0.3 ? 0 : k < 0.7 ? 1 + Math.floor(r() * 999) : Math.floor(r() * 2 ** 32);
    });
    const lengths = codeLengths(counts, limit);
    counts.forEach((n, s) => {
      assert.ok(n === 0 || lengths[s] > 0, `case ${c}: symbol ${s} has no code`);
      assert.ok(lengths[s] <= limit, `case ${c}`);
    });
    assert.ok(lengths.filter((l) => l > 0).length >= 2);
    assert.ok(canonical(lengths), `case ${c}: the lengths over-subscribe`);
  }
});

test('altered or random bytes give null or some bytes, never a throw', () => {
  const r = rng(4);
  for (let c = 0; c < CASES; c++) {
    const packed = new Uint8Array(zlib.deflateRawSync(sample(r), { level: 6 }));
    packed[Math.floor(r() * packed.length)] ^= 1 + Math.floor(r() * 255);
    const out = inflate(packed, 1 << 20);
    assert.ok(out === null || out instanceof Uint8Array);
    const junk = noise(Math.floor(r() * 2 ** 31), Math.floor(r() * 400));
    const back = inflate(junk, 1 << 20);
    assert.ok(back === null || back instanceof Uint8Array);
  }
});
