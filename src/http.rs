//! The built-in `http` handler: a transaction whose `mutations` describe a request
//! (`{ method, url, headers?, body? }`) is replayed with `fetch`, carrying an
//! `Idempotency-Key` header. 2xx acknowledges; 408, 425, 429, 5xx and network errors
//! retry (honouring `Retry-After`); any other status is final.

use js_sys::{Array, Function, Object, Promise};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers, RequestInit, Response};

use crate::error::{Error, ErrorCode, Result};
use crate::js;
use crate::model::{LastError, Millis, Outcome};

const FIELDS: &[&str] = &["method", "url", "headers", "body"];
const EXCERPT: usize = 200;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidTransaction, msg)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_body(v: &JsValue) -> bool {
    v.is_undefined()
        || v.is_null()
        || v.is_string()
        || v.is_instance_of::<js_sys::ArrayBuffer>()
        || js_sys::ArrayBuffer::is_view(v)
}

/// Checks at enqueue time that `mutations` describes a request `fetch` will accept.
pub fn validate(m: &JsValue) -> Result<()> {
    if !js::is_plain_object(m) {
        return Err(invalid(
            "http mutations must be { method, url, headers?, body? }",
        ));
    }
    if m.is_object() {
        let keys = js::keys_of(m).map_err(|_| invalid("http mutations cannot be read"))?;
        if let Some(k) = keys
            .iter()
            .filter_map(|k| k.as_string())
            .find(|k| !FIELDS.contains(&k.as_str()))
        {
            return Err(invalid(format!("unknown http field \"{k}\"")));
        }
    }
    let method = js::get(m, "method")
        .as_string()
        .filter(|s| is_token(s))
        .ok_or_else(|| invalid("http method must be an HTTP token such as \"POST\""))?;
    let url = js::get(m, "url")
        .as_string()
        .ok_or_else(|| invalid("http url must be a string"))?;
    let base = js::get(&js::get(&js_sys::global(), "location"), "href");
    let parsed = match base.as_string() {
        Some(b) => web_sys_url(&url, Some(&b)),
        None => web_sys_url(&url, None),
    };
    if !parsed {
        return Err(invalid(format!("http url \"{url}\" does not parse")));
    }
    let headers = js::get(m, "headers");
    if !headers.is_undefined() {
        let ok = js::is_plain_object(&headers)
            && js::values_of(&headers).is_ok_and(|v| v.iter().all(|v| v.is_string()));
        if !ok {
            return Err(invalid("http headers must be an object of strings"));
        }
    }
    let body = js::get(m, "body");
    if !is_body(&body) {
        return Err(invalid(
            "http body must be a string, an ArrayBuffer or a typed array",
        ));
    }
    let upper = method.to_ascii_uppercase();
    if (upper == "GET" || upper == "HEAD") && !(body.is_undefined() || body.is_null()) {
        return Err(invalid("a GET or HEAD request cannot have a body"));
    }
    Ok(())
}

fn web_sys_url(url: &str, base: Option<&str>) -> bool {
    let ctor = js::get(&js_sys::global(), "URL");
    let Some(ctor) = ctor.dyn_ref::<Function>() else {
        return true;
    };
    let args = Array::of2(
        &JsValue::from_str(url),
        &base.map(JsValue::from_str).unwrap_or(JsValue::UNDEFINED),
    );
    js_sys::Reflect::construct(ctor, &args).is_ok()
}

/// Whether an HTTP status is worth retrying.
pub fn retryable(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..600).contains(&status)
}

/// `Retry-After` as a delay from `now`: delta-seconds, or an HTTP date.
pub fn retry_after(value: &str, now: Millis) -> Option<Millis> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs.saturating_mul(1_000));
    }
    let at = js_sys::Date::parse(v);
    at.is_finite().then(|| (at - now as f64).max(0.0) as Millis)
}

fn request_init(
    m: &JsValue,
    idempotency_key: &str,
    signal: &AbortSignal,
) -> std::result::Result<RequestInit, JsValue> {
    let init = RequestInit::new();
    init.set_method(&js::get(m, "method").as_string().unwrap_or_default());
    let headers = Headers::new()?;
    let given = js::get(m, "headers");
    if let Some(o) = given.dyn_ref::<Object>() {
        for entry in Object::entries(o).iter() {
            let pair: Array = entry.unchecked_into();
            headers.set(
                &pair.get(0).as_string().unwrap_or_default(),
                &pair.get(1).as_string().unwrap_or_default(),
            )?;
        }
    }
    headers.set("Idempotency-Key", idempotency_key)?;
    init.set_headers(&headers);
    let body = js::get(m, "body");
    if !(body.is_undefined() || body.is_null()) {
        init.set_body(&body);
    }
    init.set_signal(Some(signal));
    Ok(init)
}

/// Sends the request once and classifies the result.
pub async fn send(m: &JsValue, idempotency_key: &str, signal: &AbortSignal) -> Outcome {
    let init = match request_init(m, idempotency_key, signal) {
        Ok(i) => i,
        Err(e) => return Outcome::Reject(js::describe(&e)),
    };
    let global = js_sys::global();
    let Some(fetch) = js::get(&global, "fetch").dyn_into::<Function>().ok() else {
        return Outcome::Retry {
            error: LastError {
                name: "NetworkError".into(),
                message: "fetch is not available here".into(),
            },
            after: None,
        };
    };
    let url = js::get(m, "url");
    let response = match fetch.call2(&global, &url, &init) {
        Ok(p) => JsFuture::from(Promise::resolve(&p)).await,
        Err(e) => Err(e),
    };
    let response: Response = match response.and_then(|r| r.dyn_into::<Response>()) {
        Ok(r) => r,
        Err(e) => {
            let mut error = js::describe(&e);
            if error.name == "TypeError" {
                error.name = "NetworkError".into();
            }
            return Outcome::Retry { error, after: None };
        }
    };
    let status = response.status();
    if (200..300).contains(&status) {
        return Outcome::Acknowledged;
    }
    let excerpt = match response.text() {
        Ok(p) => JsFuture::from(p)
            .await
            .ok()
            .and_then(|t| t.as_string())
            .map(|t| t.chars().take(EXCERPT).collect::<String>())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let error = LastError {
        name: "HttpError".into(),
        message: format!("HTTP {status} {}: {excerpt}", response.status_text()),
    };
    if retryable(status) {
        let after = response
            .headers()
            .get("Retry-After")
            .ok()
            .flatten()
            .and_then(|v| retry_after(&v, js::now()));
        Outcome::Retry { error, after }
    } else {
        Outcome::Reject(error)
    }
}
