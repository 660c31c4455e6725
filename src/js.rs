//! JS interop shared by the web modules: the error classes, property access, deferred
//! promises, spawned futures, the clock and platform randomness.

use std::future::Future;
use std::pin::Pin;

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::error::{Error, ErrorCode};
use crate::model::{LastError, Millis};

#[wasm_bindgen(module = "/src/js/errors.js")]
extern "C" {
    #[wasm_bindgen(js_name = OutboxError)]
    type JsOutboxError;

    #[wasm_bindgen(constructor, js_class = "OutboxError")]
    fn new(code: &str, message: &str) -> JsOutboxError;

    #[wasm_bindgen(js_name = NonRetriableError)]
    pub type NonRetriableError;

    #[wasm_bindgen(constructor, js_class = "NonRetriableError")]
    pub fn new(message: &str) -> NonRetriableError;
}

#[wasm_bindgen(module = "/src/js/size.js")]
extern "C" {
    #[wasm_bindgen(js_name = estimateBytes)]
    fn estimate_bytes(value: &JsValue) -> f64;
}

/// Runs `f` to completion in the background. Boxed first, so wasm-bindgen-futures' task
/// machinery is compiled once rather than once per future type: about 10 KB of wasm.
pub fn spawn(f: impl Future<Output = ()> + 'static) {
    let f: Pin<Box<dyn Future<Output = ()>>> = Box::pin(f);
    wasm_bindgen_futures::spawn_local(f);
}

/// `f` as a Promise, run through [`spawn`]: wasm-bindgen-futures' `future_to_promise`
/// would bring its own promise glue, which `Deferred` already is.
pub fn promise(f: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    boxed_promise(Box::pin(f))
}

/// The one instance of [`promise`]'s body.
fn boxed_promise(f: Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>>) -> Promise {
    let d = Deferred::new();
    let p = d.promise.clone();
    spawn(async move {
        match f.await {
            Ok(v) => d.resolve(&v),
            Err(e) => d.reject(&e),
        }
    });
    p
}

/// Approximate stored size of a value (see `size.js`).
pub fn size_of(value: &JsValue) -> u64 {
    estimate_bytes(value) as u64
}

#[wasm_bindgen(module = "/src/js/options.js")]
extern "C" {
    #[wasm_bindgen(js_name = cloneForStorage, catch)]
    fn clone_now(value: &JsValue) -> Result<JsValue, JsValue>;
}

/// The `OutboxError` for a Rust error.
pub fn to_js(err: &Error) -> JsValue {
    JsOutboxError::new(err.code.as_str(), &err.message).into()
}

/// An `OutboxError` (or any thrown value) back as a Rust error.
pub fn from_js(e: &JsValue) -> Error {
    let code = get(e, "code")
        .as_string()
        .and_then(|c| ErrorCode::parse(&c))
        .unwrap_or(ErrorCode::StorageUnavailable);
    Error::new(code, describe(e).message)
}

pub fn err(code: ErrorCode, message: impl Into<String>) -> JsValue {
    to_js(&Error::new(code, message))
}

pub fn now() -> Millis {
    js_sys::Date::now().max(0.0) as Millis
}

/// A string of the crate's own (a property name, a status word) as a JS string, converted
/// once: each crosses into JS the first time only. Keyed by the literal's address and
/// length, so the cache reuses the crate's `u64` map rather than bringing wasm-bindgen's
/// interning (a SipHash map of byte strings, about 3 KB of wasm).
pub fn word(s: &'static str) -> JsValue {
    thread_local! {
        static WORDS: std::cell::RefCell<rustc_hash::FxHashMap<u64, JsValue>> = Default::default();
    }
    let id = (s.as_ptr() as u64) << 32 | s.len() as u64;
    WORDS.with(|w| {
        let mut w = w.borrow_mut();
        // Not `entry`: that is one more instantiation of the map's code.
        if let Some(v) = w.get(&id) {
            return v.clone();
        }
        let v = JsValue::from_str(s);
        w.insert(id, v.clone());
        v
    })
}

pub fn get(obj: &JsValue, key: &'static str) -> JsValue {
    Reflect::get(obj, &word(key)).unwrap_or(JsValue::UNDEFINED)
}

pub fn set(obj: &Object, key: &'static str, value: &JsValue) {
    // Setting a data property on a plain object we created cannot fail.
    let _ = Reflect::set(obj, &word(key), value);
}

/// The structured clone IndexedDB will store, taken now: it checks up front that the
/// value can be stored (so one bad transaction cannot abort a write it shares with
/// others) and is the snapshot the handler later sees. `None` where `structuredClone` is
/// missing; the write itself then reports the failure.
pub fn clone_for_storage(value: &JsValue) -> Result<Option<JsValue>, Error> {
    let clone = clone_now(value).map_err(|e| from_js(&e))?;
    Ok((!clone.is_undefined()).then_some(clone))
}

fn error_name(e: &JsValue) -> Option<String> {
    get(e, "name").as_string()
}

/// Name and message of whatever a handler threw, for `lastError` (the message cut to
/// `MAX_MESSAGE` in `attempt.js`).
pub fn describe(e: &JsValue) -> LastError {
    let name = e.is_object().then(|| error_name(e)).flatten();
    LastError {
        name: name.unwrap_or_else(|| "Error".into()),
        message: message_of(e),
    }
}

/// Whether a handler's error means "do not retry". The name check lets an error from
/// another bundle or realm (an iframe, a second copy of the package) count too.
pub fn is_non_retriable(e: &JsValue) -> bool {
    e.is_instance_of::<NonRetriableError>()
        || (e.is_object() && error_name(e).as_deref() == Some("NonRetriableError"))
}

/// A handler error's `retryAfterMs`, when it is a finite, non-negative number.
pub fn retry_after_ms(e: &JsValue) -> Option<Millis> {
    if !e.is_object() {
        return None;
    }
    get(e, "retryAfterMs")
        .as_f64()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v as Millis)
}

#[wasm_bindgen(module = "/src/js/attempt.js")]
extern "C" {
    #[wasm_bindgen(js_name = messageOf)]
    fn message_of(e: &JsValue) -> String;
    /// A handler's context (but its signal) from the transaction's fields and its stored
    /// payload record.
    #[wasm_bindgen(js_name = handlerContext)]
    pub fn handler_context(
        id: &str,
        idempotency_key: &str,
        keys: &Array,
        payload: &JsValue,
        attempt: u32,
    ) -> JsValue;
    /// Calls handler `f` with `arg`, a context or a batch of them, each given the attempt's
    /// signal; rejects with a `TimeoutError` once `ms` (0: no limit) pass without an outcome
    /// (see `attempt.js`).
    #[wasm_bindgen(js_name = callHandler)]
    pub fn call_handler(
        f: &Function,
        arg: &JsValue,
        outer: &web_sys::AbortSignal,
        ms: u32,
    ) -> Promise;
}

#[wasm_bindgen(module = "/src/js/waiters.js")]
extern "C" {
    /// The promises `settled(id)` returned, by id (see `waiters.js`).
    pub type Waiters;
    #[wasm_bindgen(constructor)]
    pub fn new() -> Waiters;
    #[wasm_bindgen(method)]
    pub fn wait(this: &Waiters, id: &str) -> Promise;
    #[wasm_bindgen(method)]
    pub fn has(this: &Waiters, id: &str) -> bool;
    #[wasm_bindgen(method)]
    pub fn settle(this: &Waiters, id: &str, ok: bool, value: &JsValue);
    #[wasm_bindgen(method, js_name = move)]
    pub fn move_to(this: &Waiters, from: &str, to: &str);
    /// The ids waited on.
    #[wasm_bindgen(method)]
    pub fn ids(this: &Waiters) -> Array;
    #[wasm_bindgen(method, js_name = reject)]
    pub fn reject_all(this: &Waiters, error: &JsValue);
    #[wasm_bindgen(method)]
    pub fn reject(this: &Waiters, error: &JsValue, ids: &Array);
    /// Adds `id` to the next store read for `settled` calls: its ids where it is to start.
    #[wasm_bindgen(method)]
    pub fn ask(this: &Waiters, id: &str) -> Option<Array>;
}

#[wasm_bindgen(module = "/src/js/listeners.js")]
extern "C" {
    /// The functions `subscribe` registered (see `listeners.js`).
    pub type Listeners;
    #[wasm_bindgen(constructor)]
    pub fn new() -> Listeners;
    /// Adds a listener; returns the function that removes it.
    #[wasm_bindgen(method)]
    pub fn add(this: &Listeners, f: &Function) -> Function;
    #[wasm_bindgen(method)]
    pub fn any(this: &Listeners) -> bool;
    #[wasm_bindgen(method)]
    pub fn deliver(this: &Listeners, ev: &JsValue);
}

/// A promise with its settle functions, for results that arrive from another task.
pub struct Deferred {
    pub promise: Promise,
    resolve: Function,
    reject: Function,
}

impl Deferred {
    pub fn new() -> Self {
        let mut resolve = JsValue::UNDEFINED;
        let mut reject = JsValue::UNDEFINED;
        // The executor runs synchronously inside `new Promise`, so both are set here.
        let promise = Promise::new(&mut |res, rej| {
            resolve = res.into();
            reject = rej.into();
        });
        Self {
            promise,
            resolve: resolve.unchecked_into(),
            reject: reject.unchecked_into(),
        }
    }

    /// The resolve function itself, for a callback that outlives this value.
    pub fn resolver(&self) -> Function {
        self.resolve.clone()
    }

    pub fn resolve(&self, value: &JsValue) {
        let _ = self.resolve.call1(&JsValue::UNDEFINED, value);
    }

    pub fn reject(&self, value: &JsValue) {
        let _ = self.reject.call1(&JsValue::UNDEFINED, value);
    }
}

#[wasm_bindgen(module = "/src/js/random.js")]
extern "C" {
    /// A random (version 4) UUID.
    #[wasm_bindgen(js_name = uuid)]
    pub fn uuid_v4() -> String;
    #[wasm_bindgen(js_name = bits)]
    fn random_bits_f64() -> f64;
}

/// 53 random bits (a seed, a context id): all that survives a trip through a JS number.
pub fn random_bits() -> u64 {
    random_bits_f64() as u64
}
