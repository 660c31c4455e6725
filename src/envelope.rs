//! Payloads at rest (the record layout is in `js/envelope.js`): deflated where that pays
//! (`deflate`, synchronous, so compression alone keeps an enqueue inside its group commit),
//! encrypted with AES-GCM under the outbox's key, and opened again on the way out.

use js_sys::{Array, Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::deflate;
use crate::error::{Error, ErrorCode, Result};
use crate::js;

#[wasm_bindgen(module = "/src/js/envelope.js")]
extern "C" {
    #[wasm_bindgen(js_name = jsonBytes, catch)]
    fn json_bytes(value: &JsValue) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = jsonBytesAsync)]
    fn json_bytes_async(value: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = sealed)]
    fn sealed_record(z: bool, data: &Uint8Array, iv: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = encrypt)]
    fn encrypt(bytes: &Uint8Array, id: &str, key: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = openAll)]
    fn open_all(values: &Array, ids: &Array, key: &JsValue, inflate: &Function) -> JsValue;
}

/// JSON of at most this many bytes is not worth deflating.
const COMPRESS_ABOVE: usize = 1024;
/// A sealed payload inflating past this is treated as damaged rather than allocated.
const INFLATE_LIMIT: usize = 256 << 20;

/// How payloads are written, and the key that opens encrypted ones (kept even when the
/// outbox no longer encrypts, so what was written encrypted stays readable).
#[derive(Clone, Default)]
pub struct Sealer {
    pub compress: bool,
    pub encrypt: bool,
    pub key: Option<JsValue>,
}

fn unserializable(e: &JsValue) -> Error {
    Error::new(
        ErrorCode::NotSerializable,
        format!("cannot be sealed: {}", js::describe(e).message),
    )
}

fn bytes_of(v: &JsValue) -> Vec<u8> {
    v.dyn_ref::<Uint8Array>()
        .map(Uint8Array::to_vec)
        .unwrap_or_default()
}

impl Sealer {
    /// Encryption waits on WebCrypto; compression alone is done at once (`seal_now`).
    pub fn is_async(&self) -> bool {
        self.encrypt
    }

    /// The deflated bytes, where compression is on and pays.
    fn deflate(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        if !self.compress || bytes.len() <= COMPRESS_ABOVE {
            return None;
        }
        let packed = deflate::compress(bytes);
        (packed.len() < bytes.len()).then_some(packed)
    }

    /// The record to write for `record` without waiting: deflated, or `None` to write it
    /// as given (compression off or not paying, or a Blob inside: IndexedDB keeps those
    /// natively). Not for encryption (`seal`).
    pub fn seal_now(&self, record: &JsValue) -> Result<Option<JsValue>> {
        if !self.compress {
            return Ok(None);
        }
        let json = json_bytes(record).map_err(|e| unserializable(&e))?;
        if json.is_null() {
            return Ok(None);
        }
        Ok(self
            .deflate(&bytes_of(&json))
            .map(|z| sealed_record(true, &Uint8Array::from(&z[..]), &JsValue::UNDEFINED)))
    }

    /// The record to write for payload `record` of transaction `id`.
    pub async fn seal(&self, record: &JsValue, id: &str) -> Result<Option<JsValue>> {
        let Some(key) = self.key.as_ref().filter(|_| self.encrypt) else {
            return self.seal_now(record);
        };
        let json = JsFuture::from(json_bytes_async(record))
            .await
            .map_err(|e| unserializable(&e))?;
        let json = bytes_of(&json);
        let (z, data) = match self.deflate(&json) {
            Some(packed) => (true, packed),
            None => (false, json),
        };
        let out = JsFuture::from(encrypt(&Uint8Array::from(&data[..]), id, key))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorCode::StorageUnavailable,
                    format!("encrypting the payload: {}", js::describe(&e).message),
                )
            })?;
        let data: Uint8Array = js::get(&out, "data").unchecked_into();
        Ok(Some(sealed_record(z, &data, &js::get(&out, "iv"))))
    }

    /// Opens the sealed ones among `values` (payload records as read, by `ids`) in place:
    /// `None` when there are none, else the wait for them. One that cannot be opened
    /// (altered, or its key is gone) becomes `{ $unreadable: why }`; the wait itself does
    /// not fail.
    pub fn open_all(&self, values: &Array, ids: &Array) -> Option<JsFuture> {
        thread_local! {
            // JS calls it while the opening runs, so it lives as long as the module.
            static INFLATE: Closure<dyn Fn(Uint8Array) -> JsValue> = Closure::new(|z: Uint8Array| {
                deflate::decompress(&z.to_vec(), INFLATE_LIMIT)
                    .map_or(JsValue::NULL, |d| Uint8Array::from(&d[..]).into())
            });
        }
        let key = self.key.clone().unwrap_or(JsValue::NULL);
        let opening =
            INFLATE.with(|inflate| open_all(values, ids, &key, inflate.as_ref().unchecked_ref()));
        let opening: Promise = opening.dyn_into().ok()?;
        Some(JsFuture::from(opening))
    }
}
