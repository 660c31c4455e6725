//! Reading and validating what JS passes in: `OutboxOptions` and `NewTransaction`.
//! Everything is checked before anything is stored; a failure is a typed error.

use js_sys::{Array, Function, Object};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::{Error, ErrorCode, Result};
use crate::js;
use crate::model::{DeadLetterPolicy, Millis, Ordering, Priority};
use crate::retry::{Jitter, RetryPolicy};

/// The built-in handler that replays a described HTTP request with `fetch`.
pub const HTTP_HANDLER: &str = "http";

pub(crate) const MAX_KEYS: usize = 256;
pub(crate) const MAX_STRING: usize = 1_024;

pub enum Handler {
    Js(Function),
    /// Receives up to `size` runnable transactions in one call.
    Batch {
        f: Function,
        size: usize,
    },
    Http,
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
pub struct Handlers(Vec<(String, Handler, Option<Function>)>);

impl Handlers {
    fn entry(&self, name: &str) -> Option<&(String, Handler, Option<Function>)> {
        self.0.iter().find(|(n, ..)| n == name)
    }

    pub fn get(&self, name: &str) -> Option<&Handler> {
        self.entry(name).map(|(_, h, _)| h)
    }

    pub fn merge(&self, name: &str) -> Option<&Function> {
        self.entry(name)?.2.as_ref()
    }

    /// The registered names, for checks made in JS.
    pub fn names(&self) -> Array {
        self.0.iter().map(|(n, ..)| JsValue::from_str(n)).collect()
    }
}

const MAX_BATCH: f64 = 10_000.0;

/// A handler entry: a function, `{ send, merge? }` or `{ sendBatch, batchSize?, merge? }`.
fn parse_handler(key: &str, v: JsValue) -> Result<(Handler, Option<Function>)> {
    const C: ErrorCode = ErrorCode::InvalidOptions;
    if let Some(f) = v.dyn_ref::<Function>() {
        return Ok((Handler::Js(f.clone()), None));
    }
    let shape = "a function, { send, merge? } or { sendBatch, batchSize?, merge? }";
    if !js::is_plain_object(&v) {
        return Err(invalid(C, format!("handler \"{key}\" must be {shape}")));
    }
    reject_unknown(
        &v,
        &["send", "sendBatch", "batchSize", "merge"],
        "handler field",
        C,
    )?;
    let function = |field: &'static str| -> Result<Option<Function>> {
        let f = js::get(&v, field);
        if f.is_undefined() {
            return Ok(None);
        }
        f.dyn_into::<Function>()
            .map(Some)
            .map_err(|_| invalid(C, format!("handler \"{key}\": {field} must be a function")))
    };
    let merge = function("merge")?;
    let handler = match (function("send")?, function("sendBatch")?) {
        (Some(f), None) if js::get(&v, "batchSize").is_undefined() => Handler::Js(f),
        (None, Some(f)) => {
            let size = whole(&v, "batchSize", 1.0, MAX_BATCH, C)?.unwrap_or(50) as usize;
            Handler::Batch { f, size }
        }
        _ => return Err(invalid(C, format!("handler \"{key}\" must be {shape}"))),
    };
    Ok((handler, merge))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderElection {
    Auto,
    WebLocks,
    BroadcastChannel,
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
    pub keys: Vec<String>,
    pub mutations: JsValue,
    pub metadata: JsValue,
    pub priority: Priority,
    pub idempotency_key: Option<String>,
    pub coalesce_key: Option<String>,
}

fn invalid(code: ErrorCode, msg: impl Into<String>) -> Error {
    Error::new(code, msg)
}

/// Own enumerable keys of `obj` that are not in `known`; `Err` when they cannot be read.
fn unknown_fields(obj: &JsValue, known: &[&str]) -> std::result::Result<Vec<String>, JsValue> {
    if !obj.is_object() {
        return Ok(Vec::new());
    }
    Ok(js::keys_of(obj)?
        .iter()
        .filter_map(|k| k.as_string())
        .filter(|k| !known.contains(&k.as_str()))
        .collect())
}

/// The nested option object `options[field]` (`retry`, `network`, `capacity`), checked to
/// be a plain object of known fields; `None` when absent.
fn nested(options: &JsValue, field: &'static str, known: &[&str]) -> Result<Option<JsValue>> {
    const C: ErrorCode = ErrorCode::InvalidOptions;
    let v = js::get(options, field);
    if v.is_undefined() {
        return Ok(None);
    }
    if !js::is_plain_object(&v) {
        return Err(invalid(C, format!("{field} must be an object")));
    }
    reject_unknown(&v, known, &format!("{field} option"), C)?;
    Ok(Some(v))
}

fn reject_unknown(obj: &JsValue, known: &[&str], what: &str, code: ErrorCode) -> Result<()> {
    let unknown = unknown_fields(obj, known).map_err(|e| {
        invalid(
            code,
            format!("its fields cannot be read: {}", js::describe(&e).message),
        )
    })?;
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(invalid(
            code,
            format!(
                "unknown {what} \"{}\" (known: {})",
                unknown.join("\", \""),
                known.join(", ")
            ),
        ))
    }
}

/// A whole number in `[min, max]`, or `None` when absent.
fn whole(
    obj: &JsValue,
    key: &'static str,
    min: f64,
    max: f64,
    code: ErrorCode,
) -> Result<Option<u64>> {
    let v = js::get(obj, key);
    if v.is_undefined() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && (min..=max).contains(&f) => Ok(Some(f as u64)),
        _ => Err(invalid(
            code,
            // Bounds are whole numbers: printed as integers, so no float formatting is linked.
            format!(
                "{key} must be a whole number from {} to {}",
                min as u64, max as u64
            ),
        )),
    }
}

fn string_field(obj: &JsValue, key: &'static str, code: ErrorCode) -> Result<Option<String>> {
    let v = js::get(obj, key);
    if v.is_undefined() {
        return Ok(None);
    }
    match v.as_string() {
        Some(s) if !s.is_empty() && s.len() <= MAX_STRING => Ok(Some(s)),
        _ => Err(invalid(
            code,
            format!("{key} must be a non-empty string of at most {MAX_STRING} bytes"),
        )),
    }
}

fn choice<T>(
    obj: &JsValue,
    key: &'static str,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
    code: ErrorCode,
) -> Result<Option<T>> {
    match string_field(obj, key, code) {
        Ok(None) => Ok(None),
        Ok(Some(s)) => parse(&s)
            .map(Some)
            .ok_or_else(|| invalid(code, format!("{key} must be one of {allowed}, not \"{s}\""))),
        Err(_) => Err(invalid(code, format!("{key} must be one of {allowed}"))),
    }
}

fn parse_leader(s: &str) -> Option<LeaderElection> {
    match s {
        "auto" => Some(LeaderElection::Auto),
        "web-locks" => Some(LeaderElection::WebLocks),
        "broadcast-channel" => Some(LeaderElection::BroadcastChannel),
        "none" => Some(LeaderElection::None),
        _ => None,
    }
}

pub fn parse_options(v: &JsValue) -> Result<Options> {
    const C: ErrorCode = ErrorCode::InvalidOptions;
    if !js::is_plain_object(v) {
        return Err(invalid(C, "options must be an object"));
    }
    reject_unknown(
        v,
        &[
            "name",
            "handlers",
            "maxConcurrency",
            "ordering",
            "retry",
            "leaderElection",
            "maxAgeMs",
            "deadLetterPolicy",
            "network",
            "persist",
            "capacity",
            "compress",
            "encrypt",
        ],
        "option",
        C,
    )?;
    let name = string_field(v, "name", C)?.ok_or_else(|| invalid(C, "name is required"))?;
    let mut handlers = Handlers(Vec::new());
    let hv = js::get(v, "handlers");
    if !hv.is_undefined() {
        let obj = hv
            .dyn_ref::<Object>()
            .filter(|_| js::is_plain_object(&hv))
            .ok_or_else(|| invalid(C, "handlers must be an object of handlers"))?;
        let entries = js::entries_of(obj).map_err(|e| {
            invalid(
                C,
                format!("handlers cannot be read: {}", js::describe(&e).message),
            )
        })?;
        for entry in entries.iter() {
            let pair: Array = entry.unchecked_into();
            let key = pair.get(0).as_string().unwrap_or_default();
            let (handler, merge) = parse_handler(&key, pair.get(1))?;
            handlers.0.push((key, handler, merge));
        }
    }
    if handlers.get(HTTP_HANDLER).is_none() {
        handlers
            .0
            .push((HTTP_HANDLER.to_string(), Handler::Http, None));
    }
    let max_concurrency = whole(v, "maxConcurrency", 1.0, 1024.0, C)?.unwrap_or(4) as usize;
    let max_age_ms = whole(v, "maxAgeMs", 1.0, 9_007_199_254_740_991.0, C)?;
    let ordering =
        choice(v, "ordering", Ordering::parse, "'per-key', 'fifo'", C)?.unwrap_or_default();
    let leader_election = choice(
        v,
        "leaderElection",
        parse_leader,
        "'auto', 'web-locks', 'broadcast-channel', 'none'",
        C,
    )?
    .unwrap_or(LeaderElection::Auto);
    let dead_letters = choice(
        v,
        "deadLetterPolicy",
        DeadLetterPolicy::parse,
        "'skip', 'block'",
        C,
    )?
    .unwrap_or_default();
    let wifi_preferred = parse_network(v)?;
    let persist = flag(v, "persist", true)?;
    let compress = flag(v, "compress", false)?;
    let encrypt = flag(v, "encrypt", false)?;
    let mut capacity = Capacity::default();
    if let Some(cv) = nested(v, "capacity", &["maxCount", "maxBytes"])? {
        capacity.max_count = whole(&cv, "maxCount", 1.0, 9_007_199_254_740_991.0, C)?;
        capacity.max_bytes = whole(&cv, "maxBytes", 1.0, 9_007_199_254_740_991.0, C)?;
    }
    let mut retry = RetryPolicy::default();
    let known = ["baseDelayMs", "maxDelayMs", "maxAttempts", "jitter"];
    if let Some(rv) = nested(v, "retry", &known)? {
        const DAY: f64 = 86_400_000.0;
        if let Some(b) = whole(&rv, "baseDelayMs", 0.0, DAY, C)? {
            retry.base_delay_ms = b;
        }
        if let Some(m) = whole(&rv, "maxDelayMs", 0.0, 7.0 * DAY, C)? {
            retry.max_delay_ms = m;
        }
        if retry.max_delay_ms < retry.base_delay_ms {
            return Err(invalid(
                C,
                "retry.maxDelayMs must be at least retry.baseDelayMs",
            ));
        }
        retry.max_attempts = whole(&rv, "maxAttempts", 1.0, u32::MAX as f64, C)?.map(|m| m as u32);
        if let Some(j) = choice(&rv, "jitter", Jitter::parse, "'full', 'equal', 'none'", C)? {
            retry.jitter = j;
        }
    }
    Ok(Options {
        name,
        handlers,
        max_concurrency,
        ordering,
        retry,
        leader_election,
        max_age_ms,
        dead_letters,
        wifi_preferred,
        persist,
        capacity,
        compress,
        encrypt,
    })
}

fn flag(v: &JsValue, name: &'static str, default: bool) -> Result<bool> {
    match js::get(v, name) {
        f if f.is_undefined() => Ok(default),
        f => f.as_bool().ok_or_else(|| {
            invalid(
                ErrorCode::InvalidOptions,
                format!("{name} must be a boolean"),
            )
        }),
    }
}

fn parse_network(options: &JsValue) -> Result<Option<WifiPreferred>> {
    const C: ErrorCode = ErrorCode::InvalidOptions;
    let known = ["policy", "maxHoldMs", "maxHoldBytes"];
    let Some(ref v) = nested(options, "network", &known)? else {
        return Ok(None);
    };
    let wifi = choice(
        v,
        "policy",
        |s| match s {
            "always" => Some(false),
            "wifi-preferred" => Some(true),
            _ => None,
        },
        "'always', 'wifi-preferred'",
        C,
    )?
    .unwrap_or(false);
    let max_hold_ms = whole(v, "maxHoldMs", 0.0, 9_007_199_254_740_991.0, C)?;
    let max_hold_bytes = whole(v, "maxHoldBytes", 0.0, 9_007_199_254_740_991.0, C)?;
    Ok(wifi.then(|| WifiPreferred {
        max_hold_ms: max_hold_ms.unwrap_or(24 * 3_600_000),
        max_hold_bytes: max_hold_bytes.unwrap_or(1 << 20),
    }))
}

pub fn parse_transaction(v: &JsValue, handlers: &Handlers) -> Result<NewTransaction> {
    const C: ErrorCode = ErrorCode::InvalidTransaction;
    if !js::is_plain_object(v) {
        return Err(invalid(C, "a transaction must be an object"));
    }
    reject_unknown(
        v,
        &[
            "handler",
            "keys",
            "mutations",
            "priority",
            "idempotencyKey",
            "metadata",
            "coalesceKey",
        ],
        "transaction field",
        C,
    )?;
    let handler =
        string_field(v, "handler", C)?.ok_or_else(|| invalid(C, "handler is required"))?;
    let registered = handlers.get(&handler).ok_or_else(|| {
        invalid(
            ErrorCode::UnknownHandler,
            format!("no handler named \"{handler}\" is registered"),
        )
    })?;
    let kv = js::get(v, "keys");
    let arr = Some(kv)
        .filter(Array::is_array)
        .and_then(|kv| js::array_from(&kv).ok())
        .ok_or_else(|| invalid(C, "keys must be an array of strings"))?;
    if arr.length() as usize > MAX_KEYS {
        return Err(invalid(C, format!("at most {MAX_KEYS} keys")));
    }
    let mut keys = Vec::with_capacity(arr.length() as usize);
    for k in arr.iter() {
        match k.as_string() {
            Some(s) if s.len() <= MAX_STRING => keys.push(s),
            Some(_) => {
                return Err(invalid(
                    C,
                    format!("a key is longer than {MAX_STRING} bytes"),
                ))
            }
            None => return Err(invalid(C, "keys must be an array of strings")),
        }
    }
    let priority =
        choice(v, "priority", Priority::parse, "'high', 'normal', 'low'", C)?.unwrap_or_default();
    let idempotency_key = string_field(v, "idempotencyKey", C)?;
    let coalesce_key = string_field(v, "coalesceKey", C)?;
    let mutations = js::get(v, "mutations");
    if matches!(registered, Handler::Http) {
        crate::http::validate(&mutations)?;
    }
    Ok(NewTransaction {
        handler,
        keys,
        mutations,
        metadata: js::get(v, "metadata"),
        priority,
        idempotency_key,
        coalesce_key,
    })
}
