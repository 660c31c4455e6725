// The value codec (src/js/codec.js) against structured clone, on seeded random values:
// what `encodeValue` writes, through JSON text and `decodeValue`, is the value IndexedDB
// would store. Backups and sealed (compressed or encrypted) payloads go through it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeValue, encodeValueNow, decodeValue } from '../src/js/codec.js';
import { prng, values, same, show } from './values.js';

test('encode, JSON text, decode: the structured clone of every value', async () => {
  const rand = prng(7);
  const v = values(rand);
  for (let i = 0; i < 3000; i++) {
    const value = v.any(4, false);
    const clone = structuredClone(value);
    const text = JSON.stringify(await encodeValue(clone));
    const back = decodeValue(JSON.parse(text), '$');
    assert.ok(await same(back, clone), `case ${i}: ${show(clone)} came back as ${show(back)}`);
    const now = encodeValueNow(clone);
    if (now !== null) assert.equal(JSON.stringify(now), text, `case ${i}: encodeValueNow differs`);
  }
});

test('the view form written before buffers were kept still reads', () => {
  const v = decodeValue({ $t: 'view', type: 'Uint16Array', v: 'AQACAA==' }, '$');
  assert.ok(v instanceof Uint16Array);
  assert.deepEqual([...v], [1, 2]);
});

test('malformed tags are TypeErrors naming where', () => {
  for (const [json, what] of [
    [{ $t: 'array', v: [1], props: { length: 5 } }, /length/],
    [{ $t: 'array', v: 1, props: {} }, /items and props/],
    [{ $t: 'view', type: 'Uint32Array', buffer: { $t: 'arraybuffer', v: 'AAAA' }, offset: 1, length: 1 }, /does not fit/],
    [{ $t: 'view', type: 'Uint8Array', buffer: 5, offset: 0, length: 0 }, /array buffer/],
  ]) assert.throws(() => decodeValue({ x: [json] }, '$'), (e) => e instanceof TypeError && /\$\.x\[0\]/.test(e.message) && what.test(e.message));
});
