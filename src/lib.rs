//! offline-outbox: a durable IndexedDB outbox for web apps.
//!
//! Mutations are written to IndexedDB first, then replayed to the server by named
//! handlers, with retries and backoff, in per-key order. The pure core (`model`,
//! `scheduler`, `retry`, `error`) has no web dependency and is tested natively; the web
//! layer (`store`, `engine`, `triggers`, `js`, ...) is compiled for `wasm32` only.

pub mod error;
pub mod model;
pub mod retry;
pub mod scheduler;
