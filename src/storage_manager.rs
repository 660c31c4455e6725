//! The StorageManager (`navigator.storage`): asking for persistent storage, in
//! `js/storage.js` (where `stats()` also reads the usage estimate). Feature-detected.

use js_sys::Promise;
use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen(module = "/src/js/storage.js")]
extern "C" {
    /// Whether storage is persistent (a boolean, or undefined), asking for it first when
    /// `request` and it is not.
    pub fn persist(request: bool) -> Promise;
}
