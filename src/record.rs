//! The JS object form of [`TxMeta`]: what the `outbox` and `dead` stores hold, what a
//! backup lists and what tabs pass each other. Written by hand over `Reflect` rather than
//! through serde: the derived code and serde's error formatting (floats included) cost
//! more of the package than everything here, and a record's checks are few.

use js_sys::{Array, Object};
use wasm_bindgen::JsValue;

use crate::js;
use crate::model::{DeadReason, LastError, Priority, TxMeta};

/// Integers a JS number holds exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

pub fn encode(meta: &TxMeta) -> Object {
    let o = Object::new();
    let num = |k: &str, v: u64| js::set(&o, k, &JsValue::from_f64(v as f64));
    let text = |k: &str, v: &str| js::set(&o, k, &JsValue::from_str(v));
    if let Some(seq) = meta.seq {
        num("seq", seq);
    }
    text("id", &meta.id);
    text("handler", &meta.handler);
    js::set(&o, "keys", &strings(&meta.keys));
    text("idempotencyKey", meta.idempotency_key());
    text("priority", meta.priority.as_str());
    num("attempts", meta.attempts.into());
    num("createdAt", meta.created_at);
    num("nextAttemptAt", meta.next_attempt_at);
    if let Some(e) = &meta.last_error {
        js::set(&o, "lastError", &last_error(e));
    }
    if let Some(r) = meta.dead_reason {
        text("deadReason", r.as_str());
    }
    if let Some(at) = meta.dead_at {
        num("deadAt", at);
    }
    num("bytes", meta.bytes);
    if let Some(k) = &meta.coalesce_key {
        text("coalesceKey", k);
    }
    if !meta.aliases.is_empty() {
        js::set(&o, "aliases", &strings(&meta.aliases));
    }
    o
}

/// `{ name, message }`, as `lastError` is stored and reported.
pub fn last_error(e: &LastError) -> JsValue {
    let o = Object::new();
    js::set(&o, "name", &JsValue::from_str(&e.name));
    js::set(&o, "message", &JsValue::from_str(&e.message));
    o.into()
}

fn strings(list: &[String]) -> Array {
    list.iter().map(|s| JsValue::from_str(s)).collect()
}

/// A record back, or which field is missing or of the wrong type. `null` counts as
/// absent for the optional fields.
pub fn decode(raw: &JsValue) -> Result<TxMeta, String> {
    if !raw.is_object() {
        return Err("not an object".into());
    }
    let field = |k: &'static str| {
        let v = js::get(raw, k);
        (!v.is_undefined() && !v.is_null()).then_some(v)
    };
    let bad = |k: &str, what: &str| format!("{k} must be {what}");
    let text = |k: &'static str| {
        field(k)
            .and_then(|v| v.as_string())
            .ok_or_else(|| bad(k, "a string"))
    };
    let opt_num = |k: &'static str| match field(k) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|f| *f >= 0.0 && *f <= MAX_SAFE && f.fract() == 0.0)
            .map(|f| Some(f as u64))
            .ok_or_else(|| bad(k, "a whole number")),
    };
    let num = |k: &'static str| opt_num(k)?.ok_or_else(|| bad(k, "a whole number"));
    let list = |k: &'static str| match field(k) {
        None => Ok(Vec::new()),
        Some(v) if Array::is_array(&v) => Array::from(&v)
            .iter()
            .map(|s| s.as_string())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(k, "an array of strings")),
        Some(_) => Err(bad(k, "an array of strings")),
    };
    let last_error = match field("lastError") {
        None => None,
        Some(e) => Some(Box::new(LastError {
            name: js::get(&e, "name")
                .as_string()
                .ok_or_else(|| bad("lastError.name", "a string"))?,
            message: js::get(&e, "message")
                .as_string()
                .ok_or_else(|| bad("lastError.message", "a string"))?,
        })),
    };
    let dead_reason = match field("deadReason") {
        None => None,
        Some(r) => Some(
            r.as_string()
                .as_deref()
                .and_then(DeadReason::parse)
                .ok_or_else(|| bad("deadReason", "a dead-letter reason"))?,
        ),
    };
    if field("keys").is_none() {
        return Err(bad("keys", "an array of strings"));
    }
    let id = text("id")?;
    let idempotency_key = text("idempotencyKey")?;
    Ok(TxMeta {
        seq: opt_num("seq")?,
        idempotency_key: (idempotency_key != id).then_some(idempotency_key),
        id,
        handler: text("handler")?,
        keys: list("keys")?,
        priority: text("priority")
            .ok()
            .as_deref()
            .and_then(Priority::parse)
            .ok_or_else(|| bad("priority", "high, normal or low"))?,
        attempts: u32::try_from(num("attempts")?).map_err(|_| bad("attempts", "a count"))?,
        created_at: num("createdAt")?,
        next_attempt_at: num("nextAttemptAt")?,
        last_error,
        dead_reason,
        dead_at: opt_num("deadAt")?,
        bytes: opt_num("bytes")?.unwrap_or(0),
        coalesce_key: field("coalesceKey")
            .map(|v| v.as_string().ok_or_else(|| bad("coalesceKey", "a string")))
            .transpose()?,
        aliases: list("aliases")?,
    })
}
