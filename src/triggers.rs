//! Triggers from the environment, installed by `js/triggers.js`: the `online` event and the
//! page becoming visible (drain now), the page being hidden for good or restored (leave and
//! rejoin the election, so a closing leader hands over at once), and whether the connection
//! is metered, with its `change` event (the Network Information API, where there is one).

use js_sys::Function;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(module = "/src/js/triggers.js")]
extern "C" {
    fn listen(on: &Function) -> Function;
    #[wasm_bindgen(js_name = metered)]
    pub fn metered() -> bool;
    #[wasm_bindgen(js_name = watchConnection)]
    fn watch_connection(on: &Function) -> Option<Function>;
}

/// What `listen` reports, in its numbering.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Online,
    Visible,
    /// The page is going away (or into the back-forward cache).
    Hidden,
    /// The page came back from the back-forward cache.
    Restored,
}

/// Listeners that stay installed until dropped.
pub struct Listening {
    /// `FnMut(JsValue)`, the closure type wasm-bindgen-futures already compiles in: each
    /// closure signature brings its own glue.
    _callback: Closure<dyn FnMut(JsValue)>,
    remove: Function,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.remove.call0(&JsValue::UNDEFINED);
    }
}

/// Calls `on` for each trigger until the result is dropped.
pub fn install(on: impl Fn(Trigger) + 'static) -> Listening {
    const ALL: [Trigger; 4] = [
        Trigger::Online,
        Trigger::Visible,
        Trigger::Hidden,
        Trigger::Restored,
    ];
    let callback = Closure::<dyn FnMut(JsValue)>::new(move |n: JsValue| {
        if let Some(&t) = n
            .as_f64()
            .filter(|f| *f >= 0.0)
            .and_then(|f| ALL.get(f as usize))
        {
            on(t);
        }
    });
    let remove = listen(callback.as_ref().unchecked_ref());
    Listening {
        _callback: callback,
        remove,
    }
}

/// Calls `on_change` when the connection changes, until dropped; `None` where the browser
/// reports no connection.
pub fn watch_network(on_change: impl Fn() + 'static) -> Option<Listening> {
    let callback = Closure::<dyn FnMut(JsValue)>::new(move |_| on_change());
    let remove = watch_connection(callback.as_ref().unchecked_ref())?;
    Some(Listening {
        _callback: callback,
        remove,
    })
}
