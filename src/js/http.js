// The built-in `http` handler: a transaction whose `mutations` describe a request
// (`{ method, url, headers?, body? }`) is replayed with `fetch`, carrying an
// `Idempotency-Key` header. 2xx acknowledges; 408, 425, 429, 5xx and network errors
// retry (honouring `Retry-After`); any other status is final. It lives in JS because it
// is nothing but calls into fetch, Headers and URL: as Rust it took 3.7 KB of the
// gzipped wasm.
import { isPlain } from './options.js';

const FIELDS = ['method', 'url', 'headers', 'body'];
// RFC 9110's token characters.
const TOKEN = /^[\w!#$%&'*+.^`|~-]+$/;
const EXCERPT = 200;

const hasBody = (b) => b !== undefined && b !== null;

/** Why `m` is not a request `fetch` will accept (checked at enqueue), or undefined. */
export function httpProblem(m) {
  if (!isPlain(m)) return 'http mutations must be { method, url, headers?, body? }';
  let keys, method, url, headers, body, headersOk;
  try {
    keys = Object.keys(m);
    ({ method, url, headers, body } = m);
    headersOk = headers === undefined
      || (isPlain(headers) && Object.values(headers).every((v) => typeof v === 'string'));
  } catch {
    return 'http mutations cannot be read';
  }
  const unknown = keys.find((k) => !FIELDS.includes(k));
  if (unknown !== undefined) return `unknown http field "${unknown}"`;
  if (typeof method !== 'string' || !TOKEN.test(method)) return 'http method must be an HTTP token such as "POST"';
  // fetch refuses these on every attempt: retrying them could never succeed.
  if (/^(connect|trace|track)$/i.test(method)) return `fetch refuses the ${method} method`;
  if (typeof url !== 'string') return 'http url must be a string';
  if (typeof URL === 'function') {
    let scheme;
    try {
      scheme = new URL(url, globalThis.location?.href).protocol;
    } catch {
      return `http url "${url}" does not parse`;
    }
    if (!/^https?:$/.test(scheme)) return `http url "${url}" is not http or https`;
  }
  if (!headersOk) return 'http headers must be an object of strings';
  try {
    new Headers(headers);
  } catch (e) {
    return `http headers are not valid: ${e.message}`;
  }
  // What structured clone stores and fetch sends as bytes; a Blob (a File too) is how a
  // photo picked offline gets queued, its type the request's Content-Type unless a header
  // says otherwise.
  if (hasBody(body) && typeof body !== 'string' && !(body instanceof ArrayBuffer) && !ArrayBuffer.isView(body) && !(body instanceof Blob)) {
    return 'http body must be a string, an ArrayBuffer, a typed array or a Blob';
  }
  if (/^(get|head)$/i.test(method) && hasBody(body)) return 'a GET or HEAD request cannot have a body';
  return undefined;
}

const failure = (name, message, more) => Object.assign(new Error(message), { name }, more);

/** `Retry-After` in ms from now: delta-seconds or an HTTP date; undefined if neither. */
function retryAfterMs(value) {
  const v = value?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

/**
 * The handler: sends the context's `mutations` once. Resolves on 2xx; otherwise rejects
 * with what a handler would throw: an error with `retryAfterMs` where the server asked for
 * a delay, and `final: true` where retrying cannot help (the outbox then dead-letters it
 * under the error's own name).
 */
export async function httpSend({ mutations: m, idempotencyKey, signal }) {
  let init;
  try {
    const headers = new Headers(m.headers);
    headers.set('Idempotency-Key', idempotencyKey);
    init = { method: m.method, headers, signal };
    if (hasBody(m.body)) init.body = m.body;
  } catch (e) {
    throw Object.assign(e, { final: true });
  }
  if (typeof fetch !== 'function') throw failure('NetworkError', 'fetch is not available here');
  let response;
  try {
    response = await fetch(m.url, init);
  } catch (e) {
    throw e?.name === 'TypeError' ? failure('NetworkError', e.message) : e;
  }
  const { status } = response;
  if (status >= 200 && status < 300) return;
  // The body's start only, read as it comes: an error page can be large, or slow.
  let excerpt = '';
  try {
    const reader = response.body.getReader();
    const text = new TextDecoder();
    for (let r; excerpt.length < EXCERPT && !(r = await reader.read()).done;) excerpt += text.decode(r.value, { stream: true });
    reader.cancel();
  } catch { /* no body, or one that failed midway: what was read */ }
  excerpt = excerpt.slice(0, EXCERPT);
  const retry = status === 408 || status === 425 || status === 429 || (status >= 500 && status < 600);
  throw failure('HttpError', `HTTP ${status} ${response.statusText}: ${excerpt}`, retry
    ? { retryAfterMs: retryAfterMs(response.headers.get('Retry-After')) }
    : { final: true });
}

/**
 * `httpSend` itself, which the crate registers under the name `http`: a function it calls
 * is what makes wasm-bindgen ship this file, which `options.js` imports too.
 */
export const httpHandler = () => httpSend;
