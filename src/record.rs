//! The JS object form of [`TxMeta`]: what the `outbox` and `dead` stores hold, what a
//! backup lists and what tabs pass each other. Written by hand rather than through serde:
//! the derived code and serde's error formatting (floats included) cost more of the
//! package than everything here. Records are read in bulk through `records.js`, which
//! packs them so a thousand cross into wasm in a few calls instead of some twenty each.

use js_sys::{Array, Object};
use wasm_bindgen::prelude::*;

use crate::js;
use crate::model::{DeadReason, LastError, Priority, TxMeta};

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

/// Records back, each or why it is not one: unpacked from `packRecords` (records.js),
/// which checks their fields' types. `null` counts as absent for the optional fields.
pub fn decode_all(raw: &Array) -> Vec<Result<TxMeta, String>> {
    let packed = pack_records(raw);
    let nums = packed.nums();
    let text = packed.text();
    let lens = packed.lens();
    let faults = packed.faults();
    let mut strings = Strings {
        ascii: text.len() == lens.iter().map(|&n| n as usize).sum::<usize>(),
        text: &text,
        lens: lens.iter(),
    };
    nums.chunks_exact(FIELDS)
        .enumerate()
        .map(|(i, n)| {
            if n[1].is_nan() {
                return Err(faults
                    .get(i as u32)
                    .as_string()
                    .unwrap_or_else(|| "not a record".into()));
            }
            unpack(n, &mut strings).ok_or_else(|| "does not unpack".into())
        })
        .collect()
}

/// One record back (see [`decode_all`]).
pub fn decode(raw: &JsValue) -> Result<TxMeta, String> {
    decode_all(&Array::of1(raw))
        .pop()
        .unwrap_or_else(|| Err("not a record".into()))
}

const FIELDS: usize = 11;
const IDEMPOTENCY: u32 = 1;
const LAST_ERROR: u32 = 2;
const COALESCE: u32 = 4;
const REASONS: [DeadReason; 4] = [
    DeadReason::HandlerRejected,
    DeadReason::MaxAttempts,
    DeadReason::Corrupt,
    DeadReason::Expired,
];

fn unpack(n: &[f64], s: &mut Strings) -> Option<TxMeta> {
    let opt = |f: f64| (!f.is_nan()).then_some(f as u64);
    let flags = n[10] as u32;
    let id = s.next()?;
    let handler = s.next()?;
    let idempotency_key = if flags & IDEMPOTENCY != 0 {
        Some(s.next()?)
    } else {
        None
    };
    let keys = (0..n[8] as usize)
        .map(|_| s.next())
        .collect::<Option<_>>()?;
    let aliases = (0..n[9] as usize)
        .map(|_| s.next())
        .collect::<Option<_>>()?;
    let last_error = if flags & LAST_ERROR != 0 {
        Some(Box::new(LastError {
            name: s.next()?,
            message: s.next()?,
        }))
    } else {
        None
    };
    let coalesce_key = if flags & COALESCE != 0 {
        Some(s.next()?)
    } else {
        None
    };
    Some(TxMeta {
        seq: opt(n[0]),
        id: id.into(),
        handler,
        keys,
        idempotency_key,
        priority: [Priority::High, Priority::Normal, Priority::Low]
            .get(n[6] as usize)
            .copied()?,
        attempts: n[1] as u32,
        created_at: n[2] as u64,
        next_attempt_at: n[3] as u64,
        last_error,
        dead_reason: if n[7].is_nan() {
            None
        } else {
            Some(*REASONS.get(n[7] as usize)?)
        },
        dead_at: opt(n[4]),
        bytes: opt(n[5]).unwrap_or(0),
        coalesce_key,
        aliases,
    })
}

/// The concatenated strings of `packRecords`, taken one by one. Lengths are in UTF-16
/// units; when the text is all ASCII they are byte lengths too.
struct Strings<'a> {
    text: &'a str,
    lens: std::slice::Iter<'a, u32>,
    ascii: bool,
}

impl Strings<'_> {
    fn next(&mut self) -> Option<String> {
        let units = *self.lens.next()? as usize;
        let bytes = if self.ascii {
            units
        } else {
            let mut seen = 0;
            self.text
                .char_indices()
                .find_map(|(at, c)| {
                    let here = (seen >= units).then_some(at);
                    seen += c.len_utf16();
                    here
                })
                .unwrap_or(self.text.len())
        };
        // `get`, not indexing: a slicing panic would link its whole error formatting.
        let (head, rest) = (self.text.get(..bytes)?, self.text.get(bytes..)?);
        self.text = rest;
        Some(head.to_owned())
    }
}

#[wasm_bindgen(module = "/src/js/records.js")]
extern "C" {
    type Packed;
    #[wasm_bindgen(js_name = packRecords)]
    fn pack_records(records: &Array) -> Packed;
    #[wasm_bindgen(method, getter)]
    fn nums(this: &Packed) -> Vec<f64>;
    #[wasm_bindgen(method, getter)]
    fn text(this: &Packed) -> String;
    #[wasm_bindgen(method, getter)]
    fn lens(this: &Packed) -> Vec<u32>;
    #[wasm_bindgen(method, getter)]
    fn faults(this: &Packed) -> Array;
}
