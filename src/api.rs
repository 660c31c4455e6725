//! The outbox from Rust, for Rust web apps (Leptos, Yew, Dioxus...): the same engine the
//! JS `Outbox` drives, with handlers as async closures, payloads as serde types, results
//! as typed structs and failures as [`Error`] with its [`ErrorCode`].
//!
//! ```no_run
//! use offline_outbox::{HandlerError, Outbox, Transaction};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Rename {
//!     title: String,
//! }
//!
//! # async fn send(_: &Rename, _: &str) -> Result<u16, String> { Ok(200) }
//! async fn app() -> Result<(), offline_outbox::Error> {
//!     let outbox = Outbox::builder("todos")
//!         .handler("rename", |ctx| async move {
//!             let body: Rename = ctx.mutations()?;
//!             match send(&body, &ctx.idempotency_key()).await {
//!                 Ok(200..=299) => Ok(()),
//!                 Ok(422) => Err(HandlerError::reject("the server refused it")),
//!                 Ok(status) => Err(HandlerError::retry(format!("HTTP {status}"))),
//!                 Err(e) => Err(HandlerError::retry(e)),
//!             }
//!         })
//!         .max_concurrency(8)
//!         .open()
//!         .await?;
//!     let rename = Rename { title: "Buy milk".into() };
//!     let info = outbox
//!         .enqueue(Transaction::new("rename", ["todo:1"], &rename)?)
//!         .await?;
//!     outbox.settled(&info.id).await?;
//!     Ok(())
//! }
//! ```

// Every public item here is the Rust API a web app reads on docs.rs.
#![warn(missing_docs)]

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Array, Function, Object, Promise, Reflect};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::engine::Engine;
use crate::error::{Error, ErrorCode, Result};
use crate::js;
use crate::model::{DeadLetterPolicy, DeadReason, Ordering, Priority, Status};
pub use crate::options::LeaderElection;
use crate::options::HTTP_HANDLER;
use crate::retry::Jitter;

type JsHandler = Closure<dyn FnMut(JsValue) -> Promise>;
type MergeFn = Closure<dyn FnMut(JsValue, JsValue) -> JsValue>;

/// What a batch handler returns: `Err` fails the whole batch; `Ok` holds one outcome per
/// transaction, in the order given.
pub type BatchResult =
    std::result::Result<Vec<std::result::Result<(), HandlerError>>, HandlerError>;

/// An open outbox. Dropping it does not close it; call [`Outbox::close`].
pub struct Outbox {
    engine: Rc<Engine>,
    /// The JS functions the engine calls, alive as long as this outbox.
    _handlers: (Vec<JsHandler>, Vec<MergeFn>),
}

/// Options for [`OutboxBuilder::open`], from [`Outbox::builder`], set one by one; each is checked as the JS options are.
pub struct OutboxBuilder {
    options: Object,
    handlers: Object,
    closures: Vec<JsHandler>,
    merges: Vec<MergeFn>,
}

/// What a handler gets for one attempt.
pub struct HandlerContext {
    raw: JsValue,
}

/// How a handler failed: [`retry`](HandlerError::retry) later (with backoff, or after
/// the delay the server asked for), or [`reject`](HandlerError::reject) for good, which
/// moves the transaction to the dead letters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerError {
    message: String,
    retriable: bool,
    retry_after: Option<Duration>,
}

/// A transaction to enqueue.
pub struct Transaction {
    handler: String,
    keys: Vec<String>,
    mutations: JsValue,
    metadata: JsValue,
    priority: Option<Priority>,
    idempotency_key: Option<String>,
    coalesce_key: Option<String>,
}

/// The last failure of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct TransactionError {
    /// The error's name: `Error`, `TimeoutError` (past [`OutboxBuilder::attempt_timeout`]),
    /// `NonRetriableError` (a [`HandlerError::reject`]), or a JS handler's own.
    pub name: String,
    /// The handler's message, at most its first 1,000 characters (it is stored with the
    /// transaction).
    pub message: String,
}

/// A transaction as `enqueue`, `peek`, `dead_letters` and `settled` report it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionInfo {
    /// Its id (a UUID), which [`Outbox::settled`], [`Outbox::remove`] and the dead-letter
    /// calls take.
    pub id: String,
    /// The handler it is sent through.
    pub handler: String,
    /// Its keys: it runs after every earlier transaction sharing one of them.
    pub keys: Vec<String>,
    /// As stored (a JS value); [`TransactionInfo::mutations_as`] deserializes it.
    #[serde(with = "serde_wasm_bindgen::preserve", default = "undefined")]
    pub mutations: JsValue,
    /// As stored (a JS value; `undefined` if it had none).
    #[serde(with = "serde_wasm_bindgen::preserve", default = "undefined")]
    pub metadata: JsValue,
    /// Sent with every attempt, from every context: the id unless the transaction set one.
    pub idempotency_key: String,
    /// Its place in the outbox's total order (enqueue order).
    pub seq: Option<u64>,
    /// Which runnable transactions go first.
    pub priority: Priority,
    /// Pending, in flight or dead; acknowledged in what [`Outbox::settled`] gives.
    pub status: Status,
    /// Attempts that failed so far (reset by [`Outbox::retry_dead`]).
    pub attempts: u32,
    /// Milliseconds since the Unix epoch, as JS `Date.now()`.
    pub created_at: f64,
    /// When it may be tried next (ms since the epoch): past for one due now.
    pub next_attempt_at: f64,
    /// Its last failure, if an attempt failed.
    pub last_error: Option<TransactionError>,
    /// Why it is a dead letter; `None` on pending transactions.
    pub dead_reason: Option<DeadReason>,
    /// As enqueued ([`Transaction::coalesce_key`]): later enqueues with the same one (and
    /// handler and keys) fold into this transaction while it is pending and not in flight.
    pub coalesce_key: Option<String>,
}

fn undefined() -> JsValue {
    JsValue::UNDEFINED
}

/// Attempt durations in milliseconds over the last 1,024 attempts this context ran
/// (`None` before the first).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct LatencyPercentiles {
    /// The median.
    pub p50: Option<f64>,
    /// The 90th percentile.
    pub p90: Option<f64>,
    /// The 99th percentile.
    pub p99: Option<f64>,
}

/// The origin's storage, from `navigator.storage` (`None` where the browser lacks it).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct StorageInfo {
    /// Whether the browser granted persistent storage (see [`OutboxBuilder::persist`]).
    pub persisted: Option<bool>,
    /// Bytes the origin uses.
    pub usage: Option<f64>,
    /// Bytes the origin may use.
    pub quota: Option<f64>,
}

/// What `stats()` reports (see the JS `OutboxStats` for each field).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Waiting (not in flight, not dead).
    pub pending: u64,
    /// Pending after at least one failed attempt.
    pub retrying: u64,
    /// Low-priority transactions held back by [`OutboxBuilder::wifi_preferred`].
    pub held: u64,
    /// Being sent now.
    pub in_flight: u64,
    /// In the dead letters.
    pub dead: u64,
    /// When the oldest waiting transaction was enqueued (ms since the epoch).
    pub oldest_created_at: Option<f64>,
    /// How long ago that was.
    pub oldest_age_ms: Option<f64>,
    /// Approximate stored size of the waiting transactions' mutations and metadata.
    pub bytes: u64,
    /// Acknowledged attempts over finished attempts since this context opened.
    pub success_rate: Option<f64>,
    /// How long attempts took.
    pub attempt_latency_ms: LatencyPercentiles,
    /// The origin's storage.
    pub storage: StorageInfo,
    /// When the earliest waiting transaction becomes due (ms since the epoch).
    pub next_attempt_at: Option<f64>,
    /// Acknowledged since this context opened the outbox.
    pub sent: u64,
    /// Failed attempts to be retried, since this context opened the outbox.
    pub retried: u64,
    /// Moved to the dead letters since this context opened the outbox.
    pub dead_lettered: u64,
    /// Whether this context sends.
    pub is_leader: bool,
}

/// What [`Outbox::drain`] did.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainReport {
    /// Acknowledged during the drain.
    pub sent: u64,
    /// Failed attempts that will be retried.
    pub retried: u64,
    /// Moved to the dead letters.
    pub dead: u64,
    /// Still in the outbox (waiting for a retry time, or blocked).
    pub remaining: u64,
    /// `false` when the budget ran out (or the outbox closed) first.
    pub complete: bool,
    /// How long the drain took.
    pub duration_ms: f64,
}

/// What [`Outbox::import_json`] added.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ImportReport {
    /// Transactions added to the pending ones.
    pub pending: u32,
    /// Dead letters added.
    pub dead: u32,
    /// Already here (pending, dead or coalesced), so not added again.
    pub skipped: u32,
}

/// An `OutboxError` carried by an [`Event::Error`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ErrorInfo {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
}

/// What [`Outbox::subscribe`] listeners receive (the JS `OutboxEvent`s).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    /// A transaction is durable in IndexedDB.
    Enqueued {
        /// Its id.
        id: String,
        /// Its place in enqueue order.
        seq: u64,
    },
    /// An attempt starts.
    Sending {
        /// The transaction's id.
        id: String,
        /// 1 on the first attempt.
        attempt: u32,
    },
    /// A handler acknowledged the transaction.
    Sent {
        /// Its id.
        id: String,
    },
    /// After each transaction settles (sent or dead) while work runs.
    Progress {
        /// Settled in this run.
        done: u64,
        /// Settled in this run plus still waiting.
        total: u64,
    },
    /// A transaction folded into a pending one with the same coalesce key.
    Coalesced {
        /// The newer transaction, which settles with `into`.
        id: String,
        /// The pending transaction that took its mutations.
        into: String,
    },
    /// The outbox crossed 80 % (`warning`) or 100 % (`full`) of
    /// [`OutboxBuilder::capacity`], on the way up.
    Capacity {
        /// Which threshold.
        level: CapacityLevel,
        /// Transactions held.
        count: u64,
        /// Their payloads' approximate stored size.
        bytes: u64,
        /// The larger of the two ratios to their limits.
        ratio: f64,
    },
    /// The database went away under the outbox; every call then fails with
    /// [`ErrorCode::StorageUnavailable`]: open it again.
    StorageLost {
        /// How it went.
        reason: StorageLostReason,
        /// What this context knew was waiting.
        pending: u64,
    },
    /// An attempt failed and will be retried.
    #[serde(rename_all = "camelCase")]
    Retry {
        /// The transaction's id.
        id: String,
        /// The attempt that failed.
        attempt: u32,
        /// When the next one may start (ms since the epoch).
        next_attempt_at: f64,
        /// Why it failed.
        error: TransactionError,
    },
    /// A transaction moved to the dead letters.
    Dead {
        /// Its id.
        id: String,
        /// Why.
        reason: DeadReason,
        /// Its last failure.
        error: TransactionError,
    },
    /// A transaction was removed, or a dead letter discarded.
    Removed {
        /// Its id.
        id: String,
    },
    /// This context started or stopped sending.
    #[serde(rename_all = "camelCase")]
    Leader {
        /// Whether it sends now.
        is_leader: bool,
    },
    /// Nothing is runnable now.
    Drained {
        /// Transactions still waiting (for a retry time, or blocked).
        remaining: u64,
    },
    /// Something failed outside any call (a write in the background, a storage error).
    Error {
        /// The transaction concerned, if any.
        id: Option<String>,
        /// What failed.
        error: ErrorInfo,
    },
}

/// Which threshold of [`OutboxBuilder::capacity`] an [`Event::Capacity`] crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapacityLevel {
    /// 80 % of a limit.
    Warning,
    /// The limit itself (work is still taken).
    Full,
}

/// How the database went away ([`Event::StorageLost`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageLostReason {
    /// Site data was cleared, or the browser evicted it.
    Deleted,
    /// The browser closed the connection.
    Closed,
    /// A newer version of the package opened it.
    Upgraded,
}

/// Keeps a [`Outbox::subscribe`] listener registered; dropping it unsubscribes.
pub struct Subscription {
    unsubscribe: Function,
    _listener: Closure<dyn FnMut(JsValue)>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.unsubscribe.call0(&JsValue::UNDEFINED);
    }
}

fn from_js<T: DeserializeOwned>(v: JsValue) -> Result<T> {
    serde_wasm_bindgen::from_value(v)
        .map_err(|e| Error::new(ErrorCode::StorageUnavailable, e.to_string()))
}

async fn wait(p: Promise) -> Result<JsValue> {
    JsFuture::from(p).await.map_err(|e| js::from_js(&e))
}

impl HandlerContext {
    fn field(&self, name: &'static str) -> JsValue {
        js::get(&self.raw, name)
    }

    /// The transaction's id.
    pub fn id(&self) -> String {
        self.field("id").as_string().unwrap_or_default()
    }

    /// The same on every attempt, from every context: send it for the server to dedupe.
    pub fn idempotency_key(&self) -> String {
        self.field("idempotencyKey").as_string().unwrap_or_default()
    }

    /// The transaction's keys.
    pub fn keys(&self) -> Vec<String> {
        Array::from(&self.field("keys"))
            .iter()
            .filter_map(|k| k.as_string())
            .collect()
    }

    /// 1 on the first attempt.
    pub fn attempt(&self) -> u32 {
        self.field("attempt").as_f64().unwrap_or(1.0) as u32
    }

    /// Aborted when the outbox closes, this context stops leading, or the attempt runs
    /// past [`OutboxBuilder::attempt_timeout`]: pass it to `fetch`.
    pub fn signal(&self) -> web_sys::AbortSignal {
        self.field("signal").unchecked_into()
    }

    /// The mutations, deserialized; a mismatch is a [`HandlerError`] that retries (a
    /// newer build of the app may read them).
    pub fn mutations<T: DeserializeOwned>(&self) -> std::result::Result<T, HandlerError> {
        serde_wasm_bindgen::from_value(self.field("mutations"))
            .map_err(|e| HandlerError::retry(format!("mutations: {e}")))
    }

    /// The metadata, deserialized (`()` or an `Option` for a transaction without any); a
    /// mismatch retries, as for [`HandlerContext::mutations`].
    pub fn metadata<T: DeserializeOwned>(&self) -> std::result::Result<T, HandlerError> {
        serde_wasm_bindgen::from_value(self.field("metadata"))
            .map_err(|e| HandlerError::retry(format!("metadata: {e}")))
    }

    /// The mutations as the JS value they are stored as.
    pub fn mutations_js(&self) -> JsValue {
        self.field("mutations")
    }
}

impl HandlerError {
    /// A failure worth trying again, after the retry policy's backoff.
    pub fn retry(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retriable: true,
            retry_after: None,
        }
    }

    /// A failure that will not go away: the transaction goes to the dead letters
    /// (reason `handler-rejected`).
    pub fn reject(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            retriable: false,
            retry_after: None,
        }
    }

    /// Retry after `delay` instead of the backoff (a server's `Retry-After`).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use offline_outbox::{HandlerContext, HandlerError};
    /// # async fn post(_: &HandlerContext) -> (u16, Option<u64>) { (503, Some(30)) }
    /// async fn send(ctx: HandlerContext) -> Result<(), HandlerError> {
    ///     match post(&ctx).await {
    ///         (200..=299, _) => Ok(()),
    ///         (429 | 503, Some(secs)) => {
    ///             Err(HandlerError::retry("busy").after(Duration::from_secs(secs)))
    ///         }
    ///         (status, _) => Err(HandlerError::retry(format!("HTTP {status}"))),
    ///     }
    /// }
    /// ```
    pub fn after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    fn into_js(self) -> JsValue {
        if !self.retriable {
            return js::NonRetriableError::new(&self.message).into();
        }
        let e = js_sys::Error::new(&self.message);
        if let Some(d) = self.retry_after {
            js::set(
                e.unchecked_ref(),
                "retryAfterMs",
                &JsValue::from_f64(d.as_millis() as f64),
            );
        }
        e.into()
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for HandlerError {
    fn from(e: Error) -> Self {
        Self::retry(e)
    }
}

/// Serializes as JSON would (maps as plain objects), which is what JS handlers and
/// servers expect to receive.
fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| Error::new(ErrorCode::NotSerializable, e.to_string()))
}

impl Transaction {
    /// A transaction for `handler` on `keys` (ordered against earlier ones sharing any of
    /// them; none makes it a barrier), carrying `mutations`.
    pub fn new<M: Serialize + ?Sized>(
        handler: &str,
        keys: impl IntoIterator<Item = impl Into<String>>,
        mutations: &M,
    ) -> Result<Self> {
        Ok(Self::from_js(handler, keys, to_js(mutations)?))
    }

    /// Mutations that are already a JS value (a `Blob`, a typed array...).
    pub fn from_js(
        handler: &str,
        keys: impl IntoIterator<Item = impl Into<String>>,
        mutations: JsValue,
    ) -> Self {
        Self {
            handler: handler.to_string(),
            keys: keys.into_iter().map(Into::into).collect(),
            mutations,
            metadata: JsValue::UNDEFINED,
            priority: None,
            idempotency_key: None,
            coalesce_key: None,
        }
    }

    /// A transaction for the built-in `http` handler, which sends `request` with `fetch`
    /// and the transaction's `Idempotency-Key`: 2xx acknowledges; 408, 425, 429, 5xx and
    /// network errors retry (honouring `Retry-After`); any other status dead-letters. A
    /// request `fetch` would refuse fails the enqueue with
    /// [`ErrorCode::InvalidTransaction`], and nothing is stored.
    ///
    /// ```no_run
    /// # use offline_outbox::{HttpRequest, Outbox, Transaction};
    /// # async fn save(outbox: &Outbox) -> Result<(), offline_outbox::Error> {
    /// let put = HttpRequest::new("PUT", "/api/todos/42")
    ///     .header("Content-Type", "application/json")
    ///     .body(r#"{"title":"milk"}"#);
    /// outbox.enqueue(Transaction::http(["todo:42"], put)).await?;
    /// # Ok(()) }
    /// ```
    pub fn http(keys: impl IntoIterator<Item = impl Into<String>>, request: HttpRequest) -> Self {
        Self::from_js(HTTP_HANDLER, keys, request.0.into())
    }

    /// Data for the handler beside the mutations (who made the change, a client
    /// version...); serialized as JSON would be.
    pub fn metadata<T: Serialize + ?Sized>(mut self, metadata: &T) -> Result<Self> {
        self.metadata = to_js(metadata)?;
        Ok(self)
    }

    /// Among runnable transactions, higher priority goes first (key order still holds).
    /// Default [`Priority::Normal`].
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Defaults to the transaction id.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Folds this into the latest pending transaction with the same coalesce key, handler
    /// and keys that is not in flight: that one keeps its place and takes these mutations
    /// (or [`OutboxBuilder::merge`]'s result), metadata and idempotency key; this one
    /// settles with it (an [`Event::Coalesced`] says so).
    ///
    /// ```no_run
    /// # use offline_outbox::{Outbox, Transaction};
    /// # async fn typing(outbox: &Outbox, drafts: &[&str]) -> Result<(), offline_outbox::Error> {
    /// // Each keystroke's save waits while offline; only the last text is sent.
    /// for text in drafts {
    ///     let save = Transaction::new("save-draft", ["doc:7"], text)?.coalesce_key("draft:7");
    ///     outbox.enqueue(save).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn coalesce_key(mut self, key: impl Into<String>) -> Self {
        self.coalesce_key = Some(key.into());
        self
    }

    fn to_js(&self) -> JsValue {
        let o = Object::new();
        js::set(&o, "handler", &JsValue::from_str(&self.handler));
        let keys: Array = self.keys.iter().map(|k| JsValue::from_str(k)).collect();
        js::set(&o, "keys", &keys);
        js::set(&o, "mutations", &self.mutations);
        if !self.metadata.is_undefined() {
            js::set(&o, "metadata", &self.metadata);
        }
        if let Some(p) = self.priority {
            js::set(&o, "priority", &JsValue::from_str(p.as_str()));
        }
        if let Some(k) = &self.idempotency_key {
            js::set(&o, "idempotencyKey", &JsValue::from_str(k));
        }
        if let Some(k) = &self.coalesce_key {
            js::set(&o, "coalesceKey", &JsValue::from_str(k));
        }
        o.into()
    }
}

/// A request for [`Transaction::http`]: the built-in `http` handler's mutations. Not
/// `Clone`: it builds one JS object, which a copy would share.
#[derive(Debug)]
pub struct HttpRequest(Object);

impl HttpRequest {
    /// `method` is an HTTP token (`GET`, `POST`...); `url` is absolute, or relative to the
    /// page (or worker) that sends it.
    pub fn new(method: &str, url: &str) -> Self {
        let o = Object::new();
        js::set(&o, "method", &JsValue::from_str(method));
        js::set(&o, "url", &JsValue::from_str(url));
        Self(o)
    }

    /// Sets a header (the `Idempotency-Key` is the transaction's own).
    pub fn header(self, name: &str, value: &str) -> Self {
        let mut headers = js::get(&self.0, "headers");
        if headers.is_undefined() {
            headers = Object::new().into();
            js::set(&self.0, "headers", &headers);
        }
        // Setting a data property on a plain object made here cannot fail.
        let _ = js_sys::Reflect::set(&headers, &name.into(), &value.into());
        self
    }

    /// The body: a string, or binary data as a `Uint8Array`, `ArrayBuffer` or `Blob` (a
    /// `File` too, whose type is the Content-Type unless a header sets one). Stored as it
    /// is; none on GET or HEAD.
    pub fn body(self, body: impl Into<JsValue>) -> Self {
        js::set(&self.0, "body", &body.into());
        self
    }
}

impl TransactionInfo {
    /// The mutations, deserialized.
    pub fn mutations_as<T: DeserializeOwned>(&self) -> Result<T> {
        serde_wasm_bindgen::from_value(self.mutations.clone())
            .map_err(|e| Error::new(ErrorCode::InvalidTransaction, e.to_string()))
    }
}

impl OutboxBuilder {
    fn set(self, name: &'static str, value: JsValue) -> Self {
        js::set(&self.options, name, &value);
        self
    }

    /// The handler spec of `name` (`{ send | sendBatch, batchSize?, merge? }`).
    fn spec(&self, name: &str) -> Object {
        // Handler names are the app's, not literals of this crate: no cached name.
        let name = JsValue::from_str(name);
        let existing = Reflect::get(&self.handlers, &name).unwrap_or_default();
        if existing.is_object() {
            return existing.unchecked_into();
        }
        let spec = Object::new();
        let _ = Reflect::set(&self.handlers, &name, &spec);
        spec
    }

    fn keep(mut self, name: &str, field: &'static str, closure: JsHandler) -> Self {
        js::set(&self.spec(name), field, closure.as_ref());
        self.closures.push(closure);
        self
    }

    /// Registers `send` as the handler named `name`: one transaction per call.
    pub fn handler<F, Fut>(self, name: &str, send: F) -> Self
    where
        F: Fn(HandlerContext) -> Fut + 'static,
        Fut: Future<Output = std::result::Result<(), HandlerError>> + 'static,
    {
        let closure = JsHandler::new(move |ctx: JsValue| {
            let attempt = send(HandlerContext { raw: ctx });
            js::promise(async move {
                attempt
                    .await
                    .map(|()| JsValue::UNDEFINED)
                    .map_err(HandlerError::into_js)
            })
        });
        self.keep(name, "send", closure)
    }

    /// Registers a batch handler: up to `batch_size` runnable transactions per call (never
    /// two sharing a key). `Err` fails them all; `Ok` holds one outcome per transaction,
    /// in the order given (a missing one counts as a failure to retry).
    ///
    /// ```no_run
    /// # use offline_outbox::{HandlerContext, HandlerError, Outbox};
    /// # use serde::Deserialize;
    /// # #[derive(Deserialize)] struct Like { post: u32 }
    /// // post_likes sends them in one request; the server answers a status for each.
    /// # async fn post_likes(_: Vec<Like>) -> Result<Vec<u16>, String> { Ok(vec![]) }
    /// # async fn open() -> Result<Outbox, offline_outbox::Error> {
    /// let outbox = Outbox::builder("social")
    ///     .batch_handler("like", 20, |batch: Vec<HandlerContext>| async move {
    ///         let likes = batch
    ///             .iter()
    ///             .map(|ctx| ctx.mutations::<Like>())
    ///             .collect::<Result<Vec<_>, _>>()?;
    ///         let statuses = post_likes(likes).await.map_err(HandlerError::retry)?;
    ///         Ok(statuses
    ///             .into_iter()
    ///             .map(|status| match status {
    ///                 200..=299 => Ok(()),
    ///                 400..=499 => Err(HandlerError::reject(format!("HTTP {status}"))),
    ///                 _ => Err(HandlerError::retry(format!("HTTP {status}"))),
    ///             })
    ///             .collect())
    ///     })
    ///     .open()
    ///     .await?;
    /// # Ok(outbox) }
    /// ```
    pub fn batch_handler<F, Fut>(self, name: &str, batch_size: u32, send: F) -> Self
    where
        F: Fn(Vec<HandlerContext>) -> Fut + 'static,
        Fut: Future<Output = BatchResult> + 'static,
    {
        let closure = JsHandler::new(move |batch: JsValue| {
            let batch = Array::from(&batch)
                .iter()
                .map(|raw| HandlerContext { raw })
                .collect();
            let attempt = send(batch);
            js::promise(async move {
                let outcomes = attempt.await.map_err(HandlerError::into_js)?;
                Ok(outcomes
                    .into_iter()
                    .map(|o| o.err().map_or(JsValue::UNDEFINED, HandlerError::into_js))
                    .collect::<Array>()
                    .into())
            })
        });
        let this = self.keep(name, "sendBatch", closure);
        js::set(&this.spec(name), "batchSize", &JsValue::from(batch_size));
        this
    }

    /// How a coalesced transaction's mutations combine with the pending one's (by
    /// default the newer replace the older). Mutations that do not deserialize as `M`
    /// are replaced.
    ///
    /// ```no_run
    /// # use offline_outbox::{HandlerError, Outbox, Transaction};
    /// # use serde::{Deserialize, Serialize};
    /// /// Counter increments: two pending ones fold into one that adds both.
    /// #[derive(Serialize, Deserialize)]
    /// struct Add {
    ///     by: i64,
    /// }
    /// # async fn send(_: Add) -> Result<(), HandlerError> { Ok(()) }
    /// # async fn run() -> Result<(), offline_outbox::Error> {
    /// let outbox = Outbox::builder("counters")
    ///     .handler("add", |ctx| async move { send(ctx.mutations()?).await })
    ///     .merge("add", |older: Add, newer: Add| Add { by: older.by + newer.by })
    ///     .open()
    ///     .await?;
    /// for _ in 0..3 {
    ///     let add = Transaction::new("add", ["counter:1"], &Add { by: 1 })?;
    ///     outbox.enqueue(add.coalesce_key("counter:1")).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn merge<M, F>(self, name: &str, merge: F) -> Self
    where
        M: Serialize + DeserializeOwned,
        F: Fn(M, M) -> M + 'static,
    {
        let closure = Closure::<dyn FnMut(JsValue, JsValue) -> JsValue>::new(
            move |older: JsValue, newer: JsValue| {
                let typed = serde_wasm_bindgen::from_value(older)
                    .and_then(|o| Ok((o, serde_wasm_bindgen::from_value(newer.clone())?)));
                match typed {
                    Ok((o, n)) => to_js(&merge(o, n)).unwrap_or(newer),
                    Err(_) => newer,
                }
            },
        );
        js::set(&self.spec(name), "merge", closure.as_ref());
        let mut this = self;
        this.merges.push(closure);
        this
    }

    /// Holds low-priority work on a metered connection (cellular) until the oldest of
    /// it is `max_hold` old or the outbox holds more than `max_hold_bytes`, or `drain()`.
    pub fn wifi_preferred(self, max_hold: Duration, max_hold_bytes: u64) -> Self {
        let n = Object::new();
        js::set(&n, "policy", &JsValue::from_str("wifi-preferred"));
        js::set(
            &n,
            "maxHoldMs",
            &JsValue::from_f64(max_hold.as_millis() as f64),
        );
        js::set(
            &n,
            "maxHoldBytes",
            &JsValue::from_f64(max_hold_bytes as f64),
        );
        self.set("network", n.into())
    }

    /// Default 4.
    pub fn max_concurrency(self, n: u32) -> Self {
        self.set("maxConcurrency", JsValue::from(n))
    }

    /// Default [`Ordering::PerKey`]: disjoint keys run in parallel. [`Ordering::Fifo`]
    /// sends one transaction at a time, in enqueue order.
    pub fn ordering(self, ordering: Ordering) -> Self {
        let name = match ordering {
            Ordering::PerKey => "per-key",
            Ordering::Fifo => "fifo",
        };
        self.set("ordering", JsValue::from_str(name))
    }

    /// Exponential backoff from `base` up to `max`, with `jitter`; `max_attempts` before
    /// the dead letters (`None`: unlimited).
    pub fn retry(
        self,
        base: Duration,
        max: Duration,
        max_attempts: Option<u32>,
        jitter: Jitter,
    ) -> Self {
        let r = Object::new();
        js::set(
            &r,
            "baseDelayMs",
            &JsValue::from_f64(base.as_millis() as f64),
        );
        js::set(&r, "maxDelayMs", &JsValue::from_f64(max.as_millis() as f64));
        if let Some(m) = max_attempts {
            js::set(&r, "maxAttempts", &JsValue::from(m));
        }
        let jitter = match jitter {
            Jitter::Full => "full",
            Jitter::Equal => "equal",
            Jitter::None => "none",
        };
        js::set(&r, "jitter", &JsValue::from_str(jitter));
        self.set("retry", r.into())
    }

    /// Transactions older than this go to the dead letters (reason `expired`).
    pub fn max_age(self, age: Duration) -> Self {
        self.set("maxAgeMs", JsValue::from_f64(age.as_millis() as f64))
    }

    /// An attempt without an outcome after this long (at most 2^31 - 1 ms) fails as a
    /// retryable `TimeoutError`: its [`HandlerContext::signal`] aborts, and a late outcome
    /// is ignored. Default: no limit.
    pub fn attempt_timeout(self, limit: Duration) -> Self {
        self.set(
            "attemptTimeoutMs",
            JsValue::from_f64(limit.as_millis() as f64),
        )
    }

    /// The attempt time limit of the handler registered as `name` (before or after this
    /// call), in place of [`OutboxBuilder::attempt_timeout`] for it: shorter for quick
    /// writes, longer for uploads. A name with no handler fails the open with
    /// `InvalidOptions`.
    pub fn handler_attempt_timeout(self, name: &str, limit: Duration) -> Self {
        let ms = JsValue::from_f64(limit.as_millis() as f64);
        js::set(&self.spec(name), "attemptTimeoutMs", &ms);
        self
    }

    /// What later transactions on a dead transaction's keys do: run
    /// ([`DeadLetterPolicy::Skip`], the default) or wait until it is retried or discarded
    /// ([`DeadLetterPolicy::Block`]).
    pub fn dead_letter_policy(self, policy: DeadLetterPolicy) -> Self {
        let name = match policy {
            DeadLetterPolicy::Skip => "skip",
            DeadLetterPolicy::Block => "block",
        };
        self.set("deadLetterPolicy", JsValue::from_str(name))
    }

    /// Who sends when several contexts (tabs, workers) open the same outbox. Default
    /// [`LeaderElection::Auto`].
    pub fn leader_election(self, mode: LeaderElection) -> Self {
        let name = match mode {
            LeaderElection::Auto => "auto",
            LeaderElection::WebLocks => "web-locks",
            LeaderElection::BroadcastChannel => "broadcast-channel",
            LeaderElection::None => "none",
        };
        self.set("leaderElection", JsValue::from_str(name))
    }

    /// Whether to ask for persistent storage (`navigator.storage.persist()`) at open, so
    /// the browser does not evict the outbox under storage pressure. Default `true`.
    pub fn persist(self, ask: bool) -> Self {
        self.set("persist", JsValue::from_bool(ask))
    }

    /// Deflates payloads whose JSON form exceeds 1 KiB, where that makes them smaller.
    /// Handlers see the original values. Default `false`.
    pub fn compress(self, on: bool) -> Self {
        self.set("compress", JsValue::from_bool(on))
    }

    /// Encrypts payloads at rest with AES-GCM under a non-extractable key kept in the
    /// outbox's database. Handlers see plaintext. Default `false`.
    pub fn encrypt(self, on: bool) -> Self {
        self.set("encrypt", JsValue::from_bool(on))
    }

    /// Soft limits that raise `capacity` events at 80 % and 100 %.
    pub fn capacity(self, max_count: Option<u64>, max_bytes: Option<u64>) -> Self {
        let c = Object::new();
        if let Some(n) = max_count {
            js::set(&c, "maxCount", &JsValue::from_f64(n as f64));
        }
        if let Some(b) = max_bytes {
            js::set(&c, "maxBytes", &JsValue::from_f64(b as f64));
        }
        self.set("capacity", c.into())
    }

    /// Checks the options (an [`ErrorCode::InvalidOptions`] error names the first that is
    /// wrong), opens the database and starts sending if this context leads.
    pub async fn open(self) -> Result<Outbox> {
        js::set(&self.options, "handlers", &self.handlers);
        let opts = crate::options::parse_options(&self.options)?;
        let engine = Engine::open(opts).await?;
        Ok(Outbox {
            engine,
            _handlers: (self.closures, self.merges),
        })
    }
}

impl Outbox {
    /// Starts the options of the outbox named `name` (its database, lock and channel).
    pub fn builder(name: &str) -> OutboxBuilder {
        let options = Object::new();
        js::set(&options, "name", &JsValue::from_str(name));
        OutboxBuilder {
            options,
            handlers: Object::new(),
            closures: Vec::new(),
            merges: Vec::new(),
        }
    }

    /// The name it was opened with.
    pub fn name(&self) -> &str {
        self.engine.name()
    }

    /// Whether this context sends now.
    pub fn is_leader(&self) -> bool {
        self.engine.is_leader()
    }

    /// Queues the transaction at once (enqueues made one after another keep that order,
    /// awaited or not, and share one IndexedDB write); the future resolves once it is
    /// durable in IndexedDB.
    pub fn enqueue(&self, tx: Transaction) -> impl Future<Output = Result<TransactionInfo>> {
        let written = self.engine.enqueue(&tx.to_js());
        async move { from_js(wait(written).await?) }
    }

    /// Waits until a handler (in any context) acknowledged the transaction; `Dead` or
    /// `Removed` if it went to the dead letters or was removed (or discarded) instead. A
    /// removal is remembered for 30 days, across reopens.
    ///
    /// Resolves with its info, status [`Status::Acknowledged`], where this context sent it
    /// (as leader; one of its last 1,000 acknowledged): its `attempts` count the failed
    /// ones before, its `mutations` and `metadata` are `undefined` (they are not kept).
    /// `None` otherwise: acknowledged by another context, before this one opened, or an id
    /// the outbox holds nothing about (acknowledged transactions leave no record).
    pub async fn settled(&self, id: &str) -> Result<Option<TransactionInfo>> {
        let info = wait(self.engine.settled(id.to_string())).await?;
        // The short answer is `{ id, status }`; the full one names the handler.
        if js::get(&info, "handler").is_undefined() {
            return Ok(None);
        }
        from_js(info).map(Some)
    }

    /// Pending transactions (in flight included), in seq order.
    pub async fn peek(&self) -> Result<Vec<TransactionInfo>> {
        self.peek_first(usize::MAX).await
    }

    /// The first `limit` pending transactions, in seq order: only those are read from
    /// storage (in any context), so a view of a long queue's head costs what it shows.
    pub async fn peek_first(&self, limit: usize) -> Result<Vec<TransactionInfo>> {
        from_js(self.engine.clone().list(false, Ok(limit)).await?)
    }

    /// The dead letters, in seq order; a context that has just taken over answers once it
    /// has read the outbox (undecodable records it meets there become dead letters).
    pub async fn dead_letters(&self) -> Result<Vec<TransactionInfo>> {
        self.dead_letters_first(usize::MAX).await
    }

    /// The first `limit` dead letters, in seq order (see [`Outbox::peek_first`]).
    pub async fn dead_letters_first(&self, limit: usize) -> Result<Vec<TransactionInfo>> {
        from_js(self.engine.clone().list(true, Ok(limit)).await?)
    }

    /// Puts a dead letter back at its place in key order, its attempts reset;
    /// [`ErrorCode::NotFound`] if `id` is not a dead letter.
    ///
    /// ```no_run
    /// # use offline_outbox::{DeadReason, Outbox};
    /// # async fn review(outbox: &Outbox) -> Result<(), offline_outbox::Error> {
    /// // After a fix on the server: retry what it refused, drop what was corrupt.
    /// for dead in outbox.dead_letters().await? {
    ///     match dead.dead_reason {
    ///         Some(DeadReason::Corrupt) => outbox.discard_dead(&dead.id).await?,
    ///         _ => outbox.retry_dead(&dead.id).await?,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn retry_dead(&self, id: &str) -> Result<()> {
        self.engine.clone().retry_dead(id.to_string()).await
    }

    /// Deletes a dead letter for good: its [`Outbox::settled`] fails with
    /// [`ErrorCode::Removed`]; [`ErrorCode::NotFound`] if `id` is not a dead letter.
    pub async fn discard_dead(&self, id: &str) -> Result<()> {
        self.engine.clone().discard_dead(id.to_string()).await
    }

    /// Cancels a pending transaction that is not being sent. An earlier attempt cut off by
    /// `close` or a change of leader may have reached the server: that one cannot be taken
    /// back.
    pub async fn remove(&self, id: &str) -> Result<()> {
        self.engine.clone().remove(id.to_string()).await
    }

    /// Counts, ages, sizes and latencies (see [`Stats`]).
    pub async fn stats(&self) -> Result<Stats> {
        from_js(self.engine.clone().stats().await?)
    }

    /// Resets backoff delays and drains now.
    pub fn notify_online(&self) {
        self.engine.notify_online();
    }

    /// Runs until nothing is runnable now, or until `budget` passes.
    pub async fn drain(&self, budget: Option<Duration>) -> Result<DrainReport> {
        let budget = budget.map(|b| b.as_millis() as crate::model::Millis);
        from_js(wait(self.engine.drain(budget)).await?)
    }

    /// Calls `listener` with every event until the [`Subscription`] is dropped.
    ///
    /// ```no_run
    /// # use std::cell::Cell;
    /// # use std::rc::Rc;
    /// # use offline_outbox::{Event, Outbox};
    /// # fn show(outbox: &Outbox) -> offline_outbox::Subscription {
    /// // A badge with what is waiting, kept while the page shows it.
    /// let waiting = Rc::new(Cell::new(0u64));
    /// let badge = waiting.clone();
    /// outbox.subscribe(move |event| match event {
    ///     Event::Drained { remaining } => badge.set(remaining),
    ///     Event::Progress { done, total } => badge.set(total - done),
    ///     _ => {}
    /// })
    /// # }
    /// ```
    pub fn subscribe(&self, mut listener: impl FnMut(Event) + 'static) -> Subscription {
        let closure = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
            // An error event's OutboxError holds its message in a property that is not
            // enumerable, which serde's reading of a tagged enum does not see.
            let typed = if js::get(&ev, "type").as_string().as_deref() == Some("error") {
                let e = js::from_js(&js::get(&ev, "error"));
                Ok(Event::Error {
                    id: js::get(&ev, "id").as_string(),
                    error: ErrorInfo {
                        code: e.code,
                        message: e.message,
                    },
                })
            } else {
                serde_wasm_bindgen::from_value(ev)
            };
            // Events of a newer version of the package than this API knows are skipped.
            if let Ok(ev) = typed {
                listener(ev);
            }
        });
        let f: Function = closure.as_ref().clone().unchecked_into();
        Subscription {
            unsubscribe: self.engine.listeners.add(&f),
            _listener: closure,
        }
    }

    /// The pending transactions and dead letters as the JSON text of a backup.
    ///
    /// ```no_run
    /// # use offline_outbox::Outbox;
    /// # async fn rename(old: Outbox, new: &Outbox) -> Result<(), offline_outbox::Error> {
    /// // Carry what is waiting over to an outbox of another name.
    /// let backup = old.export_json().await?;
    /// let added = new.import_json(&backup).await?;
    /// assert_eq!(added.skipped, 0);
    /// old.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn export_json(&self) -> Result<String> {
        let doc = self.engine.clone().export().await?;
        js_sys::JSON::stringify(&doc)
            .map(String::from)
            .map_err(|e| js::from_js(&e))
    }

    /// Adds a backup's transactions that are not here yet (see the JS `import`).
    pub async fn import_json(&self, json: &str) -> Result<ImportReport> {
        from_js(self.engine.clone().import(JsValue::from_str(json)).await?)
    }

    /// Stops sending, finishes every write under way, closes the database.
    pub async fn close(self) {
        self.engine.clone().close().await;
    }
}
