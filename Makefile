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
	@[ -d node_modules/playwright-core ] && [ -d node_modules/binaryen ] && [ -d node_modules/typescript ] || npm ci --no-audit --no-fund

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --target wasm32-unknown-unknown -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --target wasm32-unknown-unknown
	node_modules/.bin/tsc -p tests-types

# The JS codecs' tests need only Node.
unit:
	cargo test
	node --test tests-js/

pkg:
	./scripts/build-pkg.sh

# The runner (.cargo/config.toml) puts a loopback proxy in front of the test server:
# scripts/wasm-test-runner.mjs says why. This also compiles the Rust API's doc examples
# for wasm32 (they are `no_run`).
wasm-tests:
	cargo test --target wasm32-unknown-unknown

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
