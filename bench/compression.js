// Compression of payloads: the outbox's own deflate (what it ships, in src/js/envelope.js)
// against the same codec as it was compiled into the wasm until session 13, the browser's
// CompressionStream (deflate-raw) and pure-Rust codecs compiled to wasm (miniz_oxide's
// deflate, lz4_flex), on JSON shaped like what offline apps queue. Sizes and times per
// payload, same page.
import initCodecs, { deflate, inflate, lz4, unlz4, outbox_deflate, outbox_inflate } from './codecs/pkg/outbox_bench_codecs.js';
import { deflate as jsDeflate, inflate as jsInflate } from '../src/js/envelope.js';

// Seeded, so every run compresses the same bytes.
function rng(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const WORDS = ('the a to of and in is it you that for on was with as have be at not this are by from or one had but what all were when we there can an your which their said if do will each about how up out them then she many some so these would other into has more her two like him see time could no make than first been its who now people my made over did down only way find use may water long little very after words called just where most know get through back much before go good new write our used me man too any day same right look think also around another came come work three word must because does part even place well such here take why things help put years different away again off went old number great tell men say small every found still between name should home big give air line set own under read last never us left end along while might next sound below saw something thought both few those always looked show large often together asked house world going want school important until form food keep children feet land side without boy once animals life enough took sometimes four head above kind began almost live page got earth need far hand high year mother light parts country father let night following picture being study second eyes soon times story boys since white days ever paper hard near sentence better best across during today others however sure means knew').split(' ');

function sentence(r, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(WORDS[Math.floor(r() * WORDS.length)]);
  return `${out.join(' ')}.`;
}
const hex = (r, n) => Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join('');
const uuid = (r) => `${hex(r, 8)}-${hex(r, 4)}-4${hex(r, 3)}-a${hex(r, 3)}-${hex(r, 12)}`;
const iso = (r) => new Date(1764547200000 + Math.floor(r() * 8.64e7)).toISOString();

/** Realistic payloads, each a few times over so timings average. */
function corpus() {
  const r = rng(42);
  return {
    'form, 40 answers': () => ({
      formId: 'site-inspection-v3', submittedAt: iso(r), inspector: { id: uuid(r), name: 'Dana Whitfield' },
      location: { lat: 51.5 + r(), lng: -0.12 - r(), accuracyM: Math.round(r() * 100) / 10 },
      answers: Array.from({ length: 40 }, (_, i) => ({ questionId: `q-${i}`, type: i % 3 ? 'choice' : 'text', value: i % 3 ? `option-${Math.floor(r() * 4)}` : sentence(r, 8 + Math.floor(r() * 8)), flagged: r() < 0.15 })),
    }),
    'chat, 20 messages': () => ({
      roomId: uuid(r),
      messages: Array.from({ length: 20 }, () => ({ id: uuid(r), author: { id: uuid(r), name: ['ana', 'bo', 'cy', 'di'][Math.floor(r() * 4)] }, text: sentence(r, 5 + Math.floor(r() * 20)), sentAt: iso(r), reactions: r() < 0.3 ? [{ emoji: '+1', count: 1 + Math.floor(r() * 3) }] : [] })),
    }),
    'todo sync, 100 items': () => ({
      listId: uuid(r), ops: Array.from({ length: 100 }, () => ({ op: r() < 0.8 ? 'upsert' : 'delete', id: uuid(r), title: sentence(r, 3 + Math.floor(r() * 6)), done: r() < 0.4, tags: r() < 0.5 ? ['home', 'work', 'errand'].slice(0, 1 + Math.floor(r() * 3)) : [], updatedAt: iso(r), version: Math.floor(r() * 50) })),
    }),
    'record edit, ~1 KiB': () => ({
      table: 'customers', id: uuid(r), patch: { name: 'Harper Quinn', email: 'harper.quinn@example.org', phone: '+44 20 7946 0958', notes: sentence(r, 130), address: { line1: '221B Baker Street', city: 'London', postcode: 'NW1 6XE', country: 'GB' } }, baseVersion: 17, at: iso(r),
    }),
    'document, 60 blocks': () => ({
      docId: uuid(r), title: sentence(r, 6), blocks: Array.from({ length: 60 }, (_, i) => ({ id: uuid(r), type: ['paragraph', 'heading', 'list-item'][i % 3], text: sentence(r, 10 + Math.floor(r() * 30)), marks: r() < 0.3 ? [{ type: 'bold', from: 0, to: 5 }] : [] })),
    }),
  };
}

const utf8 = new TextEncoder();
async function through(bytes, transform) {
  return new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(transform)).arrayBuffer());
}
const codecs = {
  'offline-outbox deflate (JS, shipped)': { pack: async (b) => jsDeflate(b), unpack: async (b) => jsInflate(b, Infinity) },
  'offline-outbox deflate (Rust in the wasm, before)': { pack: async (b) => outbox_deflate(b), unpack: async (b) => outbox_inflate(b) },
  'CompressionStream deflate-raw': {
    pack: (b) => through(b, new CompressionStream('deflate-raw')),
    unpack: (b) => through(b, new DecompressionStream('deflate-raw')),
  },
  'miniz_oxide deflate (wasm), level 6': { pack: async (b) => deflate(b, 6), unpack: async (b) => inflate(b) },
  'miniz_oxide deflate (wasm), level 1': { pack: async (b) => deflate(b, 1), unpack: async (b) => inflate(b) },
  'lz4_flex (wasm)': { pack: async (b) => lz4(b), unpack: async (b) => unlz4(b) },
};

export async function runCompression() {
  await initCodecs();
  const rows = [];
  const samples = Object.entries(corpus()).map(([kind, make]) => [kind, Array.from({ length: 20 }, () => utf8.encode(JSON.stringify(make())))]);
  for (const [kind, inputs] of samples) {
    const json = inputs.reduce((a, b) => a + b.length, 0) / inputs.length;
    for (const [name, c] of Object.entries(codecs)) {
      for (const b of inputs.slice(0, 5)) {
        const back = await c.unpack(await c.pack(b));
        if (back.length !== b.length || back.some((x, i) => x !== b[i])) throw new Error(`${name} does not round-trip ${kind}`);
      }
      let size = 0; let packMs = 0; let unpackMs = 0;
      for (let round = 0; round < 5; round++) {
        for (const b of inputs) {
          let t = performance.now();
          const p = await c.pack(b);
          packMs += performance.now() - t;
          t = performance.now();
          await c.unpack(p);
          unpackMs += performance.now() - t;
          if (round === 0) size += p.length;
        }
      }
      const n = inputs.length * 5;
      rows.push({ kind, codec: name, json: Math.round(json), size: Math.round(size / inputs.length), packUs: (packMs / n) * 1000, unpackUs: (unpackMs / n) * 1000 });
    }
  }
  return rows;
}

/**
 * The outbox itself with each at-rest mode, on the form payloads: 100 concurrent
 * enqueues (median of 10 rounds), stored bytes per payload, and a drain of 1,000 after
 * reopening (payloads read back and opened).
 */
export async function runAtRest(Outbox) {
  const make = corpus()['form, 40 answers'];
  const forms = Array.from({ length: 100 }, make);
  const rows = [];
  for (const [mode, opts] of [['as given', {}], ['compress', { compress: true }], ['encrypt', { encrypt: true }], ['compress + encrypt', { compress: true, encrypt: true }]]) {
    const name = `bench-rest-${mode}-${Math.random().toString(36).slice(2)}`;
    const never = () => new Promise(() => {});
    const ob = await Outbox.open({ name, handlers: { h: never }, ...opts });
    const times = [];
    for (let round = 0; round < 10; round++) {
      const t = performance.now();
      await Promise.all(forms.map((m, i) => ob.enqueue({ handler: 'h', keys: [`k${i}`], mutations: m })));
      times.push(performance.now() - t);
    }
    const stats = await ob.stats();
    await ob.close();
    times.sort((a, b) => a - b);
    const t0 = performance.now();
    let sent = 0;
    const reader = await Outbox.open({ name, handlers: { h: async () => { sent++; } } });
    for (;;) { const r = await reader.drain(); if (r.remaining === 0) break; }
    const drainMs = performance.now() - t0;
    await reader.close();
    rows.push({ mode, enqueuePerSec: 100000 / times[5], bytesPerPayload: stats.bytes / stats.pending, drainPerSec: (sent / drainMs) * 1000 });
  }
  return rows;
}
