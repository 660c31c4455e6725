//! Payloads at rest, sealed and opened by `js/envelope.js` (which owns the record layout and
//! the deflate codec): compressed where that pays, synchronously, so compression alone keeps
//! an enqueue inside its group commit; encrypted with AES-GCM under the outbox's key.

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::IdbDatabase;

use crate::error::Result;
use crate::js;

#[wasm_bindgen(module = "/src/js/envelope.js")]
extern "C" {
    #[wasm_bindgen(js_name = sealNow, catch)]
    fn seal_now(record: &JsValue) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = seal)]
    fn seal(record: &JsValue, id: &str, key: &JsValue, compress: bool) -> Promise;
    #[wasm_bindgen(js_name = openAll)]
    fn open_all(values: &Array, ids: &Array, key: &JsValue, db: Option<&IdbDatabase>) -> JsValue;
}

/// How payloads are written, and the key that opens encrypted ones. When the outbox does
/// not encrypt, `open_all` reads the key from `db` the first time it meets an encrypted
/// payload (written earlier, or by a context that encrypts), so those stay readable.
#[derive(Clone, Default)]
pub struct Sealer {
    pub compress: bool,
    pub encrypt: bool,
    pub key: Option<JsValue>,
    pub db: Option<IdbDatabase>,
}

impl Sealer {
    /// Encryption waits on WebCrypto; compression alone is done at once (`seal_now`).
    pub fn is_async(&self) -> bool {
        self.encrypt
    }

    /// The record to write for `record` without waiting: compressed, or `None` to write it
    /// as given (compression off or not paying, or a Blob inside: IndexedDB keeps those
    /// natively). Not for encryption (`seal`).
    pub fn seal_now(&self, record: &JsValue) -> Result<Option<JsValue>> {
        if !self.compress {
            return Ok(None);
        }
        let sealed = seal_now(record).map_err(|e| js::from_js(&e))?;
        Ok(Some(sealed).filter(|s| !s.is_null()))
    }

    /// The record to write for payload `record` of transaction `id`.
    pub async fn seal(&self, record: &JsValue, id: &str) -> Result<Option<JsValue>> {
        let Some(key) = self.key.as_ref().filter(|_| self.encrypt) else {
            return self.seal_now(record);
        };
        JsFuture::from(seal(record, id, key, self.compress))
            .await
            .map(Some)
            .map_err(|e| js::from_js(&e))
    }

    /// Opens the sealed ones among `values` (payload records as read, by `ids`) in place:
    /// `None` when there are none, else the wait for them. One that cannot be opened
    /// (altered, or its key is gone) becomes `{ $unreadable: why }`; the wait itself does
    /// not fail.
    pub fn open_all(&self, values: &Array, ids: &Array) -> Option<JsFuture> {
        let key = self.key.clone().unwrap_or(JsValue::NULL);
        let opening: Promise = open_all(values, ids, &key, self.db.as_ref())
            .dyn_into()
            .ok()?;
        Some(JsFuture::from(opening))
    }
}
