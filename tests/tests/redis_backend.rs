//! Redis specifics the conformance suite cannot see: lost groups, blocking connections, the
//! limiter across holders, authentication and outages (trimming: `redis_trimming.rs`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use xqueue_core::{
    ConcurrencyLimiter, Consumer, Error, Message, QueueBackend, QueueName, Receipt, StateStore,
    TaskId,
};
use xqueue_redis::{RedisBackend, RedisConfig};
use xqueue_tests::queue::{fetch_req, messages, receipts};
use xqueue_tests::redis::{destroy_group, unique_prefix, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_consumer_group_is_recreated() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let backend = server.backend(&prefix).await;
    let q = QueueName::raw("lost.normal");
    let c = Consumer::new("g", "c");
    let stream = format!("{prefix}:stream:{q}");

    backend.publish(&q, &messages(3)).await.unwrap();
    let got = backend.fetch(&fetch_req(&c, &q, 10, 0)).await.unwrap();
    assert_eq!(got.len(), 3);

    // Redis loses the stream (as after a restart without persistence).
    let mut raw = server.raw().await;
    let _: () = raw.del(&stream).await.unwrap();
    // Acking what was lost is not an error: nothing was pending any more.
    assert_eq!(backend.ack(&c, &receipts(&got)).await.unwrap(), 0);

    raw.del::<_, ()>(&stream).await.unwrap();
    backend.publish(&q, &messages(2)).await.unwrap();
    let again = backend.fetch(&fetch_req(&c, &q, 10, 500)).await.unwrap();
    assert_eq!(again.len(), 2, "fetch after the group was lost");

    // Only the group is destroyed: recreated at id 0, it delivers what the stream holds.
    destroy_group(&mut raw, &stream, "g").await;
    let redelivered = backend.fetch(&fetch_req(&c, &q, 10, 0)).await.unwrap();
    assert_eq!(redelivered.len(), 2);
    assert_eq!(backend.ack(&c, &receipts(&redelivered)).await.unwrap(), 2);

    // Reclaim, nack and touch recover the same way.
    let _: () = raw.del(&stream).await.unwrap();
    let none = backend
        .reclaim(&c, std::slice::from_ref(&q), Duration::ZERO, 10)
        .await
        .unwrap();
    assert!(none.is_empty());
    let _: () = raw.del(&stream).await.unwrap();
    backend.nack(&c, &receipts(&redelivered)).await.unwrap();
    let _: () = raw.del(&stream).await.unwrap();
    backend.touch(&c, &receipts(&redelivered)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blocking_fetches_have_connections_of_their_own() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let backend = server.backend(&unique_prefix()).await;
    let c = Consumer::new("g", "instance-1");

    // Longer than the driver's default response timeout (500 ms): still a clean empty answer.
    let start = Instant::now();
    let q0 = QueueName::raw("idle.normal");
    let got = backend.fetch(&fetch_req(&c, &q0, 10, 1200)).await.unwrap();
    assert!(got.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(1100));

    // Four fetchers under one consumer name block at once; other commands are not stalled.
    let queues: Vec<QueueName> = (0..4)
        .map(|i| QueueName::raw(format!("type{i}.normal")))
        .collect();
    let mut fetchers = Vec::new();
    for q in &queues {
        let (backend, c, q) = (backend.clone(), c.clone(), q.clone());
        fetchers.push(tokio::spawn(async move {
            backend.fetch(&fetch_req(&c, &q, 10, 5000)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quick = Instant::now();
    let counts = backend.counts().await.unwrap();
    assert_eq!(counts.pending, 0);
    assert!(
        quick.elapsed() < Duration::from_millis(500),
        "a plain command waited behind blocking reads ({:?})",
        quick.elapsed()
    );
    for q in &queues {
        backend.publish(q, &messages(1)).await.unwrap();
    }
    for f in fetchers {
        let got = tokio::time::timeout(Duration::from_secs(2), f)
            .await
            .expect("a blocked fetch did not wake up")
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].delivery_count, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nack_and_reclaim_count_deliveries() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let backend = server.backend(&unique_prefix()).await;
    let q = QueueName::raw("count.normal");
    let a = Consumer::new("g", "a");
    let b = Consumer::new("g", "b");
    backend.publish(&q, &messages(1)).await.unwrap();

    let d1 = backend.fetch(&fetch_req(&a, &q, 1, 0)).await.unwrap();
    assert_eq!(d1[0].delivery_count, 1);
    backend.nack(&a, &receipts(&d1)).await.unwrap();
    let d2 = backend.fetch(&fetch_req(&b, &q, 1, 0)).await.unwrap();
    assert_eq!(d2[0].message, d1[0].message);
    assert_eq!(d2[0].delivery_count, 2);
    let d3 = backend
        .reclaim(&a, std::slice::from_ref(&q), Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(d3.len(), 1);
    assert_eq!(d3[0].delivery_count, 3);
    // The old receipt is gone; the new one is pending once.
    assert_eq!(backend.ack(&a, &receipts(&d1)).await.unwrap(), 0);
    assert_eq!(backend.ack(&a, &receipts(&d3)).await.unwrap(), 1);

    // A receipt that is not a stream id is unknown, not an error.
    let bogus = Receipt {
        queue: q.clone(),
        tag: "not-an-id".into(),
    };
    assert_eq!(backend.ack(&a, &[bogus]).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_carry_one_packed_field_and_older_entries_still_deliver() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let backend = server.backend(&prefix).await;
    let q = QueueName::raw("packed.normal");
    let c = Consumer::new("g", "c");
    let stream = format!("{prefix}:stream:{q}");
    let sent = messages(1);
    backend.publish(&q, &sent).await.unwrap();

    // A new entry holds the message as one field.
    let mut raw = server.raw().await;
    let range: redis::streams::StreamRangeReply = raw.xrange_all(&stream).await.unwrap();
    let fields: Vec<&str> = range.ids[0].map.keys().map(String::as_str).collect();
    assert_eq!(fields, ["msg"]);

    // An entry of an earlier version (four fields; a nacked copy's deliveries), and one no
    // version can read.
    let old = TaskId::generate();
    let _: String = raw
        .xadd(
            &stream,
            "*",
            &[
                ("task_id", old.as_str()),
                ("task_type", "t"),
                ("priority", "3"),
                ("enqueued_at", "1700000000000"),
                ("deliveries", "2"),
            ],
        )
        .await
        .unwrap();
    let _: String = raw
        .xadd(&stream, "*", &[("msg", "not|a|message")])
        .await
        .unwrap();

    let got = backend.fetch(&fetch_req(&c, &q, 10, 0)).await.unwrap();
    assert_eq!(got.len(), 2, "the undecodable entry is not delivered");
    assert_eq!((&got[0].message, got[0].delivery_count), (&sent[0], 1));
    let earlier = Message {
        task_id: old,
        task_type: "t".into(),
        priority: 3,
        enqueued_at: 1_700_000_000_000,
    };
    assert_eq!((&got[1].message, got[1].delivery_count), (&earlier, 3));
    // The undecodable entry was acked, so it is not redelivered forever.
    let pending: redis::streams::StreamPendingReply = raw.xpending(&stream, "g").await.unwrap();
    assert_eq!(pending.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn touch_keeps_a_long_task_from_being_reclaimed() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let backend = server.backend(&unique_prefix()).await;
    let q = QueueName::raw("long.normal");
    let a = Consumer::new("g", "a");
    let b = Consumer::new("g", "b");
    backend.publish(&q, &messages(1)).await.unwrap();
    let held = backend.fetch(&fetch_req(&a, &q, 1, 0)).await.unwrap();
    let min_idle = Duration::from_millis(400);

    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        backend.touch(&a, &receipts(&held)).await.unwrap();
        let stolen = backend
            .reclaim(&b, std::slice::from_ref(&q), min_idle, 10)
            .await
            .unwrap();
        assert!(stolen.is_empty(), "a touched delivery was reclaimed");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // B's touch of a delivery it does not hold changes nothing.
    backend.touch(&b, &receipts(&held)).await.unwrap();
    tokio::time::sleep(min_idle + Duration::from_millis(100)).await;
    let taken = backend
        .reclaim(&b, std::slice::from_ref(&q), min_idle, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        taken[0].delivery_count, 2,
        "touch must not count deliveries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn info_reports_the_stream_and_leave_keeps_pending_entries() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let backend = server.backend(&unique_prefix()).await;
    let q = QueueName::raw("info.normal");
    let a = Consumer::new("g", "a");
    let b = Consumer::new("g", "b");

    let before = backend.info("g", std::slice::from_ref(&q)).await.unwrap();
    assert_eq!(before[0].length, 0);

    backend.publish(&q, &messages(5)).await.unwrap();
    let got = backend.fetch(&fetch_req(&a, &q, 2, 0)).await.unwrap();
    backend.fetch(&fetch_req(&b, &q, 1, 0)).await.unwrap();
    let info = &backend.info("g", std::slice::from_ref(&q)).await.unwrap()[0];
    assert_eq!(
        (info.length, info.waiting, info.pending, info.groups),
        (5, 2, 3, 1)
    );
    let mut consumers: Vec<(String, u64)> = info
        .consumers
        .iter()
        .map(|c| (c.name.clone(), c.pending))
        .collect();
    consumers.sort();
    assert_eq!(consumers, [("a".into(), 2), ("b".into(), 1)]);

    // `a` leaves while holding deliveries: it stays a member and its entries stay pending.
    backend.leave(&a).await.unwrap();
    let info = &backend.info("g", std::slice::from_ref(&q)).await.unwrap()[0];
    assert_eq!(info.pending, 3);
    assert_eq!(info.consumers.len(), 2);
    // Once it acked everything, leaving removes it.
    backend.ack(&a, &receipts(&got)).await.unwrap();
    backend.leave(&a).await.unwrap();
    let info = &backend.info("g", std::slice::from_ref(&q)).await.unwrap()[0];
    let names: Vec<&str> = info.consumers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_hold_exactly_across_concurrent_holders() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    const LIMIT: u32 = 7;
    // Several instances (separate connections) acquire for the same type at once.
    let mut limiters = Vec::new();
    for _ in 0..4 {
        limiters.push(server.backend(&prefix).await);
    }
    limiters[0].set_limit("email", LIMIT).await.unwrap();
    assert_eq!(limiters[3].limits().await.unwrap()["email"], LIMIT);

    let running = Arc::new(AtomicI64::new(0));
    let peak = Arc::new(AtomicI64::new(0));
    let mut holders = Vec::new();
    for h in 0..12 {
        let limiter = limiters[h % limiters.len()].clone();
        let (running, peak) = (running.clone(), peak.clone());
        holders.push(tokio::spawn(async move {
            let holder = format!("holder-{h}");
            let mut granted_total = 0;
            for round in 0..25 {
                let got = limiter
                    .acquire("email", &holder, 1 + (round % 3))
                    .await
                    .unwrap();
                if got == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                granted_total += got;
                let now = running.fetch_add(got as i64, Ordering::SeqCst) + got as i64;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(3)).await;
                running.fetch_sub(got as i64, Ordering::SeqCst);
                limiter.release("email", &holder, got).await.unwrap();
            }
            granted_total
        }));
    }
    let mut granted = 0;
    for h in holders {
        granted += h.await.unwrap();
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(granted > 0);
    assert!(
        peak <= LIMIT as i64,
        "{peak} permits held at once, limit {LIMIT}"
    );
    assert_eq!(limiters[1].in_use("email").await.unwrap(), 0);

    // Lowering the limit revokes nothing, grants nothing more until released.
    let l = &limiters[0];
    assert_eq!(l.acquire("email", "x", 10).await.unwrap(), LIMIT);
    l.set_limit("email", 2).await.unwrap();
    assert_eq!(l.acquire("email", "y", 1).await.unwrap(), 0);
    l.release("email", "x", LIMIT - 1).await.unwrap();
    assert_eq!(l.acquire("email", "y", 5).await.unwrap(), 1);
    // Types without a limit grant everything.
    l.clear_limit("email").await.unwrap();
    assert_eq!(l.acquire("email", "z", 50).await.unwrap(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_holder_loses_its_permits() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let config = RedisConfig {
        limiter_lease: Duration::from_millis(400),
        ..RedisConfig::default().key_prefix(&prefix)
    };
    let l = server.backend_with(config).await;
    l.set_limit("report", 3).await.unwrap();
    assert_eq!(l.acquire("report", "dead", 3).await.unwrap(), 3);
    assert_eq!(l.acquire("report", "alive", 1).await.unwrap(), 0);

    // `alive` gets one after `dead`'s lease passes; it keeps it by refreshing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(l.in_use("report").await.unwrap(), 0);
    assert_eq!(l.acquire("report", "alive", 1).await.unwrap(), 1);
    for _ in 0..4 {
        l.refresh("alive", Duration::from_millis(400))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(l.in_use("report").await.unwrap(), 1);
    // A late release of expired permits does not free anyone else's.
    l.release("report", "dead", 3).await.unwrap();
    assert_eq!(l.in_use("report").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_and_acl_user_come_from_the_url() {
    let Some(server) = RedisServer::start_with(&["--requirepass", "s3cret"]).await else {
        return;
    };
    let port = server.url().rsplit(':').next().unwrap().to_string();
    let with_password = format!("redis://:s3cret@127.0.0.1:{port}");
    let backend = RedisBackend::connect(RedisConfig::new(&with_password).key_prefix("auth"))
        .await
        .unwrap();
    let shown = format!("{backend:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    backend.counts().await.unwrap();

    let mut admin = redis::Client::open(with_password.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "worker", "on", ">w0rker", "~*", "&*", "+@all"][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    let acl_url = format!("redis://worker:w0rker@127.0.0.1:{port}");
    let as_user = RedisBackend::connect(RedisConfig::new(&acl_url).key_prefix("auth"))
        .await
        .unwrap();
    as_user.counts().await.unwrap();

    let wrong = format!("redis://worker:nope@127.0.0.1:{port}");
    let err = RedisBackend::connect(RedisConfig::new(&wrong))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_is_unavailable_and_heals_by_itself() {
    let Some(server) = RedisServer::start_with(&["--appendfsync", "always"]).await else {
        return;
    };
    let backend = server.backend(&unique_prefix()).await;
    let q = QueueName::raw("outage.normal");
    let c = Consumer::new("g", "c");
    backend.publish(&q, &messages(3)).await.unwrap();
    let held = backend.fetch(&fetch_req(&c, &q, 1, 0)).await.unwrap();

    server.kill().await;
    let err = backend.publish(&q, &messages(1)).await.unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { .. }),
        "expected Unavailable, got {err}"
    );
    assert!(err.is_retryable());
    let err = backend
        .fetch(&fetch_req(&c, &q, 10, 300))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");

    server.restart().await;
    // The same backend value works again: retry until its connection is back.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match backend.publish(&q, &messages(1)).await {
            Ok(()) => break,
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("backend did not recover: {e}"),
        }
    }
    // Nothing was lost: 2 waiting + 1 new, and the pending one is still pending.
    let rest = backend.fetch(&fetch_req(&c, &q, 10, 1000)).await.unwrap();
    assert_eq!(rest.len(), 3);
    assert_eq!(backend.ack(&c, &receipts(&held)).await.unwrap(), 1);
}

#[tokio::test]
async fn urls_are_checked_and_tls_urls_accepted() {
    // No server needed: a closed port is Unavailable (retryable), a bad URL InvalidInput.
    let port = xqueue_tests::docker::free_port();
    for scheme in ["redis", "rediss"] {
        let config = RedisConfig {
            connect_timeout: Duration::from_millis(500),
            reconnect_max_delay: Duration::from_millis(100),
            ..RedisConfig::new(format!("{scheme}://:pw@127.0.0.1:{port}"))
        };
        let err = RedisBackend::connect(config).await.unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{scheme}: {err}");
        assert!(!err.to_string().contains(":pw@"), "{err}");
    }
    let err = RedisBackend::connect(RedisConfig::new("http://nowhere"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { field: "url", .. }),
        "{err}"
    );
    let err = RedisBackend::connect(RedisConfig::default().max_len(0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "max_len",
                ..
            }
        ),
        "{err}"
    );
}
