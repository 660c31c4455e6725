//! The store and executor suite in a dedicated worker: no window, no document.
#![cfg(target_arch = "wasm32")]

#[macro_use]
mod common;

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_dedicated_worker);

all_tests!();
