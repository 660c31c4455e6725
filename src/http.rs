//! The built-in `http` handler: a transaction whose `mutations` describe a request
//! (`{ method, url, headers?, body? }`) is replayed with `fetch`, carrying an
//! `Idempotency-Key` header. 2xx acknowledges; 408, 425, 429, 5xx and network errors
//! retry (honouring `Retry-After`); any other status is final. The requests themselves
//! are made in `src/js/http.js`: it is all calls into fetch, cheaper in JS than bound.

use js_sys::Promise;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use web_sys::AbortSignal;

#[wasm_bindgen(module = "/src/js/http.js")]
extern "C" {
    /// Resolves on 2xx; rejects as a handler throws, with `final: true` when retrying
    /// cannot help.
    #[wasm_bindgen(js_name = httpSend)]
    pub fn send(m: &JsValue, idempotency_key: &str, signal: &AbortSignal) -> Promise;
}
