# Two commands matter: `make demo` and `make test`. Both install what is missing first.
SHELL := /bin/bash
WASM_BINDGEN_VERSION := 0.2.130
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
export CHROMEDRIVER ?= /usr/bin/chromedriver

.PHONY: setup lint unit pkg wasm-tests e2e test demo bench

setup:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src
	@wasm-bindgen --version 2>/dev/null | grep -q ' $(WASM_BINDGEN_VERSION)$$' || cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver; fi
	@[ -d node_modules/playwright-core ] && [ -d node_modules/binaryen ] || npm ci --no-audit --no-fund

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --target wasm32-unknown-unknown -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --target wasm32-unknown-unknown

# The JS payload codec's tests need only Node.
unit:
	cargo test
	node --test tests-js/

pkg:
	./scripts/build-pkg.sh

# The test runner's HTTP server (tiny_http) can lose a connection when the browser opens
# several at once: its thread pool queues the connection's reader behind threads blocked on
# idle keep-alive connections, and the page waits forever on a module that is never
# served (seen in about half the runs on this 2-core machine, before any test runs). A
# suite takes seconds, so each gets up to eight attempts of 45 s; between them the browser
# and driver an attempt leaves behind are stopped. A real failure fails every time.
# The Rust API's doc examples are compiled for wasm32 (they are `no_run`).
wasm-tests:
	cargo test --target wasm32-unknown-unknown --doc
	cargo test --target wasm32-unknown-unknown --no-run
	for t in page worker rust_api; do \
	  for attempt in 1 2 3 4 5 6 7 8; do \
	    timeout -k 5 45 cargo test --target wasm32-unknown-unknown --test $$t && break; \
	    pkill -f '^wasm-bindgen-test-runner'; pkill -f '^/usr/bin/chromedriver'; pkill -f '^/usr/lib/chromium/chromium'; sleep 1; \
	    [ $$attempt -lt 8 ] || exit 1; \
	  done; \
	done

e2e: pkg
	node --test --test-concurrency=1 tests-e2e/

test: setup lint unit wasm-tests e2e

demo: setup pkg
	node www-demo/server.js

# The compression rows also measure pure-Rust codecs, built here for the benchmark only;
# the peer rows bundle @tanstack/offline-transactions and workbox-background-sync.
bench: setup pkg
	CARGO_TARGET_DIR=target cargo build --release --target wasm32-unknown-unknown --manifest-path bench/codecs/Cargo.toml
	wasm-bindgen --target web --out-dir bench/codecs/pkg target/wasm32-unknown-unknown/release/outbox_bench_codecs.wasm
	node_modules/.bin/esbuild bench/peers.js --bundle --format=esm --define:process.env.NODE_ENV='"production"' \
	  --external:../pkg/offline_outbox.js --log-level=warning --outfile=bench/peers.bundle.js
	node bench/run.js
