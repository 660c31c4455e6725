//! What JS passes in: `OutboxOptions` and `NewTransaction`, read and checked whole by
//! `js/options.js` before anything is stored (a failure is a typed error), then taken into
//! the crate's types here.

use js_sys::{Array, Function};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

use crate::error::{Error, ErrorCode, Result};
use crate::js;
use crate::model::{DeadLetterPolicy, Millis, Ordering, Priority};
use crate::retry::{Jitter, RetryPolicy};

#[wasm_bindgen(module = "/src/js/http.js")]
extern "C" {
    /// The built-in `http` handler: replays the described request with `fetch`.
    #[wasm_bindgen(js_name = httpHandler)]
    fn http_handler() -> Function;
}

#[wasm_bindgen(module = "/src/js/options.js")]
extern "C" {
    #[wasm_bindgen(js_name = readOptions, catch)]
    fn read_options(v: &JsValue) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = readCallOption, catch)]
    fn read_call_option(v: &JsValue, field: &str) -> std::result::Result<f64, JsValue>;
    #[wasm_bindgen(js_name = readTransaction, catch)]
    fn read_transaction(
        v: &JsValue,
        handlers: &Array,
        http: bool,
    ) -> std::result::Result<Array, JsValue>;
}

/// The built-in handler's name.
pub const HTTP_HANDLER: &str = "http";

pub enum Handler {
    Js(Function),
    /// Receives up to `size` runnable transactions in one call.
    Batch {
        f: Function,
        size: usize,
    },
    /// The built-in one (`js/http.js`): a failure retrying cannot help has `final: true`.
    Http(Function),
}

impl Handler {
    /// How many transactions one call may carry.
    pub fn batch_size(&self) -> usize {
        match self {
            Self::Batch { size, .. } => *size,
            _ => 1,
        }
    }
}

/// The registered handlers by name, each with its merge function for coalescing
/// (`(older, newer) => mutations`), if any. A list: an app has a few, and a map type of
/// its own is its own hash-table code in the wasm.
pub struct Handlers {
    list: Vec<(String, Handler, Option<Function>)>,
    /// The names, for the checks made in JS.
    names: Array,
}

impl Handlers {
    fn new(list: Vec<(String, Handler, Option<Function>)>) -> Self {
        let names = list.iter().map(|(n, ..)| JsValue::from_str(n)).collect();
        Handlers { list, names }
    }

    fn entry(&self, name: &str) -> Option<&(String, Handler, Option<Function>)> {
        self.list.iter().find(|(n, ..)| n == name)
    }

    pub fn get(&self, name: &str) -> Option<&Handler> {
        self.entry(name).map(|(_, h, _)| h)
    }

    pub fn merge(&self, name: &str) -> Option<&Function> {
        self.entry(name)?.2.as_ref()
    }

    pub fn names(&self) -> &Array {
        &self.names
    }

    /// Whether the handler named "http" is the built-in one (an app may register its own).
    pub fn http_builtin(&self) -> bool {
        matches!(self.get(HTTP_HANDLER), Some(Handler::Http(_)))
    }
}

/// Who sends when several contexts (tabs, workers) open the same outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderElection {
    /// Web Locks where the browser has them, else [`LeaderElection::BroadcastChannel`].
    Auto,
    /// The holder of a Web Lock sends; it passes on at once when that context closes or
    /// crashes.
    WebLocks,
    /// A heartbeat lease over a `BroadcastChannel`: a crashed leader is replaced once its
    /// lease runs out.
    BroadcastChannel,
    /// This context always sends: only for an app that opens the outbox in one context.
    None,
}

pub struct Options {
    pub name: String,
    pub handlers: Handlers,
    pub max_concurrency: usize,
    pub ordering: Ordering,
    pub retry: RetryPolicy,
    pub leader_election: LeaderElection,
    /// Transactions older than this go to the dead letters (reason `expired`).
    pub max_age_ms: Option<Millis>,
    /// An attempt without an outcome after this long fails as a retryable `TimeoutError`;
    /// 0 (never an option's value) for no limit.
    pub attempt_timeout_ms: u32,
    pub dead_letters: DeadLetterPolicy,
    /// `network: { policy: 'wifi-preferred' }`: hold low-priority work on metered links.
    pub wifi_preferred: Option<WifiPreferred>,
    /// Ask for persistent storage at open (default true).
    pub persist: bool,
    pub capacity: Capacity,
    /// Deflate payloads whose JSON form exceeds 1 KiB (where that makes them smaller).
    pub compress: bool,
    /// Encrypt payloads at rest under the outbox's non-extractable AES-GCM key.
    pub encrypt: bool,
}

/// Soft limits: crossing 80 % and 100 % emits `capacity` events; nothing is refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct Capacity {
    pub max_count: Option<u64>,
    pub max_bytes: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
pub struct WifiPreferred {
    /// Held no longer than this after the oldest low-priority transaction was enqueued.
    pub max_hold_ms: Millis,
    /// Held only while the outbox's payloads total at most this.
    pub max_hold_bytes: u64,
}

pub struct NewTransaction {
    pub handler: String,
    /// Each once.
    pub keys: Vec<String>,
    /// `{ mutations, metadata }`.
    pub payload: JsValue,
    pub priority: Priority,
    pub idempotency_key: Option<String>,
    pub coalesce_key: Option<String>,
}

fn num(o: &JsValue, key: &'static str) -> Option<u64> {
    js::get(o, key).as_f64().map(|f| f as u64)
}

fn text(o: &JsValue, key: &'static str) -> Option<String> {
    js::get(o, key).as_string()
}

/// A call's one option `field` (`drain()`'s `budgetMs`, the lists' `limit`), checked by
/// `readCallOption`: a whole number, or infinity without one.
pub fn call_option(v: &JsValue, field: &str) -> Result<f64> {
    read_call_option(v, field).map_err(|e| js::from_js(&e))
}

pub fn parse_options(v: &JsValue) -> Result<Options> {
    let o = read_options(v).map_err(|e| js::from_js(&e))?;
    let mut handlers = Vec::new();
    for entry in Array::from(&js::get(&o, "handlers")).iter() {
        let entry = Array::from(&entry);
        let f: Function = entry.get(1).unchecked_into();
        let handler = match entry.get(2).as_f64().unwrap_or(0.0) as usize {
            0 => Handler::Js(f),
            size => Handler::Batch { f, size },
        };
        let merge = entry.get(3).dyn_into::<Function>().ok();
        handlers.push((entry.get(0).as_string().unwrap_or_default(), handler, merge));
    }
    // Unless the app registers its own under that name.
    if !handlers.iter().any(|(n, ..)| n == HTTP_HANDLER) {
        handlers.push((HTTP_HANDLER.into(), Handler::Http(http_handler()), None));
    }
    let default = RetryPolicy::default();
    let retry = RetryPolicy {
        base_delay_ms: num(&o, "baseDelayMs").unwrap_or(default.base_delay_ms),
        max_delay_ms: num(&o, "maxDelayMs").unwrap_or(default.max_delay_ms),
        max_attempts: num(&o, "maxAttempts").map(|m| m as u32),
        jitter: text(&o, "jitter")
            .and_then(|j| Jitter::parse(&j))
            .unwrap_or(default.jitter),
    };
    // Here rather than in options.js, where the defaults would be written twice.
    if retry.max_delay_ms < retry.base_delay_ms {
        return Err(Error::new(
            ErrorCode::InvalidOptions,
            "retry.maxDelayMs must be at least retry.baseDelayMs",
        ));
    }
    let wifi = js::get(&o, "wifiPreferred");
    let wifi_preferred = Array::is_array(&wifi).then(|| {
        let hold = Array::from(&wifi);
        WifiPreferred {
            max_hold_ms: hold.get(0).as_f64().unwrap_or(0.0) as Millis,
            max_hold_bytes: hold.get(1).as_f64().unwrap_or(0.0) as u64,
        }
    });
    let leader_election = match text(&o, "leaderElection").as_deref() {
        Some("web-locks") => LeaderElection::WebLocks,
        Some("broadcast-channel") => LeaderElection::BroadcastChannel,
        Some("none") => LeaderElection::None,
        _ => LeaderElection::Auto,
    };
    let flag = |key| js::get(&o, key).is_truthy();
    Ok(Options {
        name: text(&o, "name").unwrap_or_default(),
        handlers: Handlers::new(handlers),
        max_concurrency: num(&o, "maxConcurrency").unwrap_or(4) as usize,
        ordering: text(&o, "ordering")
            .and_then(|s| Ordering::parse(&s))
            .unwrap_or_default(),
        retry,
        leader_election,
        max_age_ms: num(&o, "maxAgeMs"),
        attempt_timeout_ms: num(&o, "attemptTimeoutMs").unwrap_or(0) as u32,
        dead_letters: text(&o, "deadLetterPolicy")
            .and_then(|s| DeadLetterPolicy::parse(&s))
            .unwrap_or_default(),
        wifi_preferred,
        persist: flag("persist"),
        capacity: Capacity {
            max_count: num(&o, "maxCount"),
            max_bytes: num(&o, "maxBytes"),
        },
        compress: flag("compress"),
        encrypt: flag("encrypt"),
    })
}

pub fn parse_transaction(v: &JsValue, handlers: &Handlers) -> Result<NewTransaction> {
    let t = read_transaction(v, handlers.names(), handlers.http_builtin())
        .map_err(|e| js::from_js(&e))?;
    Ok(NewTransaction {
        handler: t.get(0).as_string().unwrap_or_default(),
        keys: Array::from(&t.get(1))
            .iter()
            .filter_map(|k| k.as_string())
            .collect(),
        payload: t.get(2),
        priority: t
            .get(3)
            .as_string()
            .and_then(|p| Priority::parse(&p))
            .unwrap_or_default(),
        idempotency_key: t.get(4).as_string(),
        coalesce_key: t.get(5).as_string(),
    })
}
