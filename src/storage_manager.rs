//! The StorageManager (`navigator.storage`): asking for persistent storage and reading the
//! usage estimate, in `js/storage.js`. Feature-detected; `None` where the browser lacks it.

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

#[wasm_bindgen(module = "/src/js/storage.js")]
extern "C" {
    /// Whether storage is persistent (a boolean, or undefined), asking for it first when
    /// `request` and it is not.
    pub fn persist(request: bool) -> Promise;
    /// `[usage, quota]` in bytes for the whole origin, or undefined.
    pub fn estimate() -> Promise;
}

/// What [`estimate`] resolved to, as `(usage, quota)`.
pub fn usage(estimate: &JsValue) -> Option<(f64, f64)> {
    let pair = estimate.dyn_ref::<Array>()?;
    Some((pair.get(0).as_f64()?, pair.get(1).as_f64()?))
}
