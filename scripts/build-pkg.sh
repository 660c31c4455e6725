#!/usr/bin/env bash
# Builds the npm package into pkg/: release wasm, wasm-bindgen --target web glue,
# size optimization with binaryen's wasm-opt, then pkg-template/ on top.
set -euo pipefail
cd "$(dirname "$0")/.."

# std is compiled with the crate so that a panic is a bare trap: with panic=abort it already
# ends the module, and nothing in wasm32-unknown-unknown prints its message, so the message,
# its source location and the formatting code behind them were only bytes (about 12 KB
# gzipped, with Debug formatting, which no message of this crate uses). These are unstable
# flags of the pinned stable compiler, hence RUSTC_BOOTSTRAP; std's source comes from the
# rust-src component. Its own target directory keeps these flags from rebuilding target/.
# std's `optimize_for_size` picks its small variants (merge sort and heapsort instead of
# driftsort and ipnsort, plain integer formatting): about 4 KB gzipped; the sorts stay
# O(n log n), and the hot paths sort only short lists (an acknowledgement batch's seqs).
# Without the reference-types feature wasm-bindgen keeps JS values in a JS array rather
# than a wasm table, and passes them without its per-export "externref shims": 1.5 KB
# less wasm for 0.25 KB more glue, gzipped.
RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none -Ctarget-feature=-reference-types" \
  cargo build --release --target wasm32-unknown-unknown --lib -Zbuild-std=std,panic_abort \
  -Zbuild-std-features=optimize_for_size --target-dir target/pkg
rm -rf pkg
wasm-bindgen --target web --out-dir pkg --out-name offline_outbox \
  target/pkg/wasm32-unknown-unknown/release/offline_outbox.wasm

# The error classes are JS (a Rust type cannot extend Error); wasm-bindgen places them in
# a snippet, and the package entry re-exports them.
snippet=$(cd pkg && ls snippets/*/src/js/errors.js)
echo "export { OutboxError, NonRetriableError } from './${snippet}';" >> pkg/offline_outbox.js

# --converge repeats -Oz until it stops shrinking the module: about 1 KiB gzipped.
# Flattening the code and rebuilding its control flow with the relooper in between lets
# the second -Oz find 0.3 KB more. (-iit, which would let it run loads speculatively,
# saved 0.3 KB more; a speculative load past the end of memory traps, so it is not used.)
# --low-memory-unused lets it fold constant offsets into loads and stores (about 1 KB): it
# assumes nothing lives in the first KiB of memory, and Rust's wasm32 layout puts the
# stack first, growing down from 1 MiB, with data above it, so only a stack within 1 KiB
# of overflowing would reach there. The target-features section only tells tools which
# features the module uses; browsers ignore it.
features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue)
node_modules/.bin/wasm-opt -Oz --flatten --rereloop -Oz --converge --low-memory-unused \
  --strip-debug --strip-producers --strip-target-features "${features[@]}" \
  pkg/offline_outbox_bg.wasm -o pkg/offline_outbox_bg.wasm
node scripts/minify-names.mjs pkg/offline_outbox_bg.wasm pkg/offline_outbox.js "${features[@]}"

# The glue ships as one minified module with its snippets bundled in: one file gzips
# smaller than several and is one request, where each snippet would be one more after
# the glue's, in turn (the error classes keep their names as static fields, for
# `err.constructor.name`). wasm-bindgen's glue lists a snippet module twice in its imports
# object, which esbuild would warn about.
node_modules/.bin/esbuild pkg/offline_outbox.js --bundle --minify --format=esm --allow-overwrite \
  --log-override:duplicate-object-key=silent --log-level=warning --outfile=pkg/offline_outbox.js
# terser's further passes and its frequency-ordered names gzip 0.5 KB smaller than
# esbuild's output alone (a third pass 16 bytes more than two; more find nothing); ES2020
# output (the sources use ?? and ?. already) and arrows for function expressions that use
# neither `this` nor `arguments` (none is ever called with `new`) 0.1 KB more.
node_modules/.bin/terser pkg/offline_outbox.js --module --ecma 2020 --compress passes=3,unsafe_arrows=true \
  --mangle toplevel=true \
  -o pkg/offline_outbox.js
rm -r pkg/snippets

cp pkg-template/package.json pkg-template/README.md pkg-template/offline_outbox.d.ts \
  pkg-template/offline_outbox_sw.js pkg-template/offline_outbox_sw.d.ts pkg/
rm -f pkg/.gitignore pkg/offline_outbox_bg.wasm.d.ts
# The service worker caches the module under a name of this build's, a hash of the module
# (which it checks the module it fetches against): a worker's glue then never meets another
# build's module. (Glue that differs over the same module fits it all the same.)
build=$(sha256sum pkg/offline_outbox_bg.wasm | cut -c1-16)
sed -i "s/__BUILD__/${build}/" pkg/offline_outbox_sw.js

# Classic service workers cannot import modules: the same code bundled as one script
# that defines the global `offlineOutbox` (wasm-bindgen's no-modules target cannot carry
# the JS snippets this crate uses).
node_modules/.bin/esbuild pkg/offline_outbox_sw.js --bundle --format=iife --global-name=offlineOutbox \
  --log-override:empty-import-meta=silent --log-override:duplicate-object-key=silent --log-level=warning --outfile=pkg/offline_outbox_classic.js

# The size budget counts the wasm and the glue, each gzipped (as the benchmark checks it).
gz() { local n=0; for f in "$@"; do n=$(( n + $(gzip -9c "$f" | wc -c) )); done; echo $n; }
wasm=$(gz pkg/offline_outbox_bg.wasm)
js=$(gz pkg/offline_outbox.js)
echo "pkg/: wasm $wasm B gzipped, JS glue $js B gzipped, total $(( (wasm + js) / 1024 )) KiB gzipped (budget 100 KiB)"
