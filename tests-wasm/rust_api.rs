//! The Rust API in a page: async closures as handlers, serde payloads, typed results,
//! events and errors, against real IndexedDB.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use offline_outbox::{
    CapacityLevel, DeadReason, ErrorCode, Event, HandlerContext, HandlerError, HttpRequest, Jitter,
    Outbox, Priority, Status, StorageLostReason, Subscription, Transaction, TransactionInfo,
};
use serde::{Deserialize, Serialize};
use wasm_bindgen_test::wasm_bindgen_test;

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Edit {
    id: u32,
    title: String,
    tags: Vec<String>,
    fields: HashMap<String, f64>,
    done: Option<bool>,
}

fn edit(id: u32) -> Edit {
    Edit {
        id,
        title: format!("item {id}"),
        tags: vec!["a".into(), "b".into()],
        fields: HashMap::from([("weight".to_string(), 1.5)]),
        done: None,
    }
}

fn name(test: &str) -> String {
    format!("rust-api-{test}-{}", js_sys::Math::random())
}

/// What the handler saw: body, idempotency key, keys, attempt, metadata's user.
type Seen = (Edit, String, Vec<String>, u32, String);

#[derive(Debug, PartialEq, Deserialize)]
struct Meta {
    user: String,
}

#[wasm_bindgen_test]
async fn typed_handlers_receive_what_was_enqueued() {
    let seen: Rc<RefCell<Vec<Seen>>> = Default::default();
    let log = seen.clone();
    let outbox = Outbox::builder(&name("typed"))
        .handler("save", move |ctx| {
            let log = log.clone();
            async move {
                let body: Edit = ctx.mutations()?;
                let meta: Meta = ctx.metadata()?;
                log.borrow_mut().push((
                    body,
                    ctx.idempotency_key(),
                    ctx.keys(),
                    ctx.attempt(),
                    meta.user,
                ));
                assert!(!ctx.signal().aborted());
                Ok(())
            }
        })
        .max_concurrency(2)
        .open()
        .await
        .expect("open");
    let tx = Transaction::new("save", ["todo:1", "list:9"], &edit(1))
        .unwrap()
        .metadata(&serde_json_like_meta())
        .unwrap()
        .priority(Priority::High)
        .idempotency_key("key-1");
    let info = outbox.enqueue(tx).await.expect("enqueue");
    assert_eq!(info.status, Status::Pending);
    assert_eq!(info.priority, Priority::High);
    assert_eq!(info.idempotency_key, "key-1");
    assert_eq!(info.mutations_as::<Edit>().unwrap(), edit(1));
    let done = sent_here(&outbox, &info.id).await;
    assert_eq!(done.attempts, 0);
    assert_eq!(done.handler, "save");
    assert!(done.mutations.is_undefined(), "payloads are not kept");
    // Unknown here: acknowledged transactions leave no record.
    assert!(outbox.settled("no-such-id").await.unwrap().is_none());
    let seen = seen.borrow().clone();
    assert_eq!(seen.len(), 1);
    let (body, key, keys, attempt, user) = &seen[0];
    assert_eq!(body, &edit(1));
    assert_eq!(key, "key-1");
    assert_eq!(keys, &["todo:1".to_string(), "list:9".to_string()]);
    assert_eq!(*attempt, 1);
    assert_eq!(user, "ana");
    let stats = outbox.stats().await.unwrap();
    assert_eq!((stats.pending, stats.sent, stats.dead), (0, 1, 0));
    assert!(stats.is_leader);
    outbox.close().await;
}

fn serde_json_like_meta() -> HashMap<&'static str, &'static str> {
    HashMap::from([("user", "ana")])
}

/// Enqueues `mutations` for `handler` on `key` alone; the info once it is durable.
async fn enqueue_on<M: Serialize + ?Sized>(
    outbox: &Outbox,
    handler: &str,
    key: &str,
    mutations: &M,
) -> TransactionInfo {
    outbox
        .enqueue(Transaction::new(handler, [key], mutations).unwrap())
        .await
        .unwrap()
}

/// What `settled(id)` gives in the context that sent it: the info, acknowledged.
async fn sent_here(outbox: &Outbox, id: &str) -> TransactionInfo {
    let info = outbox
        .settled(id)
        .await
        .expect("acknowledged")
        .expect("this context's info");
    assert_eq!((info.id.as_str(), info.status), (id, Status::Acknowledged));
    info
}

type Events = Rc<RefCell<Vec<Event>>>;

/// Every event `outbox` emits from now on, until the subscription is dropped.
fn record(outbox: &Outbox) -> (Events, Subscription) {
    let events: Events = Default::default();
    let sink = events.clone();
    let subscription = outbox.subscribe(move |e| sink.borrow_mut().push(e));
    (events, subscription)
}

type Attempt = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), HandlerError>>>>;

/// A handler that asks for a retry after `after` on its first call and acknowledges every
/// later one; `calls` counts them.
fn fails_once(
    calls: Rc<RefCell<u32>>,
    message: &'static str,
    after: Duration,
) -> impl Fn(HandlerContext) -> Attempt {
    move |_ctx| {
        let calls = calls.clone();
        Box::pin(async move {
            *calls.borrow_mut() += 1;
            if *calls.borrow() == 1 {
                Err(HandlerError::retry(message).after(after))
            } else {
                Ok(())
            }
        })
    }
}

#[wasm_bindgen_test]
async fn retry_after_and_events_then_rejection_to_the_dead_letters() {
    let calls = Rc::new(RefCell::new(0u32));
    let outbox = Outbox::builder(&name("errors"))
        .retry(
            Duration::from_secs(60),
            Duration::from_secs(60),
            None,
            Jitter::None,
        )
        // The server's Retry-After replaces the 60 s backoff.
        .handler(
            "flaky",
            fails_once(calls.clone(), "503", Duration::from_millis(30)),
        )
        .handler("refused", |_ctx| async {
            Err(HandlerError::reject("422: invalid title"))
        })
        .open()
        .await
        .unwrap();
    let (events, subscription) = record(&outbox);

    let flaky = enqueue_on(&outbox, "flaky", "k", &1).await;
    let done = sent_here(&outbox, &flaky.id).await;
    assert_eq!(done.attempts, 1, "sent on the second attempt");
    assert_eq!(done.last_error.map(|e| e.message), Some("503".to_string()));
    assert_eq!(*calls.borrow(), 2);
    let retry = events.borrow().iter().find_map(|e| match e {
        Event::Retry {
            id, attempt, error, ..
        } => Some((id.clone(), *attempt, error.message.clone())),
        _ => None,
    });
    assert_eq!(retry, Some((flaky.id.clone(), 1, "503".to_string())));
    assert!(events
        .borrow()
        .iter()
        .any(|e| matches!(e, Event::Sent { id } if *id == flaky.id)));

    let refused = enqueue_on(&outbox, "refused", "k2", &"x").await;
    let err = outbox.settled(&refused.id).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Dead);
    let dead = outbox.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].dead_reason, Some(DeadReason::HandlerRejected));
    assert_eq!(dead[0].status, Status::Dead);
    assert_eq!(
        dead[0].last_error.as_ref().map(|e| e.message.as_str()),
        Some("422: invalid title")
    );
    assert!(events.borrow().iter().any(|e| matches!(
        e,
        Event::Dead {
            reason: DeadReason::HandlerRejected,
            ..
        }
    )));

    drop(subscription);
    let before = events.borrow().len();
    outbox.discard_dead(&refused.id).await.unwrap();
    enqueue_on(&outbox, "flaky", "k", &2).await;
    outbox.drain(None).await.unwrap();
    assert_eq!(
        events.borrow().len(),
        before,
        "no events after the subscription is dropped"
    );
    outbox.close().await;
}

#[wasm_bindgen_test]
async fn an_attempt_past_its_timeout_is_aborted_and_retried() {
    let seen: Rc<RefCell<Vec<(u32, String)>>> = Default::default();
    let log = seen.clone();
    let outbox = Outbox::builder(&name("timeout"))
        .attempt_timeout(Duration::from_millis(100))
        .retry(
            Duration::from_millis(20),
            Duration::from_millis(20),
            None,
            Jitter::None,
        )
        .handler("slow", move |ctx| {
            let log = log.clone();
            async move {
                if ctx.attempt() > 1 {
                    return Ok(());
                }
                // The first attempt waits for its signal, as a fetch given it would.
                let signal = ctx.signal();
                let aborted = js_sys::Promise::new(&mut |resolve, _| {
                    signal.set_onabort(Some(&resolve));
                });
                let _ = wasm_bindgen_futures::JsFuture::from(aborted).await;
                let reason = js_sys::Reflect::get(&signal.reason(), &"name".into()).unwrap();
                log.borrow_mut()
                    .push((ctx.attempt(), reason.as_string().unwrap_or_default()));
                // Too late: the attempt has already failed.
                Err(HandlerError::reject("late"))
            }
        })
        .open()
        .await
        .unwrap();
    let (events, _subscription) = record(&outbox);
    let info = enqueue_on(&outbox, "slow", "k", &1).await;
    outbox
        .settled(&info.id)
        .await
        .expect("sent on the second attempt, the late rejection ignored");
    assert_eq!(*seen.borrow(), [(1, "TimeoutError".to_string())]);
    let retry = events.borrow().iter().find_map(|e| match e {
        Event::Retry { attempt, error, .. } => Some((*attempt, error.name.clone())),
        _ => None,
    });
    assert_eq!(retry, Some((1, "TimeoutError".to_string())));
    assert!(outbox.dead_letters().await.unwrap().is_empty());
    outbox.close().await;

    let err = Outbox::builder(&name("timeout-bad"))
        .attempt_timeout(Duration::from_secs(30 * 24 * 3600))
        .open()
        .await
        .err()
        .expect("past setTimeout's limit");
    assert_eq!(err.code, ErrorCode::InvalidOptions);
}

#[wasm_bindgen_test]
async fn a_handler_attempt_timeout_replaces_the_outbox_one() {
    let outbox = Outbox::builder(&name("timeout-own"))
        .attempt_timeout(Duration::from_millis(50))
        .retry(
            Duration::from_millis(20),
            Duration::from_millis(20),
            None,
            Jitter::None,
        )
        // Before the handler itself: the order does not matter.
        .handler_attempt_timeout("upload", Duration::from_secs(5))
        .handler("upload", |_ctx| async {
            // Past the outbox's limit, within the handler's own.
            sleep(200).await;
            Ok(())
        })
        .open()
        .await
        .unwrap();
    let (events, _subscription) = record(&outbox);
    let info = enqueue_on(&outbox, "upload", "k", &1).await;
    outbox
        .settled(&info.id)
        .await
        .expect("sent on its first attempt");
    assert!(
        !events
            .borrow()
            .iter()
            .any(|e| matches!(e, Event::Retry { .. })),
        "never timed out"
    );
    outbox.close().await;

    let err = Outbox::builder(&name("timeout-own-bad"))
        .handler_attempt_timeout("none", Duration::from_secs(1))
        .open()
        .await
        .err()
        .expect("no handler of that name");
    assert_eq!(err.code, ErrorCode::InvalidOptions);
}

#[wasm_bindgen_test]
async fn typed_errors_for_bad_input_and_a_closed_outbox() {
    let err = Outbox::builder(&name("bad"))
        .max_concurrency(0)
        .open()
        .await
        .err()
        .expect("refused");
    assert_eq!(err.code, ErrorCode::InvalidOptions);

    let outbox = Outbox::builder(&name("bad2"))
        .handler("ok", |_ctx| async { Ok(()) })
        .open()
        .await
        .unwrap();
    let err = outbox
        .enqueue(Transaction::new("nope", ["k"], &1).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownHandler);
    let long = "k".repeat(5000);
    let err = outbox
        .enqueue(Transaction::new("ok", [long], &1).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidTransaction);
    assert!(outbox.peek().await.unwrap().is_empty(), "nothing stored");
    let err = outbox.remove("no-such-id").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    let err = outbox
        .import_json("{\"format\":\"other\"}")
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidBackup);
    let name = outbox.name().to_string();
    outbox.close().await;

    let reopened = Outbox::builder(&name).open().await.unwrap();
    assert!(reopened.peek().await.unwrap().is_empty());
    reopened.close().await;
}

#[wasm_bindgen_test]
async fn peek_drain_and_a_backup_between_two_outboxes() {
    let src = Outbox::builder(&name("backup-src"))
        .handler("later", |_ctx| std::future::pending())
        .open()
        .await
        .unwrap();
    for i in 0..3 {
        enqueue_on(&src, "later", "doc", &edit(i)).await;
    }
    let peek = src.peek().await.unwrap();
    assert_eq!(peek.len(), 3);
    assert_eq!(peek[0].status, Status::InFlight);
    assert_eq!(peek[2].mutations_as::<Edit>().unwrap(), edit(2));
    let backup = src.export_json().await.unwrap();
    src.close().await;

    let got: Rc<RefCell<Vec<u32>>> = Default::default();
    let log = got.clone();
    let dst = Outbox::builder(&name("backup-dst"))
        .handler("later", move |ctx| {
            let log = log.clone();
            async move {
                log.borrow_mut().push(ctx.mutations::<Edit>()?.id);
                Ok(())
            }
        })
        .open()
        .await
        .unwrap();
    let report = dst.import_json(&backup).await.unwrap();
    assert_eq!((report.pending, report.dead, report.skipped), (3, 0, 0));
    // Imported work starts at once; the drain waits for whatever is left of it.
    let drained = dst.drain(Some(Duration::from_secs(10))).await.unwrap();
    assert_eq!(drained.remaining, 0);
    assert_eq!(*got.borrow(), vec![0, 1, 2]);
    assert_eq!(dst.stats().await.unwrap().sent, 3);
    dst.close().await;
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Counter {
    adds: u32,
}

#[wasm_bindgen_test]
async fn batch_handlers_typed_merges_and_the_heads_of_the_lists() {
    let batches: Rc<RefCell<Vec<Vec<u32>>>> = Default::default();
    let log = batches.clone();
    let outbox = Outbox::builder(&name("batch"))
        .retry(
            Duration::from_secs(60),
            Duration::from_secs(60),
            Some(1),
            Jitter::None,
        )
        .batch_handler("bulk", 10, move |batch| {
            let log = log.clone();
            async move {
                let ids: Vec<u32> = batch
                    .iter()
                    .map(|ctx| ctx.mutations::<u32>())
                    .collect::<Result<_, _>>()?;
                log.borrow_mut().push(ids.clone());
                Ok(ids
                    .iter()
                    .map(|&i| {
                        if i == 2 {
                            Err(HandlerError::reject("item 2 is invalid"))
                        } else {
                            Ok(())
                        }
                    })
                    .collect())
            }
        })
        .handler("count", |_ctx| std::future::pending())
        .merge("count", |older: Counter, newer: Counter| Counter {
            adds: older.adds + newer.adds,
        })
        .wifi_preferred(Duration::from_secs(3600), 1 << 20)
        .open()
        .await
        .unwrap();
    // Enqueued together (not awaited one by one), so they are runnable together.
    let writes: Vec<_> = (0..4u32)
        .map(|i| outbox.enqueue(Transaction::new("bulk", [format!("item{i}")], &i).unwrap()))
        .collect();
    let mut infos = Vec::new();
    for w in writes {
        infos.push(w.await.unwrap());
    }
    outbox.drain(None).await.unwrap();
    let sent: Vec<u32> = batches.borrow().iter().flatten().copied().collect();
    assert_eq!(sent.len(), 4);
    assert!(
        batches.borrow().iter().any(|b| b.len() > 1),
        "{:?}",
        batches.borrow()
    );
    let dead = outbox.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, infos[2].id);
    assert_eq!(dead[0].dead_reason, Some(DeadReason::HandlerRejected));

    // Coalescing: the first `count` is in flight (its handler never answers), the second
    // is pending, and the third folds into the second through the typed merge.
    for adds in [1, 2, 5] {
        let tx = Transaction::new("count", ["counter"], &Counter { adds })
            .unwrap()
            .coalesce_key("counter");
        outbox.enqueue(tx).await.unwrap();
    }
    let peek = outbox.peek().await.unwrap();
    let pending: Vec<Counter> = peek
        .iter()
        .filter(|t| t.handler == "count")
        .map(|t| t.mutations_as().unwrap())
        .collect();
    assert_eq!(pending, vec![Counter { adds: 1 }, Counter { adds: 7 }]);
    assert!(peek
        .iter()
        .filter(|t| t.handler == "count")
        .all(|t| t.coalesce_key.as_deref() == Some("counter")));
    assert!(peek
        .iter()
        .filter(|t| t.handler != "count")
        .all(|t| t.coalesce_key.is_none()));
    // The head of each list.
    let first = outbox.peek_first(1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, peek[0].id);
    assert!(outbox.peek_first(0).await.unwrap().is_empty());
    assert_eq!(
        outbox.peek_first(usize::MAX).await.unwrap().len(),
        peek.len()
    );
    assert_eq!(
        outbox.dead_letters_first(5).await.unwrap()[0].id,
        dead[0].id
    );
    assert!(outbox.dead_letters_first(0).await.unwrap().is_empty());
    outbox.close().await;
}

#[wasm_bindgen_test]
async fn compressed_and_encrypted_payloads_reach_the_handler_as_sent() {
    let seen: Rc<RefCell<Vec<Edit>>> = Default::default();
    let log = seen.clone();
    let outbox = Outbox::builder(&name("sealed"))
        .compress(true)
        .encrypt(true)
        .handler("save", move |ctx| {
            let log = log.clone();
            async move {
                log.borrow_mut().push(ctx.mutations()?);
                Ok(())
            }
        })
        .open()
        .await
        .unwrap();
    let mut big = edit(7);
    big.title = "a long title that repeats. ".repeat(100);
    let small = edit(8);
    for e in [&big, &small] {
        let info = enqueue_on(&outbox, "save", "doc", e).await;
        outbox.settled(&info.id).await.unwrap();
    }
    assert_eq!(*seen.borrow(), vec![big, small]);
    outbox.close().await;
}

/// Resolves after `ms` milliseconds.
async fn sleep(ms: u32) {
    let tick = js_sys::Promise::new(&mut |resolve, _| {
        let set_timeout: js_sys::Function =
            js_sys::Reflect::get(&js_sys::global(), &"setTimeout".into())
                .unwrap()
                .into();
        set_timeout
            .call2(&wasm_bindgen::JsValue::NULL, &resolve, &ms.into())
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(tick).await.unwrap();
}

/// Polls `done` every 10 ms until it holds; false after 5 s.
async fn until(done: impl Fn() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        sleep(10).await;
    }
    done()
}

#[wasm_bindgen_test]
async fn every_event_kind_arrives_typed() {
    let db = name("events");
    let outbox = Outbox::builder(&db)
        .handler("ok", |_ctx| async { Ok(()) })
        .handler(
            "flaky",
            fails_once(Default::default(), "busy", Duration::from_millis(10)),
        )
        .handler("refused", |_ctx| async { Err(HandlerError::reject("no")) })
        // Never answers: what comes after it on key `h` waits.
        .handler("hold", |_ctx| std::future::pending())
        .capacity(Some(5), None)
        .open()
        .await
        .unwrap();
    let (events, _subscription) = record(&outbox);

    let ok = enqueue_on(&outbox, "ok", "a", &1).await;
    let flaky = enqueue_on(&outbox, "flaky", "b", &2).await;
    let refused = enqueue_on(&outbox, "refused", "c", &3).await;
    outbox.settled(&ok.id).await.unwrap();
    outbox.settled(&flaky.id).await.unwrap();
    assert!(outbox.settled(&refused.id).await.is_err());

    // Behind the held one on `h`: a fold, a removal, and the count crossing 4 of 5 and 5.
    let hold = || Transaction::new("hold", ["h"], &0).unwrap();
    outbox.enqueue(hold()).await.unwrap();
    let older = outbox.enqueue(hold().coalesce_key("same")).await.unwrap();
    let newer = outbox.enqueue(hold().coalesce_key("same")).await.unwrap();
    let removed = outbox.enqueue(hold()).await.unwrap();
    outbox.remove(&removed.id).await.unwrap();
    for _ in 0..3 {
        outbox.enqueue(hold()).await.unwrap();
    }
    // The held one never finishes: the budget runs out with the five still there.
    let report = outbox
        .drain(Some(Duration::from_millis(200)))
        .await
        .unwrap();
    assert_eq!((report.remaining, report.complete), (5, false));

    let ev = events.borrow().clone();
    let has = |want: &dyn Fn(&Event) -> bool| ev.iter().any(want);
    assert!(has(
        &|e| matches!(e, Event::Enqueued { id, seq } if *id == ok.id && Some(*seq) == ok.seq)
    ));
    assert!(has(
        &|e| matches!(e, Event::Sending { id, attempt: 1 } if *id == ok.id)
    ));
    assert!(has(&|e| matches!(e, Event::Sent { id } if *id == ok.id)));
    assert!(has(
        &|e| matches!(e, Event::Retry { id, attempt: 1, error, next_attempt_at }
        if *id == flaky.id && error.message == "busy" && *next_attempt_at > 0.0)
    ));
    assert!(has(
        &|e| matches!(e, Event::Dead { id, reason: DeadReason::HandlerRejected, error }
        if *id == refused.id && error.message == "no")
    ));
    assert!(has(
        &|e| matches!(e, Event::Coalesced { id, into } if *id == newer.id && *into == older.id)
    ));
    assert!(has(
        &|e| matches!(e, Event::Removed { id } if *id == removed.id)
    ));
    assert!(has(
        &|e| matches!(e, Event::Progress { done, total } if *done >= 1 && total >= done)
    ));
    assert!(has(&|e| matches!(
        e,
        Event::Capacity {
            level: CapacityLevel::Warning,
            count: 4,
            ..
        }
    )));
    assert!(has(
        &|e| matches!(e, Event::Capacity { level: CapacityLevel::Full, count: 5, ratio, .. } if *ratio >= 1.0)
    ));
    assert!(has(&|e| matches!(e, Event::Drained { remaining: 0 })));

    // A second instance waits on the lock and gains it when the first closes.
    let next = Outbox::builder(&db)
        .handler("ok", |_ctx| async { Ok(()) })
        .handler("flaky", |_ctx| async { Ok(()) })
        .handler("refused", |_ctx| async { Ok(()) })
        .handler("hold", |_ctx| std::future::pending())
        .open()
        .await
        .unwrap();
    let (leader, _next_subscription) = record(&next);
    assert!(!next.is_leader());
    outbox.close().await;
    assert!(until(|| leader.borrow().contains(&Event::Leader { is_leader: true })).await);

    // Its database deleted under it: storage lost, with what it knew was waiting.
    js_sys::eval(&format!("indexedDB.deleteDatabase('offline-outbox:{db}')")).unwrap();
    assert!(
        until(|| leader.borrow().iter().any(|e| matches!(
            e,
            Event::StorageLost {
                reason: StorageLostReason::Deleted,
                pending: 5
            }
        )))
        .await,
        "{:?}",
        leader.borrow()
    );
    next.close().await;
}

#[wasm_bindgen_test]
async fn an_error_event_from_the_leader_arrives_typed() {
    // The leader is a JS outbox whose merge throws (a Rust merge cannot fail), on the same
    // database; the Rust outbox follows and hears its events.
    let db = name("error-event");
    let never = js_sys::Function::new_no_args("return new Promise(() => {})");
    let clash = js_sys::Object::new();
    let set = |o: &js_sys::Object, k: &str, v: &wasm_bindgen::JsValue| {
        js_sys::Reflect::set(o, &k.into(), v).unwrap();
    };
    set(&clash, "send", &never);
    let merge = js_sys::Function::new_no_args("throw new TypeError('cannot merge')");
    set(&clash, "merge", &merge);
    let handlers = js_sys::Object::new();
    set(&handlers, "hold", &never);
    set(&handlers, "clash", &clash);
    let options = js_sys::Object::new();
    set(&options, "name", &db.as_str().into());
    set(&options, "handlers", &handlers);
    let leader = offline_outbox::JsOutbox::open(options.into())
        .await
        .unwrap();

    let follower = Outbox::builder(&db)
        .handler("hold", |_ctx| std::future::pending())
        .handler("clash", |_ctx| std::future::pending())
        .open()
        .await
        .unwrap();
    assert!(!follower.is_leader());
    let (events, _subscription) = record(&follower);
    // Behind the held one, the two wait; the second's fold calls the merge, which throws.
    enqueue_on(&follower, "hold", "k", &1).await;
    let clash = || {
        Transaction::new("clash", ["k"], &1)
            .unwrap()
            .coalesce_key("c")
    };
    follower.enqueue(clash()).await.unwrap();
    let newer = follower.enqueue(clash()).await.unwrap();
    let error = Event::Error {
        id: Some(newer.id.clone()),
        error: offline_outbox::ErrorInfo {
            code: ErrorCode::InvalidTransaction,
            message: "merge threw TypeError: cannot merge".into(),
        },
    };
    assert!(
        until(|| events.borrow().contains(&error)).await,
        "{:?}",
        events.borrow()
    );
    follower.close().await;
    wasm_bindgen_futures::JsFuture::from(leader.close())
        .await
        .unwrap();
}

#[wasm_bindgen_test]
async fn a_follower_works_through_the_leader() {
    let db = name("follower");
    let open = || {
        Outbox::builder(&db)
            .handler("ok", |_ctx| async { Ok(()) })
            .handler("hold", |_ctx| std::future::pending())
            .handler("refused", |_ctx| async { Err(HandlerError::reject("no")) })
            .open()
    };
    let leader = open().await.unwrap();
    let follower = open().await.unwrap();
    assert!(leader.is_leader() && !follower.is_leader());
    let (events, _subscription) = record(&follower);

    let ok = enqueue_on(&follower, "ok", "a", &1).await;
    // The leader sent it: it has the info, the follower no record of it.
    assert!(follower.settled(&ok.id).await.unwrap().is_none());
    sent_here(&leader, &ok.id).await;
    let refused = enqueue_on(&follower, "refused", "b", &2).await;
    let err = follower.settled(&refused.id).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Dead);
    let held = enqueue_on(&follower, "hold", "c", &3).await;
    let waiting = enqueue_on(&follower, "hold", "c", &4).await;
    // The follower hears the leader start sending the held one.
    assert!(
        until(|| events
            .borrow()
            .iter()
            .any(|e| matches!(e, Event::Sending { id, .. } if *id == held.id)))
        .await
    );

    let peek = follower.peek().await.unwrap();
    assert_eq!(
        peek.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        vec![held.id.clone(), waiting.id.clone()]
    );
    assert_eq!(peek[0].status, Status::InFlight);
    assert_eq!(peek[1].status, Status::Pending);
    let dead = follower.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].dead_reason, Some(DeadReason::HandlerRejected));

    let stats = follower.stats().await.unwrap();
    assert!(!stats.is_leader);
    assert_eq!((stats.pending, stats.in_flight, stats.dead), (1, 1, 1));
    let report = follower
        .drain(Some(Duration::from_millis(100)))
        .await
        .unwrap();
    assert_eq!((report.remaining, report.complete), (2, false));

    // Removing the one being sent is refused; the one waiting goes.
    assert_eq!(
        follower.remove(&held.id).await.unwrap_err().code,
        ErrorCode::InFlight
    );
    follower.remove(&waiting.id).await.unwrap();
    assert_eq!(
        follower.settled(&waiting.id).await.unwrap_err().code,
        ErrorCode::Removed
    );
    follower.discard_dead(&refused.id).await.unwrap();
    assert!(leader.dead_letters().await.unwrap().is_empty());
    follower.close().await;
    leader.close().await;
}

#[wasm_bindgen_test]
async fn the_builtin_http_handler_takes_typed_requests() {
    let outbox = Outbox::builder(&name("http")).open().await.unwrap();
    // The test server answers its page for `GET /` and 404 for anything else.
    let page = HttpRequest::new("GET", "/").header("X-Test", "1");
    let ok = outbox
        .enqueue(Transaction::http(["a"], page))
        .await
        .unwrap();
    assert_eq!(
        (ok.handler.as_str(), ok.keys.as_slice()),
        ("http", &["a".to_string()][..])
    );
    sent_here(&outbox, &ok.id).await;

    let bytes = js_sys::Uint8Array::from(&[1u8, 2, 3][..]);
    let missing = HttpRequest::new("POST", "/no-such-route").body(bytes);
    let missing = outbox
        .enqueue(Transaction::http(["b"], missing))
        .await
        .unwrap();
    assert_eq!(
        outbox.settled(&missing.id).await.unwrap_err().code,
        ErrorCode::Dead
    );
    let dead = outbox.dead_letters().await.unwrap();
    let error = dead[0].last_error.as_ref().unwrap();
    assert_eq!(error.name, "HttpError");
    assert!(error.message.starts_with("HTTP 404"), "{}", error.message);

    // What fetch would refuse is refused at enqueue, and nothing is stored.
    for (request, why) in [
        (
            HttpRequest::new("GET", "/").body("x"),
            "a GET or HEAD request cannot have a body",
        ),
        (
            HttpRequest::new("POST", "/").header("bad name", "x"),
            "http headers are not valid",
        ),
        (
            HttpRequest::new("PO ST", "/"),
            "http method must be an HTTP token",
        ),
        (
            HttpRequest::new("POST", "ftp://example.test/x"),
            "is not http or https",
        ),
    ] {
        let err = outbox
            .enqueue(Transaction::http(["c"], request))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidTransaction);
        assert!(err.message.contains(why), "{}", err.message);
    }
    let stats = outbox.stats().await.unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 1));
    outbox.close().await;
}
