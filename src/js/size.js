// Approximate stored size of a structured-clone value, for byte counts in stats and
// capacity limits. Walks the value once; shared and cyclic references count once.
export function estimateBytes(value) {
  const seen = new Set();
  const stack = [value];
  let bytes = 0;
  while (stack.length) {
    const v = stack.pop();
    switch (typeof v) {
      case 'string': bytes += v.length + 2; continue;
      case 'number': case 'bigint': bytes += 9; continue;
      case 'boolean': case 'undefined': bytes += 1; continue;
      case 'object': break;
      default: continue;
    }
    if (v === null) { bytes += 1; continue; }
    if (seen.has(v)) { bytes += 2; continue; }
    seen.add(v);
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) { bytes += v.byteLength + 8; continue; }
    if (v instanceof Blob) { bytes += v.size + 16; continue; }
    if (v instanceof Date) { bytes += 9; continue; }
    if (v instanceof Map) { bytes += 4; for (const [k, x] of v) stack.push(k, x); continue; }
    if (v instanceof Set) { bytes += 4; for (const x of v) stack.push(x); continue; }
    bytes += 4;
    for (const k of Object.keys(v)) { bytes += k.length + 2; stack.push(v[k]); }
  }
  return bytes;
}
