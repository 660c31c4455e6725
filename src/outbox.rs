//! The JS façade: the `Outbox` class exactly as DESIGN.md's contract states it. Each
//! method validates its arguments, then hands over to the engine; every failure reaches
//! JS as an `OutboxError` with a code, never as a panic.

use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::engine::Engine;
use crate::error::{Error, ErrorCode, Result};
use crate::js;
use crate::model::Millis;

/// The JS `Outbox` (Rust code uses [`crate::Outbox`]).
#[wasm_bindgen(js_name = Outbox)]
pub struct JsOutbox {
    engine: Rc<Engine>,
}

fn id_arg(id: &JsValue) -> Result<String> {
    id.as_string().filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::new(
            ErrorCode::InvalidTransaction,
            "id must be a non-empty string",
        )
    })
}

fn run<F>(f: F) -> Promise
where
    F: std::future::Future<Output = Result<JsValue>> + 'static,
{
    run_boxed(Box::pin(f))
}

/// Not generic: an async block inside a generic function is compiled once per type
/// argument, even where it only holds a boxed future (about 1 KB gzipped over the
/// methods).
fn run_boxed(f: std::pin::Pin<Box<dyn std::future::Future<Output = Result<JsValue>>>>) -> Promise {
    js::promise(async move { f.await.map_err(|e| js::to_js(&e)) })
}

/// `f` of a valid id (else a rejection), resolving with `undefined`.
fn with_id<F>(id: &JsValue, f: impl FnOnce(String) -> F) -> Promise
where
    F: std::future::Future<Output = Result<()>> + 'static,
{
    match id_arg(id) {
        Ok(id) => run_unit(Box::pin(f(id))),
        Err(e) => Promise::reject(&js::to_js(&e)),
    }
}

/// The lists' `limit` option: `usize::MAX` without one (a cast saturates).
fn limit(opts: &JsValue) -> Result<usize> {
    crate::options::call_option(opts, "limit").map(|n| n as usize)
}

/// Not generic, as [`run_boxed`].
fn run_unit(f: std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>>>>) -> Promise {
    js::promise(async move {
        f.await
            .map(|()| JsValue::UNDEFINED)
            .map_err(|e| js::to_js(&e))
    })
}

#[wasm_bindgen(js_class = Outbox)]
impl JsOutbox {
    /// Opens (creating if needed) the outbox named `options.name`.
    pub async fn open(options: JsValue) -> std::result::Result<JsOutbox, JsValue> {
        let opts = crate::options::parse_options(&options).map_err(|e| js::to_js(&e))?;
        let engine = Engine::open(opts).await.map_err(|e| js::to_js(&e))?;
        Ok(JsOutbox { engine })
    }

    /// A JS string (typed `string` in the package's d.ts): returned as a `String`, it
    /// would take a shim to copy it out of wasm memory.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> JsValue {
        JsValue::from_str(self.engine.name())
    }

    #[wasm_bindgen(getter, js_name = isLeader)]
    pub fn is_leader(&self) -> bool {
        self.engine.is_leader()
    }

    /// Resolves with the `TransactionInfo` once the transaction is durable in IndexedDB.
    pub fn enqueue(&self, tx: JsValue) -> Promise {
        self.engine.enqueue(&tx)
    }

    pub fn settled(&self, id: JsValue) -> Promise {
        match id_arg(&id) {
            Ok(id) => self.engine.settled(id),
            Err(e) => Promise::reject(&js::to_js(&e)),
        }
    }

    /// The first `limit` pending transactions (every one without it); only those are
    /// read from storage.
    pub fn peek(&self, opts: JsValue) -> Promise {
        run(self.engine.clone().list(false, limit(&opts)))
    }

    #[wasm_bindgen(js_name = deadLetters)]
    pub fn dead_letters(&self, opts: JsValue) -> Promise {
        run(self.engine.clone().list(true, limit(&opts)))
    }

    #[wasm_bindgen(js_name = retryDead)]
    pub fn retry_dead(&self, id: JsValue) -> Promise {
        with_id(&id, |id| self.engine.clone().retry_dead(id))
    }

    #[wasm_bindgen(js_name = discardDead)]
    pub fn discard_dead(&self, id: JsValue) -> Promise {
        with_id(&id, |id| self.engine.clone().discard_dead(id))
    }

    pub fn remove(&self, id: JsValue) -> Promise {
        with_id(&id, |id| self.engine.clone().remove(id))
    }

    /// The pending transactions and dead letters as a JSON-safe backup document.
    #[wasm_bindgen(js_name = export)]
    pub fn export_backup(&self) -> Promise {
        run(self.engine.clone().export())
    }

    /// Adds a backup's transactions that are not here yet; `{ pending, dead, skipped }`.
    #[wasm_bindgen(js_name = import)]
    pub fn import_backup(&self, backup: JsValue) -> Promise {
        run(self.engine.clone().import(backup))
    }

    pub fn stats(&self) -> Promise {
        run(self.engine.clone().stats())
    }

    /// Resets backoff delays and drains now.
    #[wasm_bindgen(js_name = notifyOnline)]
    pub fn notify_online(&self) {
        self.engine.notify_online();
    }

    /// Runs until nothing is runnable now (or `budgetMs` passes) and reports what happened.
    pub fn drain(&self, opts: JsValue) -> Promise {
        match crate::options::call_option(&opts, "budgetMs") {
            Ok(b) => self.engine.drain(b.is_finite().then_some(b as Millis)),
            Err(e) => Promise::reject(&js::to_js(&e)),
        }
    }

    /// Calls `listener` with every event; returns the function that unsubscribes it.
    pub fn subscribe(&self, listener: JsValue) -> std::result::Result<Function, JsValue> {
        let f: Function = listener
            .dyn_into()
            .map_err(|_| js::err(ErrorCode::InvalidOptions, "subscribe takes a function"))?;
        Ok(self.engine.listeners.add(&f))
    }

    pub fn close(&self) -> Promise {
        let engine = self.engine.clone();
        js::promise(async move {
            engine.close().await;
            Ok(JsValue::UNDEFINED)
        })
    }
}
