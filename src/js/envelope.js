// Payload records at rest. As given, `{ mutations, metadata }` is stored by structured
// clone. Sealed, it is `{ $sealed: 1, z, iv?, data }`: the record as JSON text through the
// backup codec, deflated in Rust (`z`) where that pays, then encrypted with AES-GCM under
// the outbox's key when `iv` is present. The transaction id is the cipher's additional
// data, so a sealed payload cannot be passed off as another transaction's.

import { encodeValue, encodeValueNow, decodeValue } from './codec.js';

const utf8 = new TextEncoder();
const KEY = 'cryptoKey';

/** UTF-8 JSON of `value` at once; null if it holds a Blob (stored as given then). */
export function jsonBytes(value) {
  const json = encodeValueNow(value);
  return json === null ? null : utf8.encode(JSON.stringify(json));
}

export async function jsonBytesAsync(value) {
  return utf8.encode(JSON.stringify(await encodeValue(value)));
}

function fromJsonBytes(bytes) {
  return decodeValue(JSON.parse(new TextDecoder().decode(bytes)), 'payload');
}

export function sealed(z, data, iv) {
  return iv ? { $sealed: 1, z, iv, data } : { $sealed: 1, z, data };
}

function isSealed(v) {
  return v !== null && typeof v === 'object' && v.$sealed === 1;
}

export async function encrypt(bytes, id, key) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const data = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: utf8.encode(id) }, key, bytes);
  return { iv, data: new Uint8Array(data) };
}

async function decrypt(record, id, key) {
  if (!key) throw 'it is encrypted and this database holds no key';
  try {
    const { iv, data } = record;
    return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: utf8.encode(id) }, key, data));
  } catch (e) {
    throw e?.name === 'OperationError' ? 'it was altered or encrypted under another key' : String(e?.message ?? e);
  }
}

/**
 * Opens the sealed records among `values` (payload records as read, of transactions
 * `ids`) in place; null at once when none is sealed, else a promise. One that cannot be
 * opened (altered, its key gone) becomes `{ $unreadable: why }`. `inflate` is the crate's
 * deflate reader: the bytes, or null when they are damaged.
 */
export function openAll(values, ids, key, inflate) {
  if (!values.some(isSealed)) return null;
  return Promise.all(values.map(async (v, i) => {
    if (!isSealed(v)) return;
    try {
      let bytes = v.iv ? await decrypt(v, ids[i], key) : v.data;
      if (v.z === true && !(bytes instanceof Uint8Array && (bytes = inflate(bytes)))) {
        throw 'its compressed bytes are damaged';
      }
      try {
        values[i] = fromJsonBytes(bytes);
      } catch (e) {
        throw `it does not decode: ${e?.message ?? e}`;
      }
    } catch (why) {
      values[i] = { $unreadable: `cannot open the sealed payload: ${why}` };
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
