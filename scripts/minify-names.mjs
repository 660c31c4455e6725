// Gives the wasm's imports and exports one- or two-letter names and rewrites the glue to
// match. wasm-bindgen names each import after its Rust path plus a 16-digit hash, and each
// closure export after its full type: hundreds of names that gzip cannot shorten, stored
// once in the wasm and again in the glue.
//
//   node scripts/minify-names.mjs pkg/offline_outbox_bg.wasm pkg/offline_outbox.js [wasm-opt --enable-* flags]
//
// binaryen renames everything (all imports move to one module, "a") and prints the map;
// the glue's import object and its `wasm.<export>` uses are rewritten from that map. A
// name the map lacks is an error: a glue the wasm no longer fits must not ship.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const [wasmPath, gluePath, ...features] = process.argv.slice(2);
const map = JSON.parse(execFileSync('node_modules/.bin/wasm-opt', [
  '--minify-imports-and-exports-and-modules', ...features, wasmPath, '-o', wasmPath,
], { encoding: 'utf8' }));

let glue = readFileSync(gluePath, 'utf8');
const fail = (what) => { throw new Error(`minify-names: ${what}`); };

// The import object: wasm-bindgen's own imports are the `import0` literal (keys renamed in
// place); the snippets' are module namespaces (`import * as importN from '<module>'`),
// referred to under their new names.
const namespaces = new Map([...glue.matchAll(/^import \* as (import\d+) from "([^"]+)"$/gm)].map((m) => [m[2], m[1]]));
const own = './offline_outbox_bg.js';
const snippets = [];
for (const [module, name, short] of map.imports) {
  if (module === own) {
    const key = new RegExp(`^(\\s+)${name.replace(/\$/g, '\\$')}: `, 'm');
    if (!key.test(glue)) fail(`import ${name} is not in the glue`);
    glue = glue.replace(key, `$1${short}: `);
  } else {
    const ns = namespaces.get(module) ?? fail(`no namespace import of ${module}`);
    snippets.push(`${short}: ${ns}.${name}`);
  }
}
const returned = /return \{\n\s+__proto__: null,\n\s+"\.\/offline_outbox_bg\.js": import0,\n(\s+"[^"]+": import\d+,\n)*\s+\};/;
if (!returned.test(glue)) fail('the import object is not where it was');
glue = glue.replace(returned, `return { a: Object.assign(import0, { ${snippets.join(', ')} }) };`);

// A module imported under several names is now referred to under one.
glue = glue.replace(/^import \* as (import\d+) from "[^"]+"\n/gm, (line, ns) => (glue.includes(`${ns}.`) ? line : ''));

const exports = new Map(map.exports);
glue = glue.replace(/\bwasm\.(\w+)/g, (_, name) => `wasm.${exports.get(name) ?? fail(`export ${name} is not in the wasm`)}`);
writeFileSync(gluePath, glue);
