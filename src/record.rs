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
    let num = |v: u64| v as f64;
    let error = meta.last_error.as_deref();
    make_record(
        meta.seq.map(num),
        &meta.id,
        &meta.handler,
        &strings(&meta.keys),
        meta.idempotency_key.as_deref(),
        &js::word(meta.priority.as_str()),
        meta.attempts,
        num(meta.created_at),
        num(meta.next_attempt_at),
        error.map(|e| e.name.as_str()),
        error.map(|e| e.message.as_str()),
        meta.dead_reason.map(DeadReason::as_str),
        meta.dead_at.map(num),
        num(meta.bytes),
        meta.coalesce_key.as_deref(),
        (!meta.aliases.is_empty()).then(|| strings(&meta.aliases)),
    )
}

/// A transaction as the API reports it, from its record (see `encode`); `seq` where the
/// record was written before IndexedDB gave it one.
pub fn info(
    record: &Object,
    seq: Option<u64>,
    status: &'static str,
    payload: Option<&JsValue>,
) -> JsValue {
    info_of(record, seq.map(|s| s as f64), &js::word(status), payload)
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
/// In the order of `REASONS` in records.js, which packs a reason as its index (priorities
/// likewise, as `PRIORITIES` there and in `unpack`).
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
        group: 0,
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
    #[wasm_bindgen(js_name = makeRecord)]
    #[allow(clippy::too_many_arguments)]
    fn make_record(
        seq: Option<f64>,
        id: &str,
        handler: &str,
        keys: &Array,
        idempotency_key: Option<&str>,
        priority: &JsValue,
        attempts: u32,
        created_at: f64,
        next_attempt_at: f64,
        error_name: Option<&str>,
        error_message: Option<&str>,
        dead_reason: Option<&str>,
        dead_at: Option<f64>,
        bytes: f64,
        coalesce_key: Option<&str>,
        aliases: Option<Array>,
    ) -> Object;
    /// What `settled` reports for a transaction this context holds no record of.
    pub fn acknowledged(id: &str) -> JsValue;
    /// The `corrupt` dead letter for a record under `seq` that does not decode.
    #[wasm_bindgen(js_name = corruptRecord)]
    pub fn corrupt_record(raw: &JsValue, seq: f64, reason: &str, now: f64) -> JsValue;
    #[wasm_bindgen(js_name = infoOf)]
    fn info_of(
        record: &Object,
        seq: Option<f64>,
        status: &JsValue,
        payload: Option<&JsValue>,
    ) -> JsValue;
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
