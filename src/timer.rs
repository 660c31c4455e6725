//! One `setTimeout`, cleared when dropped: the executor's retry timer, lease heartbeats,
//! request time limits and drain budgets.
//!
//! In place of gloo-timers, whose `Timeout` unwraps the `setTimeout` result with
//! `unwrap_throw`: that brought wasm-bindgen's panic messages into the package for a call
//! that does not fail when handed a function.

use js_sys::Function;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, ms: u32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// Calls its callback once after `ms`, unless dropped first.
pub struct Timeout {
    id: JsValue,
    _callback: Closure<dyn FnMut()>,
}

impl Timeout {
    pub fn new(ms: u32, callback: impl FnOnce() + 'static) -> Self {
        let callback = Closure::once(callback);
        let id = set_timeout(callback.as_ref().unchecked_ref(), ms);
        Timeout {
            id,
            _callback: callback,
        }
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        clear_timeout(&self.id);
    }
}
