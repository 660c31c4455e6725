//! Store and executor tests against real IndexedDB, run in a page and in a dedicated
//! worker (see `page.rs`, `worker.rs`). Each test uses its own outbox name.

use js_sys::{Array, Promise};
use offline_outbox::JsOutbox as Outbox;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Declares every test below for one runner configuration.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[wasm_bindgen_test::wasm_bindgen_test]
            async fn $name() {
                common::$name().await
            }
        )*
    };
}

macro_rules! all_tests {
    () => {
        suite!(
            enqueue_resolves_only_once_durable,
            concurrent_enqueues_keep_call_order,
            per_key_order_with_disjoint_keys_in_parallel,
            multi_key_and_barrier_ordering,
            fifo_runs_strictly_in_order,
            priorities_order_runnable_work,
            retries_with_backoff_until_acknowledged,
            retry_after_ms_sets_the_delay,
            failure_is_persisted_with_attempts_and_error,
            non_retriable_error_dead_letters_and_frees_the_key,
            max_attempts_dead_letters,
            retry_dead_restores_original_position,
            remove_cancels_pending_but_not_in_flight,
            bad_input_is_refused_and_stores_nothing,
            mutations_and_metadata_keep_structured_clone_fidelity,
            corrupt_records_move_to_dead_letters_without_stopping_the_drain,
            transactions_for_a_missing_handler_wait_without_spending_attempts,
            close_aborts_handlers_and_keeps_their_records,
            notify_online_resets_backoff,
            drain_reports_and_honours_its_budget,
            peek_lists_pending_in_order_with_status,
            settled_and_subscribe_behave,
            stale_leader_cannot_acknowledge,
            stale_leader_cannot_remove,
            broadcast_channel_lease_elects_and_sends,
            expired_transactions_become_dead_letters,
        );
    };
}

#[wasm_bindgen(module = "/tests-wasm/helpers.js")]
extern "C" {
    fn sleep(ms: u32) -> Promise;
    #[wasm_bindgen(js_name = resetLog)]
    fn reset_log();
    #[wasm_bindgen(js_name = logLines)]
    fn log_lines() -> Vec<String>;
    #[wasm_bindgen(js_name = uniqueName)]
    fn unique_name(prefix: &str) -> String;
    #[wasm_bindgen(js_name = setGate)]
    fn set_gate(open: bool);
    fn options(name: &str, extra: JsValue) -> JsValue;
    fn tx(handler: &str, keys: Vec<String>, tag: &str, extra: JsValue) -> JsValue;
    #[wasm_bindgen(js_name = richMutations)]
    fn rich_mutations() -> JsValue;
    #[wasm_bindgen(js_name = checkRich)]
    fn check_rich(m: &JsValue) -> Vec<String>;
    #[wasm_bindgen(js_name = keptValues)]
    fn kept_values() -> Array;
    #[wasm_bindgen(js_name = rawCount)]
    fn raw_count(outbox: &str, store: &str) -> Promise;
    #[wasm_bindgen(js_name = rawAll)]
    fn raw_all(outbox: &str, store: &str) -> Promise;
    #[wasm_bindgen(js_name = rawPut)]
    fn raw_put(outbox: &str, store: &str, value: &JsValue, key: JsValue) -> Promise;
    #[wasm_bindgen(js_name = rawDelete)]
    fn raw_delete(outbox: &str, store: &str, key: &JsValue) -> Promise;
    fn collector() -> JsValue;
    #[wasm_bindgen(js_name = eventTypes)]
    fn event_types(events: &Array) -> Vec<String>;
    #[wasm_bindgen(js_name = withTimeout)]
    fn with_timeout(p: &Promise, ms: u32) -> Promise;
    #[wasm_bindgen(js_name = hangAs)]
    fn hang_as(name: &str) -> JsValue;
    #[wasm_bindgen(js_name = badTransactions)]
    fn bad_transactions() -> Array;
    #[wasm_bindgen(js_name = badOptions)]
    fn bad_options(name: &str) -> Array;
    #[wasm_bindgen(js_name = isOutboxError)]
    fn is_outbox_error(e: &JsValue) -> bool;
    #[wasm_bindgen(js_name = bumpEpochRaw)]
    fn bump_epoch_raw(outbox: &str) -> Promise;
    #[wasm_bindgen(js_name = leaderEvents)]
    fn leader_events(events: &Array) -> Vec<String>;
}

fn keys(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| s.to_string()).collect()
}

fn get(v: &JsValue, k: &str) -> JsValue {
    js_sys::Reflect::get(v, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

fn get_str(v: &JsValue, k: &str) -> String {
    get(v, k).as_string().unwrap_or_default()
}

fn get_num(v: &JsValue, k: &str) -> f64 {
    get(v, k).as_f64().unwrap_or(f64::NAN)
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = js_sys::Object::new();
    for (k, v) in pairs {
        js_sys::Reflect::set(&o, &JsValue::from_str(k), v).unwrap();
    }
    o.into()
}

fn num(n: f64) -> JsValue {
    JsValue::from_f64(n)
}

async fn ok(p: Promise) -> JsValue {
    JsFuture::from(p).await.expect("promise rejected")
}

/// The `code` of the rejection, or "resolved".
async fn code(p: Promise) -> String {
    match JsFuture::from(p).await {
        Ok(_) => "resolved".into(),
        Err(e) => {
            assert!(is_outbox_error(&e), "not an OutboxError: {e:?}");
            get_str(&e, "code")
        }
    }
}

async fn wait(ms: u32) {
    ok(sleep(ms)).await;
}

async fn count(name: &str, store: &str) -> f64 {
    ok(raw_count(name, store)).await.as_f64().unwrap()
}

/// Transactions the outbox holds, pending or in flight, by its own count (group records
/// counted by members).
async fn unsettled(ob: &Outbox) -> f64 {
    let stats = ok(ob.stats()).await;
    get_num(&stats, "pending") + get_num(&stats, "inFlight")
}

/// Subscribes a collector; the returned array fills as events arrive.
fn collect(ob: &Outbox) -> Array {
    let c = collector();
    ob.subscribe(get(&c, "listener")).expect("subscribe");
    get(&c, "events").unchecked_into()
}

async fn open(name: &str, extra: JsValue) -> Outbox {
    Outbox::open(options(name, extra)).await.expect("open")
}

async fn enqueue(ob: &Outbox, t: JsValue) -> JsValue {
    ok(ob.enqueue(t)).await
}

async fn settled(ob: &Outbox, info: &JsValue) -> JsValue {
    let p = ob.settled(get(info, "id"));
    let r = ok(with_timeout(&p, 10_000)).await;
    assert_ne!(
        r.as_string().as_deref(),
        Some("timeout"),
        "settled timed out"
    );
    r
}

async fn drain(ob: &Outbox) -> JsValue {
    ok(ob.drain(JsValue::UNDEFINED)).await
}

fn pos(log: &[String], line: &str) -> usize {
    log.iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("{line} not in {log:?}"))
}

fn setup(prefix: &str) -> String {
    reset_log();
    set_gate(false);
    unique_name(prefix)
}

pub async fn enqueue_resolves_only_once_durable() {
    let name = setup("durable");
    let ob = open(&name, JsValue::UNDEFINED).await;
    let info = enqueue(&ob, tx("hang", keys(&["a"]), "t1", JsValue::UNDEFINED)).await;
    // A separate connection sees the record the moment enqueue resolves.
    assert_eq!(count(&name, "outbox").await, 1.0);
    assert_eq!(count(&name, "payloads").await, 1.0);
    let stored = ok(raw_all(&name, "outbox")).await;
    let rec = Array::from(&stored).get(0);
    assert_eq!(get_num(&rec, "seq"), get_num(&info, "seq"));
    assert_eq!(get_str(&rec, "id"), get_str(&info, "id"));
    assert_eq!(get_str(&info, "idempotencyKey"), get_str(&info, "id"));
    assert_eq!(get_str(&info, "status"), "pending");
    ok(ob.close()).await;
}

pub async fn concurrent_enqueues_keep_call_order() {
    let name = setup("group");
    let ob = open(&name, JsValue::UNDEFINED).await;
    let promises: Array = (0..100)
        .map(|i| {
            ob.enqueue(tx(
                "hang",
                keys(&["k"]),
                &format!("t{i}"),
                JsValue::UNDEFINED,
            ))
        })
        .collect();
    let infos = Array::from(&ok(Promise::all(&promises)).await);
    let seqs: Vec<f64> = infos.iter().map(|i| get_num(&i, "seq")).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1.0), "{seqs:?}");
    // Committed together: one group record of metadata, one of payloads.
    assert_eq!(count(&name, "outbox").await, 1.0);
    assert_eq!(count(&name, "payloads").await, 1.0);
    assert_eq!(unsettled(&ob).await, 100.0);
    ok(ob.close()).await;
}

pub async fn per_key_order_with_disjoint_keys_in_parallel() {
    let name = setup("perkey");
    let ob = open(&name, JsValue::UNDEFINED).await;
    let ms = obj(&[("ms", num(40.0))]);
    enqueue(&ob, tx("slow", keys(&["a"]), "a1", ms.clone())).await;
    enqueue(&ob, tx("slow", keys(&["a"]), "a2", ms.clone())).await;
    let last = enqueue(&ob, tx("slow", keys(&["b"]), "b1", ms)).await;
    settled(&ob, &last).await;
    drain(&ob).await;
    let log = log_lines();
    assert!(pos(&log, "end:a1") < pos(&log, "start:a2"), "{log:?}");
    assert!(
        pos(&log, "start:b1") < pos(&log, "end:a1"),
        "b1 waited for a1: {log:?}"
    );
    ok(ob.close()).await;
}

pub async fn multi_key_and_barrier_ordering() {
    let name = setup("barrier");
    let ob = open(&name, obj(&[("maxConcurrency", num(8.0))])).await;
    let ms = obj(&[("ms", num(20.0))]);
    for (k, tag) in [
        (&["a"][..], "a1"),
        (&["b"], "b1"),
        (&["a", "b"], "ab"),
        (&[], "bar"),
        (&["c"], "c1"),
    ] {
        enqueue(&ob, tx("slow", keys(k), tag, ms.clone())).await;
    }
    let report = drain(&ob).await;
    assert_eq!(get_num(&report, "sent"), 5.0);
    let log = log_lines();
    assert!(
        pos(&log, "start:ab") > pos(&log, "end:a1").max(pos(&log, "end:b1")),
        "{log:?}"
    );
    assert!(pos(&log, "start:bar") > pos(&log, "end:ab"), "{log:?}");
    assert!(pos(&log, "start:c1") > pos(&log, "end:bar"), "{log:?}");
    ok(ob.close()).await;
}

pub async fn fifo_runs_strictly_in_order() {
    let name = setup("fifo");
    let ob = open(&name, obj(&[("ordering", "fifo".into())])).await;
    let ms = obj(&[("ms", num(20.0))]);
    enqueue(&ob, tx("slow", keys(&["a"]), "a1", ms.clone())).await;
    enqueue(&ob, tx("slow", keys(&["b"]), "b1", ms)).await;
    drain(&ob).await;
    let log = log_lines();
    assert!(pos(&log, "end:a1") < pos(&log, "start:b1"), "{log:?}");
    ok(ob.close()).await;
}

pub async fn priorities_order_runnable_work() {
    let name = setup("prio");
    let ob = open(&name, obj(&[("maxConcurrency", num(1.0))])).await;
    let mut promises = Vec::new();
    for (tag, prio) in [("low", "low"), ("normal", "normal"), ("high", "high")] {
        let t = tx("ok", keys(&[tag]), tag, JsValue::UNDEFINED);
        js_sys::Reflect::set(&t, &"priority".into(), &prio.into()).unwrap();
        promises.push(ob.enqueue(t));
    }
    for p in promises {
        ok(p).await;
    }
    drain(&ob).await;
    assert_eq!(log_lines(), ["call:high@1", "call:normal@1", "call:low@1"]);
    ok(ob.close()).await;
}

pub async fn retries_with_backoff_until_acknowledged() {
    let name = setup("retry");
    let retry = obj(&[
        ("baseDelayMs", num(10.0)),
        ("maxDelayMs", num(40.0)),
        ("jitter", "none".into()),
    ]);
    let ob = open(&name, obj(&[("retry", retry)])).await;
    let events = collect(&ob);
    let info = enqueue(
        &ob,
        tx("flaky", keys(&["a"]), "f", obj(&[("failTimes", num(2.0))])),
    )
    .await;
    let done = settled(&ob, &info).await;
    assert_eq!(get_str(&done, "status"), "acknowledged");
    let log = log_lines();
    assert_eq!(log.len(), 3, "{log:?}");
    let at = |i: usize| log[i].rsplit('@').next().unwrap().parse::<f64>().unwrap();
    assert!(at(1) - at(0) >= 10.0 && at(2) - at(1) >= 20.0, "{log:?}");
    let types = event_types(&events);
    assert_eq!(
        types.iter().filter(|t| *t == "retry").count(),
        2,
        "{types:?}"
    );
    let retry_ev = events
        .iter()
        .find(|e| get_str(e, "type") == "retry")
        .unwrap();
    assert_eq!(get_num(&retry_ev, "attempt"), 1.0);
    assert_eq!(get_str(&get(&retry_ev, "error"), "message"), "flaky 1");
    assert!(get_num(&retry_ev, "nextAttemptAt") > 0.0);
    assert_eq!(count(&name, "outbox").await, 0.0);
    ok(ob.close()).await;
}

pub async fn retry_after_ms_sets_the_delay() {
    let name = setup("retryafter");
    let retry = obj(&[
        ("baseDelayMs", num(600_000.0)),
        ("maxDelayMs", num(600_000.0)),
    ]);
    let ob = open(&name, obj(&[("retry", retry)])).await;
    let extra = obj(&[("failTimes", num(1.0)), ("retryAfterMs", num(40.0))]);
    let info = enqueue(&ob, tx("flaky", keys(&["a"]), "f", extra)).await;
    settled(&ob, &info).await;
    let log = log_lines();
    let at = |i: usize| log[i].rsplit('@').next().unwrap().parse::<f64>().unwrap();
    assert!(at(1) - at(0) >= 40.0, "{log:?}");
    ok(ob.close()).await;
}

pub async fn failure_is_persisted_with_attempts_and_error() {
    let name = setup("persistfail");
    let retry = obj(&[
        ("baseDelayMs", num(600_000.0)),
        ("maxDelayMs", num(600_000.0)),
        ("jitter", "none".into()),
    ]);
    let ob = open(&name, obj(&[("retry", retry)])).await;
    let info = enqueue(&ob, tx("throwsSync", keys(&["a"]), "t", JsValue::UNDEFINED)).await;
    drain(&ob).await;
    let rec = Array::from(&ok(raw_all(&name, "outbox")).await).get(0);
    assert_eq!(get_num(&rec, "attempts"), 1.0);
    assert_eq!(get_str(&get(&rec, "lastError"), "message"), "sync throw");
    let peeked = Array::from(&ok(ob.peek(JsValue::UNDEFINED)).await).get(0);
    assert_eq!(get_str(&peeked, "id"), get_str(&info, "id"));
    assert!(get_num(&peeked, "nextAttemptAt") > js_sys::Date::now());
    ok(ob.close()).await;
}

pub async fn non_retriable_error_dead_letters_and_frees_the_key() {
    let name = setup("dead");
    let ob = open(&name, JsValue::UNDEFINED).await;
    let bad = enqueue(&ob, tx("reject", keys(&["a"]), "bad", JsValue::UNDEFINED)).await;
    let good = enqueue(&ob, tx("ok", keys(&["a"]), "good", JsValue::UNDEFINED)).await;
    assert_eq!(code(ob.settled(get(&bad, "id"))).await, "Dead");
    settled(&ob, &good).await;
    let dead = Array::from(&ok(ob.dead_letters(JsValue::UNDEFINED)).await);
    assert_eq!(dead.length(), 1);
    let d = dead.get(0);
    assert_eq!(get_str(&d, "status"), "dead");
    assert_eq!(get_str(&d, "deadReason"), "handler-rejected");
    assert_eq!(
        get_str(&get(&d, "lastError"), "message"),
        "refused by server"
    );
    assert_eq!(get_str(&get(&d, "mutations"), "tag"), "bad");
    assert_eq!(count(&name, "dead").await, 1.0);
    assert_eq!(count(&name, "outbox").await, 0.0);
    // settled of a dead transaction rejects at once, too.
    assert_eq!(code(ob.settled(get(&bad, "id"))).await, "Dead");
    ok(ob.discard_dead(get(&bad, "id"))).await;
    assert_eq!(count(&name, "dead").await, 0.0);
    assert_eq!(count(&name, "payloads").await, 0.0);
    assert_eq!(code(ob.discard_dead(get(&bad, "id"))).await, "NotFound");
    ok(ob.close()).await;
}

pub async fn max_attempts_dead_letters() {
    let name = setup("maxattempts");
    let retry = obj(&[("baseDelayMs", num(1.0)), ("maxAttempts", num(2.0))]);
    let ob = open(&name, obj(&[("retry", retry)])).await;
    let info = enqueue(&ob, tx("throwsSync", keys(&["a"]), "t", JsValue::UNDEFINED)).await;
    assert_eq!(code(ob.settled(get(&info, "id"))).await, "Dead");
    let d = Array::from(&ok(ob.dead_letters(JsValue::UNDEFINED)).await).get(0);
    assert_eq!(get_str(&d, "deadReason"), "max-attempts");
    assert_eq!(get_num(&d, "attempts"), 2.0);
    ok(ob.close()).await;
}

pub async fn retry_dead_restores_original_position() {
    let name = setup("revive");
    let ob = open(&name, JsValue::UNDEFINED).await;
    let first = enqueue(
        &ob,
        tx("gated", keys(&["a"]), "t1", obj(&[("fatal", true.into())])),
    )
    .await;
    assert_eq!(code(ob.settled(get(&first, "id"))).await, "Dead");
    let extra = obj(&[("retryAfterMs", num(600_000.0))]);
    let second = enqueue(&ob, tx("gated", keys(&["a"]), "t2", extra)).await;
    drain(&ob).await;
    set_gate(true);
    reset_log();
    ok(ob.retry_dead(get(&first, "id"))).await;
    ob.notify_online();
    settled(&ob, &second).await;
    settled(&ob, &first).await;
    assert_eq!(log_lines(), ["call:t1@1", "call:t2@2"]);
    assert_eq!(count(&name, "dead").await, 0.0);
    assert_eq!(code(ob.retry_dead(get(&first, "id"))).await, "NotFound");
    ok(ob.close()).await;
}

pub async fn remove_cancels_pending_but_not_in_flight() {
    let name = setup("remove");
    let ob = open(&name, JsValue::UNDEFINED).await;
    let flying = enqueue(&ob, tx("hang", keys(&["a"]), "t1", JsValue::UNDEFINED)).await;
    let waiting = enqueue(&ob, tx("ok", keys(&["a"]), "t2", JsValue::UNDEFINED)).await;
    let waiter = ob.settled(get(&waiting, "id"));
    ok(ob.remove(get(&waiting, "id"))).await;
    assert_eq!(code(waiter).await, "Removed");
    assert_eq!(count(&name, "outbox").await, 1.0);
    assert_eq!(count(&name, "payloads").await, 1.0);
    assert_eq!(code(ob.remove(get(&flying, "id"))).await, "InFlight");
    assert_eq!(code(ob.remove("no-such-id".into())).await, "NotFound");
    assert_eq!(
        code(ob.remove(JsValue::from(5))).await,
        "InvalidTransaction"
    );
    ok(ob.close()).await;
}

pub async fn bad_input_is_refused_and_stores_nothing() {
    let name = setup("badinput");
    let ob = open(&name, JsValue::UNDEFINED).await;
    for case in bad_transactions().iter() {
        let case = Array::from(&case);
        let label = case.get(0).as_string().unwrap();
        let want = case.get(2).as_string().unwrap();
        assert_eq!(code(ob.enqueue(case.get(1))).await, want, "{label}");
    }
    // A bad transaction in the same group commit as good ones does not harm them.
    let good1 = ob.enqueue(tx("hang", keys(&["a"]), "g1", JsValue::UNDEFINED));
    let bad = ob.enqueue(Array::from(&bad_transactions().get(4)).get(1));
    let good2 = ob.enqueue(tx("hang", keys(&["a"]), "g2", JsValue::UNDEFINED));
    assert_eq!(code(bad).await, "NotSerializable");
    ok(good1).await;
    ok(good2).await;
    // The two good ones, as one group record and its payload record.
    assert_eq!(count(&name, "outbox").await, 1.0);
    assert_eq!(count(&name, "payloads").await, 1.0);
    assert_eq!(unsettled(&ob).await, 2.0);
    for case in bad_options(&name).iter() {
        let case = Array::from(&case);
        let err = Outbox::open(case.get(1))
            .await
            .err()
            .expect("bad options accepted");
        assert_eq!(get_str(&err, "code"), "InvalidOptions", "{:?}", case.get(0));
    }
    assert_eq!(
        code(ob.drain(obj(&[("budget", num(1.0))]))).await,
        "InvalidOptions"
    );
    ok(ob.close()).await;
    assert_eq!(
        code(ob.enqueue(tx("ok", keys(&[]), "late", JsValue::UNDEFINED))).await,
        "Closed"
    );
    assert_eq!(code(ob.peek(JsValue::UNDEFINED)).await, "Closed");
    assert_eq!(code(ob.drain(JsValue::UNDEFINED)).await, "Closed");
}

pub async fn mutations_and_metadata_keep_structured_clone_fidelity() {
    let name = setup("fidelity");
    // First context cannot send (its "keep" hangs), so the second reads from IndexedDB.
    let a = open(&name, obj(&[("handlers", hang_as("keep"))])).await;
    let t = obj(&[
        ("handler", "keep".into()),
        ("keys", Array::of1(&"k".into()).into()),
        ("mutations", rich_mutations()),
        ("metadata", rich_mutations()),
    ]);
    let stored = enqueue(&a, t.clone()).await;
    ok(a.close()).await;
    let b = open(&name, JsValue::UNDEFINED).await;
    settled(&b, &stored).await;
    // Sent from the enqueuing context: the snapshot taken at enqueue, not the live object.
    let fresh = enqueue(&b, t.clone()).await;
    js_sys::Reflect::set(&get(&t, "mutations"), &"isoString".into(), &num(1.0)).unwrap();
    settled(&b, &fresh).await;
    let kept = kept_values();
    assert_eq!(kept.length(), 2);
    for k in kept.iter() {
        assert_eq!(check_rich(&get(&k, "mutations")), Vec::<String>::new());
        assert_eq!(check_rich(&get(&k, "metadata")), Vec::<String>::new());
    }
    ok(b.close()).await;
}

pub async fn corrupt_records_move_to_dead_letters_without_stopping_the_drain() {
    let name = setup("corrupt");
    let a = open(&name, obj(&[("handlers", hang_as("ok"))])).await;
    let good = enqueue(&a, tx("ok", keys(&["a"]), "good", JsValue::UNDEFINED)).await;
    let orphan = enqueue(&a, tx("ok", keys(&["b"]), "orphan", JsValue::UNDEFINED)).await;
    ok(a.close()).await;
    let garbage = obj(&[
        ("seq", num(1_000.0)),
        ("id", "garbage".into()),
        ("handler", num(5.0)),
    ]);
    ok(raw_put(&name, "outbox", &garbage, JsValue::UNDEFINED)).await;
    ok(raw_delete(&name, "payloads", &get(&orphan, "id"))).await;
    let b = open(&name, JsValue::UNDEFINED).await;
    // Asked at once: the answer waits for the new leader to read the outbox, the undecodable
    // record far past its first read included.
    let first: Vec<String> = Array::from(&ok(b.dead_letters(JsValue::UNDEFINED)).await)
        .iter()
        .map(|d| get_str(&d, "id"))
        .collect();
    assert!(first.contains(&"garbage#corrupt-1000".into()), "{first:?}");
    settled(&b, &good).await;
    assert_eq!(code(b.settled(get(&orphan, "id"))).await, "Dead");
    let dead = Array::from(&ok(b.dead_letters(JsValue::UNDEFINED)).await);
    let reasons: Vec<(String, String, String)> = dead
        .iter()
        .map(|d| {
            (
                get_str(&d, "id"),
                get_str(&d, "deadReason"),
                get_str(&get(&d, "lastError"), "name"),
            )
        })
        .collect();
    assert!(
        reasons.contains(&(
            "garbage#corrupt-1000".into(),
            "corrupt".into(),
            "DecodeError".into()
        )),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&(
            get_str(&orphan, "id"),
            "corrupt".into(),
            "MissingPayload".into()
        )),
        "{reasons:?}"
    );
    assert_eq!(
        code(b.retry_dead("garbage#corrupt-1000".into())).await,
        "InvalidTransaction"
    );
    assert_eq!(count(&name, "outbox").await, 0.0);
    ok(b.close()).await;
}

pub async fn transactions_for_a_missing_handler_wait_without_spending_attempts() {
    let name = setup("nohandler");
    let a = open(&name, obj(&[("handlers", hang_as("custom"))])).await;
    let info = enqueue(&a, tx("custom", keys(&["a"]), "t", JsValue::UNDEFINED)).await;
    ok(a.close()).await;
    let b = open(&name, JsValue::UNDEFINED).await;
    let report = drain(&b).await;
    assert_eq!(get_num(&report, "remaining"), 1.0);
    assert!(get(&report, "complete").as_bool().unwrap());
    let p = Array::from(&ok(b.peek(JsValue::UNDEFINED)).await).get(0);
    assert_eq!(get_str(&p, "id"), get_str(&info, "id"));
    assert_eq!(get_num(&p, "attempts"), 0.0);
    assert_eq!(count(&name, "dead").await, 0.0);
    ok(b.close()).await;
}

pub async fn close_aborts_handlers_and_keeps_their_records() {
    let name = setup("close");
    let ob = open(&name, JsValue::UNDEFINED).await;
    let info = enqueue(&ob, tx("hang", keys(&["a"]), "t1", JsValue::UNDEFINED)).await;
    wait(20).await;
    assert_eq!(log_lines(), ["hang:t1"]);
    let waiter = ob.settled(get(&info, "id"));
    ok(ob.close()).await;
    assert_eq!(log_lines(), ["hang:t1", "aborted:t1"]);
    assert_eq!(code(waiter).await, "Closed");
    assert_eq!(count(&name, "outbox").await, 1.0);
    assert!(!ob.is_leader());
}

pub async fn notify_online_resets_backoff() {
    let name = setup("online");
    let ob = open(&name, JsValue::UNDEFINED).await;
    let extra = obj(&[("failTimes", num(1.0)), ("retryAfterMs", num(600_000.0))]);
    let info = enqueue(&ob, tx("flaky", keys(&["a"]), "t", extra)).await;
    drain(&ob).await;
    assert_eq!(log_lines().len(), 1);
    ob.notify_online();
    settled(&ob, &info).await;
    assert_eq!(log_lines().len(), 2);
    ok(ob.close()).await;
}

pub async fn drain_reports_and_honours_its_budget() {
    let name = setup("drain");
    let ob = open(&name, JsValue::UNDEFINED).await;
    let events = collect(&ob);
    for i in 0..3 {
        enqueue(
            &ob,
            tx("ok", keys(&[&format!("k{i}")]), "t", JsValue::UNDEFINED),
        )
        .await;
    }
    enqueue(&ob, tx("reject", keys(&["x"]), "r", JsValue::UNDEFINED)).await;
    let report = drain(&ob).await;
    wait(10).await;
    let stats = ok(ob.stats()).await;
    assert_eq!(get_num(&stats, "sent"), 3.0);
    assert_eq!(get_num(&stats, "dead"), 1.0);
    assert_eq!(get_num(&stats, "pending"), 0.0);
    assert_eq!(get_num(&report, "remaining"), 0.0);
    assert!(get(&report, "complete").as_bool().unwrap());
    assert!(event_types(&events).contains(&"drained".to_string()));
    enqueue(&ob, tx("hang", keys(&["h"]), "h", JsValue::UNDEFINED)).await;
    let partial = ok(ob.drain(obj(&[("budgetMs", num(30.0))]))).await;
    assert!(!get(&partial, "complete").as_bool().unwrap());
    assert_eq!(get_num(&partial, "remaining"), 1.0);
    let stats = ok(ob.stats()).await;
    assert_eq!(get_num(&stats, "inFlight"), 1.0);
    ok(ob.close()).await;
}

pub async fn peek_lists_pending_in_order_with_status() {
    let name = setup("peek");
    let ob = open(&name, JsValue::UNDEFINED).await;
    let t1 = enqueue(&ob, tx("hang", keys(&["a"]), "t1", JsValue::UNDEFINED)).await;
    let t2 = enqueue(&ob, tx("ok", keys(&["a"]), "t2", JsValue::UNDEFINED)).await;
    wait(10).await;
    let peeked = Array::from(&ok(ob.peek(JsValue::UNDEFINED)).await);
    assert_eq!(peeked.length(), 2);
    assert_eq!(get_str(&peeked.get(0), "id"), get_str(&t1, "id"));
    assert_eq!(get_str(&peeked.get(0), "status"), "in-flight");
    assert_eq!(get_str(&peeked.get(1), "id"), get_str(&t2, "id"));
    assert_eq!(get_str(&peeked.get(1), "status"), "pending");
    assert_eq!(get_str(&get(&peeked.get(1), "mutations"), "tag"), "t2");
    ok(ob.close()).await;
}

pub async fn settled_and_subscribe_behave() {
    let name = setup("settled");
    let ob = open(&name, JsValue::UNDEFINED).await;
    let events = collect(&ob);
    let info = enqueue(&ob, tx("ok", keys(&["a"]), "t", JsValue::UNDEFINED)).await;
    settled(&ob, &info).await;
    // Already acknowledged: resolves at once with what this context saw.
    let again = settled(&ob, &info).await;
    assert_eq!(get_str(&again, "status"), "acknowledged");
    assert_eq!(get_num(&again, "seq"), get_num(&info, "seq"));
    let unknown = ok(ob.settled("acknowledged-long-ago".into())).await;
    assert_eq!(get_str(&unknown, "status"), "acknowledged");
    let types = event_types(&events);
    for t in ["enqueued", "sending", "sent"] {
        assert!(types.contains(&t.to_string()), "{types:?}");
    }
    let before = events.length();
    let unsubscribe = ob
        .subscribe(js_sys::Function::new_no_args("").into())
        .unwrap();
    unsubscribe.call0(&JsValue::NULL).unwrap();
    unsubscribe.call0(&JsValue::NULL).unwrap();
    let listener_fail = js_sys::Function::new_no_args("throw new Error('listener bug')");
    ob.subscribe(listener_fail.into()).unwrap();
    let t2 = enqueue(&ob, tx("ok", keys(&["a"]), "t2", JsValue::UNDEFINED)).await;
    settled(&ob, &t2).await;
    assert!(
        events.length() > before,
        "a throwing listener stopped the others"
    );
    assert_eq!(
        ob.subscribe(JsValue::from(1))
            .err()
            .map(|e| get_str(&e, "code"))
            .as_deref(),
        Some("InvalidOptions")
    );
    ok(ob.close()).await;
}

pub async fn stale_leader_cannot_acknowledge() {
    let name = setup("stale-ack");
    let ob = open(&name, obj(&[("leaderElection", "none".into())])).await;
    assert!(ob.is_leader());
    let events = collect(&ob);
    enqueue(
        &ob,
        tx("slow", keys(&["a"]), "t1", obj(&[("ms", num(60.0))])),
    )
    .await;
    enqueue(
        &ob,
        tx("slow", keys(&["a"]), "t2", obj(&[("ms", num(1.0))])),
    )
    .await;
    wait(10).await;
    // Another context takes over while t1 is being sent.
    ok(bump_epoch_raw(&name)).await;
    wait(200).await;
    let log = log_lines();
    assert!(log.contains(&"end:t1".to_string()), "{log:?}");
    // The handlers did succeed, but the stale leader could not remove either record (it
    // learns it is stale at its first fenced write, so t2 may already have been sent):
    // both stay for the new leader, which sends them again with the same keys.
    assert_eq!(count(&name, "outbox").await, 2.0);
    assert!(!ob.is_leader());
    assert_eq!(leader_events(&events), ["leader:false"]);
    let calls = log.len();
    wait(100).await;
    assert_eq!(log_lines().len(), calls, "a demoted leader went on sending");
    ok(ob.close()).await;
}

pub async fn stale_leader_cannot_remove() {
    let name = setup("stale-remove");
    let ob = open(&name, obj(&[("leaderElection", "none".into())])).await;
    enqueue(&ob, tx("hang", keys(&["a"]), "t1", JsValue::UNDEFINED)).await;
    let t2 = enqueue(&ob, tx("ok", keys(&["a"]), "t2", JsValue::UNDEFINED)).await;
    ok(bump_epoch_raw(&name)).await;
    let err = JsFuture::from(ob.remove(get(&t2, "id"))).await.unwrap_err();
    assert_eq!(
        get_str(&err, "code"),
        "NotLeader",
        "{}",
        get_str(&err, "message")
    );
    assert_eq!(count(&name, "outbox").await, 2.0);
    assert_eq!(count(&name, "payloads").await, 2.0);
    assert!(!ob.is_leader());
    ok(ob.close()).await;
}

pub async fn broadcast_channel_lease_elects_and_sends() {
    let name = setup("lease");
    let ob = open(
        &name,
        obj(&[("leaderElection", "broadcast-channel".into())]),
    )
    .await;
    let events = collect(&ob);
    // Alone, it claims after one window of silence (its timers run without a window).
    let info = enqueue(&ob, tx("ok", keys(&["a"]), "t", JsValue::UNDEFINED)).await;
    settled(&ob, &info).await;
    assert!(ob.is_leader());
    assert_eq!(leader_events(&events), ["leader:true"]);
    assert_eq!(log_lines(), ["call:t@1"]);
    ok(ob.close()).await;
    assert!(!ob.is_leader());
}

pub async fn expired_transactions_become_dead_letters() {
    let name = setup("expiry");
    let ob = open(&name, obj(&[("maxAgeMs", num(80.0))])).await;
    let events = collect(&ob);
    // The head keeps failing (next try in 10 min); the one behind it waits on its key.
    let extra = obj(&[("retryAfterMs", num(600_000.0))]);
    let head = enqueue(&ob, tx("gated", keys(&["a"]), "head", extra)).await;
    let behind = enqueue(&ob, tx("ok", keys(&["a"]), "behind", JsValue::UNDEFINED)).await;
    drain(&ob).await;
    assert_eq!(count(&name, "dead").await, 0.0);
    wait(100).await;
    // Both are past maxAgeMs: the next drain moves them, the blocked one too.
    drain(&ob).await;
    wait(20).await;
    for t in [&head, &behind] {
        assert_eq!(code(ob.settled(get(t, "id"))).await, "Dead");
    }
    let dead = Array::from(&ok(ob.dead_letters(JsValue::UNDEFINED)).await);
    let reasons: Vec<(String, String)> = dead
        .iter()
        .map(|d| {
            (
                get_str(&d, "deadReason"),
                get_str(&get(&d, "lastError"), "name"),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![("expired".to_string(), "Expired".to_string()); 2]
    );
    assert_eq!(count(&name, "outbox").await, 0.0);
    assert_eq!(
        log_lines(),
        ["call:head@1"],
        "the blocked one was never sent"
    );
    let types = event_types(&events);
    assert_eq!(
        types.iter().filter(|t| *t == "dead").count(),
        2,
        "{types:?}"
    );
    // One enqueued now and sent at once is not affected.
    let fresh = enqueue(&ob, tx("ok", keys(&["b"]), "fresh", JsValue::UNDEFINED)).await;
    settled(&ob, &fresh).await;
    ok(ob.close()).await;
}
