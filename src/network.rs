//! The Network Information API (`navigator.connection`), where the browser has it: whether
//! the connection is metered or constrained, and its `change` event. Absent (Safari,
//! Firefox), the connection counts as unmetered and nothing is held.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::EventTarget;

use crate::js;

fn connection() -> Option<EventTarget> {
    let navigator = js::get(&js_sys::global(), "navigator");
    js::get(&navigator, "connection").dyn_into().ok()
}

/// Cellular (where `type` is reported), Data Saver on, or an effective type of 3g or
/// slower (desktop browsers report no `type`).
pub fn metered() -> bool {
    let Some(c) = connection() else {
        return false;
    };
    if js::get(&c, "saveData").as_bool() == Some(true) {
        return true;
    }
    match js::get(&c, "type").as_string() {
        Some(t) => t == "cellular",
        None => matches!(
            js::get(&c, "effectiveType").as_string().as_deref(),
            Some("slow-2g" | "2g" | "3g")
        ),
    }
}

/// A `change` listener on the connection, removed when dropped.
pub struct Watch {
    target: EventTarget,
    listener: Closure<dyn FnMut()>,
}

pub fn watch(on_change: impl Fn() + 'static) -> Option<Watch> {
    let target = connection()?;
    let listener = Closure::<dyn FnMut()>::new(on_change);
    target
        .add_event_listener_with_callback("change", listener.as_ref().unchecked_ref())
        .ok()?;
    Some(Watch { target, listener })
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback("change", self.listener.as_ref().unchecked_ref());
    }
}
