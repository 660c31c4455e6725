//! Drain triggers from the environment: the `online` event and the page becoming
//! visible. Works in pages and workers alike (no `window.*`): the global scope is the
//! event target, and visibility exists only where there is a document.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Document, EventTarget, VisibilityState};

use crate::js;

/// Listeners that stay installed until dropped.
pub struct Triggers {
    global: EventTarget,
    online: Closure<dyn FnMut()>,
    visibility: Option<(Document, Closure<dyn FnMut()>)>,
}

impl Triggers {
    pub fn install(on_online: impl Fn() + 'static, on_visible: impl Fn() + 'static) -> Self {
        let global: EventTarget = js_sys::global().unchecked_into();
        let online = Closure::<dyn FnMut()>::new(on_online);
        let _ = global.add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
        let visibility = js::get(&global, "document")
            .dyn_into::<Document>()
            .ok()
            .map(|doc| {
                let d = doc.clone();
                let cb = Closure::<dyn FnMut()>::new(move || {
                    if d.visibility_state() == VisibilityState::Visible {
                        on_visible();
                    }
                });
                let _ = doc.add_event_listener_with_callback(
                    "visibilitychange",
                    cb.as_ref().unchecked_ref(),
                );
                (doc, cb)
            });
        Self {
            global,
            online,
            visibility,
        }
    }
}

impl Drop for Triggers {
    fn drop(&mut self) {
        let _ = self
            .global
            .remove_event_listener_with_callback("online", self.online.as_ref().unchecked_ref());
        if let Some((doc, cb)) = &self.visibility {
            let _ = doc.remove_event_listener_with_callback(
                "visibilitychange",
                cb.as_ref().unchecked_ref(),
            );
        }
    }
}
