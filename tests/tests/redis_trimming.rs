//! How the Redis backend trims its streams: never a pending or undelivered entry, only once a
//! stream holds 1,000 entries, and then once per 1,000 added.

use std::time::Duration;

use redis::AsyncCommands;
use xqueue_core::{Consumer, Error, QueueBackend, QueueName};
use xqueue_redis::RedisConfig;
use xqueue_tests::queue::{fetch_req, messages, receipts};
use xqueue_tests::redis::{unique_prefix, RedisServer};

async fn xlen(server: &RedisServer, prefix: &str, q: &QueueName) -> u64 {
    let mut raw = server.raw().await;
    raw.xlen(format!("{prefix}:stream:{q}")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trimming_never_drops_pending_or_undelivered_messages() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let backend = server
        .backend_with(RedisConfig::default().key_prefix(&prefix).max_len(10))
        .await;
    let q = QueueName::raw("trim.normal");
    let a = Consumer::new("g", "a");
    let b = Consumer::new("g", "b");

    // Ten undelivered messages fill the queue: nothing more fits, and nothing is dropped.
    backend.publish(&q, &messages(10)).await.unwrap();
    let full = backend.publish(&q, &messages(1)).await.unwrap_err();
    assert!(matches!(full, Error::QueueFull { limit: 10, .. }), "{full}");
    assert!(full.is_retryable());

    // Delivered but pending still counts.
    let first = backend.fetch(&fetch_req(&a, &q, 10, 0)).await.unwrap();
    assert_eq!(first.len(), 10);
    assert!(matches!(
        backend.publish(&q, &messages(1)).await,
        Err(Error::QueueFull { .. })
    ));

    // Ack all but the oldest: there is room again, and the oldest survives every trim.
    let (kept, rest) = first.split_first().unwrap();
    assert_eq!(backend.ack(&a, &receipts(rest)).await.unwrap(), 9);
    for _ in 0..60 {
        backend.publish(&q, &messages(9)).await.unwrap();
        let got = backend.fetch(&fetch_req(&a, &q, 9, 0)).await.unwrap();
        assert_eq!(got.len(), 9);
        assert_eq!(backend.ack(&a, &receipts(&got)).await.unwrap(), 9);
    }
    // The old pending message is still there, whole, and can be taken over.
    let reclaimed = backend
        .reclaim(&b, std::slice::from_ref(&q), Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 1, "the pending message was lost");
    assert_eq!(reclaimed[0].message, kept.message);
    assert_eq!(reclaimed[0].delivery_count, 2);
    assert_eq!(backend.ack(&b, &receipts(&reclaimed)).await.unwrap(), 1);

    // Once everything is acked, trimming keeps the stream short.
    for _ in 0..60 {
        backend.publish(&q, &messages(9)).await.unwrap();
        let got = backend.fetch(&fetch_req(&a, &q, 9, 0)).await.unwrap();
        backend.ack(&a, &receipts(&got)).await.unwrap();
    }
    backend.publish(&q, &messages(1)).await.unwrap();
    let len = xlen(&server, &prefix, &q).await;
    // `MINID ~` removes whole stream nodes (100 entries by default).
    assert!(len <= 10 + 100, "stream length {len} not bounded");
}

/// With room to spare, publish trims only once a stream holds 1,000 entries (fewer commands
/// per submit); acked entries never pile up past that.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acked_entries_are_trimmed_once_a_stream_holds_a_thousand() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let backend = server.backend(&prefix).await;
    let q = QueueName::raw("trim-late.normal");
    let a = Consumer::new("g", "a");
    let mut longest = 0;
    for _ in 0..30 {
        backend.publish(&q, &messages(100)).await.unwrap();
        let got = backend.fetch(&fetch_req(&a, &q, 100, 0)).await.unwrap();
        assert_eq!(got.len(), 100);
        assert_eq!(backend.ack(&a, &receipts(&got)).await.unwrap(), 100);
        longest = longest.max(xlen(&server, &prefix, &q).await);
    }
    // 3,000 published: trimmed at 1,000, in whole nodes of 100 entries.
    assert!(longest >= 1000, "trimmed early: never above {longest}");
    assert!(longest <= 1000 + 100, "acked entries piled up to {longest}");
}

/// How many times Redis has run `command` (an `INFO commandstats` name such as
/// `xinfo|groups`) since it started.
async fn calls(server: &RedisServer, command: &str) -> u64 {
    let mut raw = server.raw().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut raw)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// A backlog (entries no one has fetched yet, so nothing to trim) costs one trim attempt per
/// 1,000 entries added, not one per submit; once the backlog is acked the next attempt
/// shortens the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_is_checked_for_trimming_once_per_thousand_entries() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let backend = server.backend(&prefix).await;
    let q = QueueName::raw("backlog.normal");
    let a = Consumer::new("g", "a");
    // The group exists (the fetch creates it) and has nothing delivered.
    assert!(backend
        .fetch(&fetch_req(&a, &q, 10, 0))
        .await
        .unwrap()
        .is_empty());

    let before = calls(&server, "xinfo|groups").await;
    for _ in 0..2_500 {
        backend.publish(&q, &messages(1)).await.unwrap();
    }
    let trims = calls(&server, "xinfo|groups").await - before;
    // At lengths 1,000 and 2,000 only (every publish used to look: ~1,500 times).
    assert_eq!(trims, 2, "trim attempts for 2,500 one-by-one publishes");
    assert_eq!(xlen(&server, &prefix, &q).await, 2_500);

    let got = backend.fetch(&fetch_req(&a, &q, 2_500, 0)).await.unwrap();
    assert_eq!(got.len(), 2_500);
    assert_eq!(backend.ack(&a, &receipts(&got)).await.unwrap(), 2_500);
    // Lengths 2,500 to 2,999 add without looking; at 3,000 the 2,500 acked entries go, and
    // the 501 undelivered ones stay.
    for _ in 0..500 {
        backend.publish(&q, &messages(1)).await.unwrap();
    }
    assert_eq!(xlen(&server, &prefix, &q).await, 3_000);
    backend.publish(&q, &messages(1)).await.unwrap();
    let len = xlen(&server, &prefix, &q).await;
    // `MINID ~` removes whole stream nodes (100 entries by default).
    assert!(
        (501..=501 + 100).contains(&len),
        "acked backlog not trimmed, or undelivered entries lost: stream length {len}"
    );
    let rest = backend.fetch(&fetch_req(&a, &q, 1_000, 0)).await.unwrap();
    assert_eq!(rest.len(), 501, "undelivered entries lost to the trim");
}
