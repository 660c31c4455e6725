//! Triggers from the environment: the `online` event and the page becoming visible
//! (drain now), and the page being hidden for good or restored (leave and rejoin the
//! election, so a closing leader hands over at once). Works in pages and workers alike
//! (no `window.*`): the global scope is the event target; visibility and page lifecycle
//! exist only where there is a document.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Document, EventTarget, VisibilityState};

use crate::js;

type Listener = (&'static str, Closure<dyn FnMut(web_sys::Event)>);

/// Listeners that stay installed until dropped.
pub struct Triggers {
    global: EventTarget,
    listeners: Vec<Listener>,
    visibility: Option<(Document, Closure<dyn FnMut()>)>,
}

pub struct Callbacks<A, B, C, D> {
    pub online: A,
    pub visible: B,
    /// The page is going away (or into the back-forward cache).
    pub hidden: C,
    /// The page came back from the back-forward cache.
    pub restored: D,
}

impl Triggers {
    pub fn install<A, B, C, D>(cb: Callbacks<A, B, C, D>) -> Self
    where
        A: Fn() + 'static,
        B: Fn() + 'static,
        C: Fn() + 'static,
        D: Fn() + 'static,
    {
        let global: EventTarget = js_sys::global().unchecked_into();
        let mut listeners: Vec<Listener> = Vec::new();
        let online = cb.online;
        listeners.push(("online", Closure::new(move |_| online())));
        let has_document = !js::get(&global, "document").is_undefined();
        if has_document {
            let hidden = cb.hidden;
            listeners.push(("pagehide", Closure::new(move |_| hidden())));
            let restored = cb.restored;
            listeners.push((
                "pageshow",
                Closure::new(move |e: web_sys::Event| {
                    if js::get(&e, "persisted").as_bool() == Some(true) {
                        restored();
                    }
                }),
            ));
        }
        for (name, f) in &listeners {
            let _ = global.add_event_listener_with_callback(name, f.as_ref().unchecked_ref());
        }
        let on_visible = cb.visible;
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
            listeners,
            visibility,
        }
    }
}

impl Drop for Triggers {
    fn drop(&mut self) {
        for (name, f) in &self.listeners {
            let _ = self
                .global
                .remove_event_listener_with_callback(name, f.as_ref().unchecked_ref());
        }
        if let Some((doc, cb)) = &self.visibility {
            let _ = doc.remove_event_listener_with_callback(
                "visibilitychange",
                cb.as_ref().unchecked_ref(),
            );
        }
    }
}
