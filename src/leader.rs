//! Who sends: the election among every context (tabs, workers, the service worker) that
//! opens the same outbox, and the BroadcastChannel they talk over.
//!
//! - Web Locks: every context waits on one exclusive lock named after the outbox; the
//!   holder leads. The browser hands the lock to the next waiter when the holder closes or
//!   crashes, so failover needs no timeout.
//! - BroadcastChannel: the heartbeat lease of [`crate::lease`], for contexts without Web
//!   Locks (or when asked for).
//! - None: this context always leads (an app with a single context).
//!
//! Channel messages carry ids and small fields, never payloads.

use js_sys::{Function, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::BroadcastChannel;

use crate::js;
use crate::lease::Msg;
use crate::options::LeaderElection;

#[wasm_bindgen(module = "/src/js/locks.js")]
extern "C" {
    #[wasm_bindgen(js_name = hasLocks)]
    fn has_locks() -> bool;
    #[wasm_bindgen(js_name = acquireLock)]
    fn acquire_lock(name: &str, on_granted: &Function) -> JsValue;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    WebLocks,
    Lease,
    Always,
    /// A service worker: it may lack the handlers a page registered, so it never sits on
    /// leadership. It takes the lock only to drain (a `sync` event), and only if no live
    /// context holds it; otherwise the drain goes to the leader.
    OnDemand,
}

#[wasm_bindgen(module = "/src/js/sync.js")]
extern "C" {
    #[wasm_bindgen(js_name = isServiceWorker)]
    fn is_service_worker() -> bool;
    #[wasm_bindgen(js_name = tryLock)]
    fn try_lock(name: &str) -> Promise;
    #[wasm_bindgen(js_name = replyOrLock)]
    fn reply_or_lock(name: &str, reply: &Promise) -> Promise;
    #[wasm_bindgen(js_name = registerSync)]
    pub fn register_sync(tag: &str);
    #[wasm_bindgen(js_name = isOffline)]
    pub fn is_offline() -> bool;
}

/// The lock if it is free right now; released on drop.
pub struct HeldLock(JsValue);

impl HeldLock {
    pub async fn try_take(name: &str) -> Option<Self> {
        let handle = wasm_bindgen_futures::JsFuture::from(try_lock(name))
            .await
            .ok()?;
        (!handle.is_null() && !handle.is_undefined()).then_some(Self(handle))
    }

    /// `reply` (a leader's answer), or the lock if it comes first: its holder went away.
    pub async fn or_reply(name: &str, reply: &Promise) -> Result<ReplyOrLock, JsValue> {
        let out = wasm_bindgen_futures::JsFuture::from(reply_or_lock(name, reply)).await?;
        let lock = js::get(&out, "lock");
        Ok(if lock.is_undefined() {
            ReplyOrLock::Reply(js::get(&out, "reply"))
        } else {
            ReplyOrLock::Lock(Self(lock))
        })
    }
}

pub enum ReplyOrLock {
    Reply(JsValue),
    Lock(HeldLock),
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Ok(f) = js::get(&self.0, "release").dyn_into::<Function>() {
            let _ = f.call0(&self.0);
        }
    }
}

/// `auto` picks Web Locks where the context has them (on demand in a service worker), the
/// lease otherwise.
pub fn mode(option: LeaderElection) -> Mode {
    match option {
        LeaderElection::Auto if has_locks() && is_service_worker() => Mode::OnDemand,
        LeaderElection::Auto if has_locks() => Mode::WebLocks,
        LeaderElection::Auto | LeaderElection::BroadcastChannel => Mode::Lease,
        LeaderElection::WebLocks => Mode::WebLocks,
        LeaderElection::None => Mode::Always,
    }
}

pub fn locks_available() -> bool {
    has_locks()
}

/// A request for the leader lock: queued, then held until released or dropped.
pub struct LockRequest {
    handle: JsValue,
    _on_granted: Closure<dyn FnMut()>,
}

impl LockRequest {
    pub fn request(name: &str, on_granted: impl FnMut() + 'static) -> Self {
        let on_granted = Closure::<dyn FnMut()>::new(on_granted);
        let handle = acquire_lock(name, on_granted.as_ref().unchecked_ref());
        Self {
            handle,
            _on_granted: on_granted,
        }
    }

    /// Resolves to whether the lock was free at once.
    pub fn immediate(&self) -> Promise {
        js::get(&self.handle, "immediate").unchecked_into()
    }

    fn release(&self) {
        if let Ok(f) = js::get(&self.handle, "release").dyn_into::<Function>() {
            let _ = f.call0(&self.handle);
        }
    }
}

impl Drop for LockRequest {
    fn drop(&mut self) {
        self.release();
    }
}

/// The outbox's BroadcastChannel. Messages from this context never come back to it.
pub struct Channel {
    bc: BroadcastChannel,
    /// `FnMut(JsValue)`, the closure type wasm-bindgen-futures already compiles in: each
    /// closure signature brings its own glue.
    _on_message: Closure<dyn FnMut(JsValue)>,
}

impl Channel {
    /// `None` where BroadcastChannel does not exist.
    pub fn open(name: &str, mut on_message: impl FnMut(JsValue) + 'static) -> Option<Self> {
        let bc = BroadcastChannel::new(name).ok()?;
        let cb =
            Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| on_message(js::get(&e, "data")));
        bc.set_onmessage(Some(cb.as_ref().unchecked_ref()));
        Some(Self {
            bc,
            _on_message: cb,
        })
    }

    pub fn post(&self, msg: &JsValue) {
        // Only fails for uncloneable data, and messages are plain objects we build.
        let _ = self.bc.post_message(msg);
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.bc.set_onmessage(None);
        self.bc.close();
    }
}

/// A plain message object `{ t: kind, ...fields }`.
pub fn message(kind: &str, fields: &[(&'static str, JsValue)]) -> JsValue {
    let o = Object::new();
    js::set(&o, "t", &JsValue::from_str(kind));
    for (k, v) in fields {
        js::set(&o, k, v);
    }
    o.into()
}

fn id_value(id: u64) -> JsValue {
    JsValue::from_f64(id as f64)
}

pub fn encode_lease(msg: Msg) -> JsValue {
    match msg {
        Msg::Heartbeat { from, epoch } => message(
            "hb",
            &[
                ("from", id_value(from)),
                ("epoch", JsValue::from_f64(epoch as f64)),
            ],
        ),
        Msg::Claim { from } => message("claim", &[("from", id_value(from))]),
        Msg::Resign { from } => message("resign", &[("from", id_value(from))]),
        Msg::Who { from } => message("who", &[("from", id_value(from))]),
    }
}

pub fn decode_lease(kind: &str, v: &JsValue) -> Option<Msg> {
    let num = |k: &'static str| {
        js::get(v, k)
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    };
    let from = num("from")?;
    match kind {
        "hb" => Some(Msg::Heartbeat {
            from,
            epoch: num("epoch")?,
        }),
        "claim" => Some(Msg::Claim { from }),
        "resign" => Some(Msg::Resign { from }),
        "who" => Some(Msg::Who { from }),
        _ => None,
    }
}

/// A context id: random, below 2^53 so it survives a trip through a JS number.
pub fn context_id() -> u64 {
    js::random_bits()
}
