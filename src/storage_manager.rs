//! The StorageManager (`navigator.storage`): asking for persistent storage and reading the
//! usage estimate. Feature-detected; `None` where the browser lacks it.

use js_sys::{Function, Promise};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::js;

async fn call(method: &'static str) -> Option<JsValue> {
    let storage = js::get(&js::get(&js_sys::global(), "navigator"), "storage");
    let f: Function = js::get(&storage, method).dyn_into().ok()?;
    let promise: Promise = f.call0(&storage).ok()?.dyn_into().ok()?;
    JsFuture::from(promise).await.ok()
}

/// Whether storage is persistent, asking for it first when `request` and it is not.
pub async fn persist(request: bool) -> Option<bool> {
    let already = call("persisted").await?.as_bool()?;
    if already || !request {
        return Some(already);
    }
    call("persist").await?.as_bool()
}

/// `(usage, quota)` in bytes for the whole origin.
pub async fn estimate() -> Option<(f64, f64)> {
    let e = call("estimate").await?;
    Some((
        js::get(&e, "usage").as_f64()?,
        js::get(&e, "quota").as_f64()?,
    ))
}
