//! Kafka's own form of the queue guarantees: offsets committed only over a contiguous prefix,
//! redelivery on rebalance after a member vanishes, no loss across members, nack.
#![cfg(feature = "kafka")]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xqueue_core::{
    now_millis, Consumer, Delivery, FetchRequest, Message, QueueBackend, QueueName, Receipt, TaskId,
};
use xqueue_kafka::KafkaBackend;
use xqueue_tests::kafka::{init_tracing, unique_group, KafkaBroker};

fn messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|_| Message {
            task_id: TaskId::generate(),
            task_type: "kt".into(),
            priority: 5,
            enqueued_at: now_millis(),
        })
        .collect()
}

fn req(c: &Consumer, queue: &QueueName, count: usize, block: Duration) -> FetchRequest {
    FetchRequest {
        consumer: c.clone(),
        queues: vec![queue.clone()],
        count,
        block,
    }
}

fn receipts(ds: &[Delivery]) -> Vec<Receipt> {
    ds.iter().map(|d| d.receipt.clone()).collect()
}

/// The offset in a receipt tag `partition:offset`.
fn offset(d: &Delivery) -> i64 {
    d.receipt.tag.split_once(':').unwrap().1.parse().unwrap()
}

/// Fetches until `want` deliveries arrived or `within` passed.
async fn fetch_n(
    b: &dyn QueueBackend,
    c: &Consumer,
    queue: &QueueName,
    want: usize,
    within: Duration,
) -> Vec<Delivery> {
    let until = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < until {
        let r = req(c, queue, want - got.len(), Duration::from_millis(300));
        got.extend(b.fetch(&r).await.expect("fetch"));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn out_of_order_acks_commit_only_the_contiguous_prefix() {
    init_tracing();
    let Some(broker) = KafkaBroker::start().await else {
        return;
    };
    let cfg = broker.config().partitions(1);
    let queue = QueueName::raw("prefix.normal");
    let group = unique_group("prefix");
    let first = KafkaBackend::connect(cfg.clone()).await.expect("connect");
    let sent = messages(10);
    first.publish(&queue, &sent).await.expect("publish");

    let a = Consumer::new(&group, "a");
    let mut got = fetch_n(&first, &a, &queue, 10, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 10);
    got.sort_by_key(offset);
    assert_eq!(
        got.iter().map(offset).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>(),
        "one partition: offsets 0..10 in order"
    );
    // Complete 0, 1, 2, then 5, 6 and 9: the first gap is at 3.
    let done: Vec<Delivery> = [0, 1, 2, 5, 6, 9].iter().map(|i| got[*i].clone()).collect();
    assert_eq!(first.ack(&a, &receipts(&done)).await.expect("ack"), 6);
    assert_eq!(
        first.ack(&a, &receipts(&done)).await.expect("ack"),
        0,
        "acking again counts 0"
    );
    first.leave(&a).await.expect("leave");
    drop(first);

    // A new process, a new member: it resumes at the first gap.
    let second = KafkaBackend::connect(cfg).await.expect("connect");
    let b = Consumer::new(&group, "b");
    let again = fetch_n(&second, &b, &queue, 7, Duration::from_secs(60)).await;
    let offsets: BTreeSet<i64> = again.iter().map(offset).collect();
    assert_eq!(
        offsets,
        (3..10).collect(),
        "everything from the first un-acked offset comes back, nothing before it"
    );
    for i in [3, 4, 7, 8] {
        assert!(
            again.iter().any(|d| d.message == got[i].message),
            "un-acked message at offset {i} redelivered"
        );
    }
    let extra = second
        .fetch(&req(&b, &queue, 10, Duration::from_millis(500)))
        .await
        .expect("fetch");
    assert!(extra.is_empty(), "nothing else is redelivered: {extra:?}");
    assert_eq!(second.ack(&b, &receipts(&again)).await.expect("ack"), 7);
    second.leave(&b).await.expect("leave");
}

/// Environment of the child process that plays the member killed with SIGKILL.
const CHILD_BOOTSTRAP: &str = "XQUEUE_KAFKA_CHILD_BOOTSTRAP";
const CHILD_PREFIX: &str = "XQUEUE_KAFKA_CHILD_PREFIX";
const CHILD_GROUP: &str = "XQUEUE_KAFKA_CHILD_GROUP";

/// Not a test by itself: the doomed member of
/// `killed_member_tasks_are_redelivered_to_the_survivor`, run in a child process so that it
/// can die by SIGKILL (no commit, no LeaveGroup). Without the child environment it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_member() {
    let (Ok(bootstrap), Ok(prefix), Ok(group)) = (
        std::env::var(CHILD_BOOTSTRAP),
        std::env::var(CHILD_PREFIX),
        std::env::var(CHILD_GROUP),
    ) else {
        return;
    };
    let cfg = xqueue_tests::kafka::test_config(&bootstrap).topic_prefix(prefix);
    let backend = KafkaBackend::connect(cfg).await.expect("connect");
    let queue = QueueName::raw("crash.normal");
    let c = Consumer::new(&group, "doomed");
    let taken = fetch_n(&backend, &c, &queue, 40, Duration::from_secs(90)).await;
    assert_eq!(taken.len(), 40);
    let (finished, held) = taken.split_at(10);
    assert_eq!(backend.ack(&c, &receipts(finished)).await.expect("ack"), 10);
    for d in finished {
        println!("ACKED {}", d.message.task_id);
    }
    for d in held {
        println!("HELD {}", d.message.task_id);
    }
    // Let an auto-commit carry the acked prefix, then wait to be killed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("READY");
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_member_tasks_are_redelivered_to_the_survivor() {
    use std::io::{BufRead, BufReader};
    init_tracing();
    let Some(broker) = KafkaBroker::start().await else {
        return;
    };
    let cfg = broker.config();
    let queue = QueueName::raw("crash.normal");
    let group = unique_group("crash");
    let survivor = KafkaBackend::connect(cfg.clone()).await.expect("connect");
    survivor
        .publish(&queue, &messages(40))
        .await
        .expect("publish");

    // The doomed member runs in a child process: it takes all 40 tasks, finishes 10 and is
    // killed with SIGKILL while it holds the other 30.
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "child_process_member",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_BOOTSTRAP, broker.bootstrap())
        .env(CHILD_PREFIX, &cfg.topic_prefix)
        .env(CHILD_GROUP, &group)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawning the doomed member");
    let stdout = child.stdout.take().expect("child stdout");
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("child output");
            let ready = line == "READY";
            lines.push(line);
            if ready {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(Duration::from_secs(120), lines)
        .await
        .expect("the doomed member took its tasks in time")
        .expect("reading the child");
    child.kill().expect("SIGKILL the doomed member");
    let _ = child.wait();
    assert_eq!(lines.last().map(String::as_str), Some("READY"), "{lines:?}");
    let held: HashSet<String> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("HELD "))
        .map(str::to_string)
        .collect();
    assert_eq!(held.len(), 30);

    // The survivor gets the group's partitions once the dead member's session expires and
    // resumes from the committed offsets: everything held comes back.
    let s = Consumer::new(&group, "survivor");
    let mut seen: HashSet<String> = HashSet::new();
    let until = Instant::now() + Duration::from_secs(90);
    while !held.is_subset(&seen) && Instant::now() < until {
        let got = survivor
            .fetch(&req(&s, &queue, 50, Duration::from_millis(300)))
            .await
            .expect("fetch");
        survivor.ack(&s, &receipts(&got)).await.expect("ack");
        seen.extend(got.into_iter().map(|d| d.message.task_id.to_string()));
    }
    let missing = held.difference(&seen).count();
    assert_eq!(
        missing, 0,
        "{missing} tasks held by the killed member never came back"
    );
    survivor.leave(&s).await.expect("leave");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_tasks_across_two_members_none_lost() {
    init_tracing();
    let Some(broker) = KafkaBroker::start().await else {
        return;
    };
    let mut cfg = broker.config();
    cfg.partitions = 6;
    let queue = QueueName::raw("tenk.normal");
    let group = unique_group("tenk");
    let n = 10_000;
    let sent = messages(n);
    let publisher = KafkaBackend::connect(cfg.clone()).await.expect("connect");
    for chunk in sent.chunks(1000) {
        publisher.publish(&queue, chunk).await.expect("publish");
    }
    let want: HashSet<TaskId> = sent.iter().map(|m| m.task_id.clone()).collect();

    // Two processes; the second joins while the first is busy, so partitions move mid-run.
    let acked: Arc<std::sync::Mutex<HashMap<TaskId, usize>>> = Arc::default();
    let mut members = Vec::new();
    for (i, delay) in [(0, 0u64), (1, 1500)] {
        let backend = KafkaBackend::connect(cfg.clone()).await.expect("connect");
        let queue = queue.clone();
        let group = group.clone();
        let acked = acked.clone();
        let total = want.len();
        members.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let c = Consumer::new(&group, format!("m{i}"));
            let until = Instant::now() + Duration::from_secs(150);
            while Instant::now() < until {
                if acked.lock().unwrap().len() >= total {
                    break;
                }
                let got = backend
                    .fetch(&req(&c, &queue, 200, Duration::from_millis(300)))
                    .await
                    .expect("fetch");
                // Complete in reverse order, as parallel workers would.
                for d in got.iter().rev() {
                    backend
                        .ack(&c, std::slice::from_ref(&d.receipt))
                        .await
                        .expect("ack");
                    *acked
                        .lock()
                        .unwrap()
                        .entry(d.message.task_id.clone())
                        .or_default() += 1;
                }
            }
            backend.leave(&c).await.expect("leave");
        }));
    }
    for m in members {
        m.await.expect("member");
    }
    let acked = acked.lock().unwrap();
    let missing = want.iter().filter(|id| !acked.contains_key(*id)).count();
    assert_eq!(missing, 0, "{missing} of {n} tasks were never delivered");
    assert!(acked.len() >= n);
    let dups = acked.values().filter(|c| **c > 1).count();
    eprintln!("10k: {dups} tasks delivered more than once (at-least-once)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nack_redelivers_without_blocking_the_partition() {
    init_tracing();
    let Some(broker) = KafkaBroker::start().await else {
        return;
    };
    let backend = broker.backend().await;
    let queue = QueueName::raw("nack.normal");
    let c = Consumer::new(unique_group("nack"), "c");
    let sent = messages(3);
    backend.publish(&queue, &sent).await.expect("publish");
    let got = fetch_n(&backend, &c, &queue, 3, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 3);
    backend.nack(&c, &receipts(&got[..1])).await.expect("nack");
    assert_eq!(
        backend.ack(&c, &receipts(&got[..1])).await.expect("ack"),
        0,
        "a nacked delivery is no longer pending"
    );
    assert_eq!(backend.ack(&c, &receipts(&got[1..])).await.expect("ack"), 2);
    let again = fetch_n(&backend, &c, &queue, 1, Duration::from_secs(30)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message.task_id, got[0].message.task_id);
    assert_ne!(
        again[0].receipt, got[0].receipt,
        "a new copy at a new offset"
    );
    assert_eq!(again[0].delivery_count, 1, "Kafka cannot count deliveries");
    assert_eq!(backend.ack(&c, &receipts(&again)).await.expect("ack"), 1);

    // All done: the group's committed offsets reach the end of every partition.
    let committed = xqueue_core::testing::eventually(Duration::from_secs(10), || {
        let backend = backend.clone();
        let queue = queue.clone();
        let group = c.group.clone();
        async move {
            let info = backend.info(&group, &[queue]).await.expect("info");
            info[0].partitions.iter().all(|p| p.lag == 0) && info[0].pending == 0
        }
    })
    .await;
    assert!(committed, "every partition committed to its end");
    let info = backend.info(&c.group, &[queue]).await.expect("info");
    assert_eq!(info[0].length, 4, "three published plus one republished");
    assert_eq!(info[0].waiting, 0);
    assert!(info[0].consumers.iter().any(|x| x.name == "c"), "{info:?}");
    backend.leave(&c).await.expect("leave");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_does_not_stall_another() {
    init_tracing();
    let Some(broker) = KafkaBroker::start().await else {
        return;
    };
    let mut cfg = broker.config();
    cfg.buffer_per_queue = 20;
    let backend = KafkaBackend::connect(cfg).await.expect("connect");
    let (busy, quiet) = (
        QueueName::raw("busy.normal"),
        QueueName::raw("quiet.normal"),
    );
    let c = Consumer::new(unique_group("pause"), "c");
    backend
        .publish(&busy, &messages(500))
        .await
        .expect("publish");
    // One fetcher per queue under one consumer, as the worker pool runs them.
    let first = fetch_n(&backend, &c, &busy, 1, Duration::from_secs(60)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(backend.ack(&c, &receipts(&first)).await.expect("ack"), 1);
    backend
        .publish(&quiet, &messages(5))
        .await
        .expect("publish");
    let got = fetch_n(&backend, &c, &quiet, 5, Duration::from_secs(60)).await;
    assert_eq!(
        got.len(),
        5,
        "the quiet queue is served while the busy one is full"
    );
    // Draining the busy queue resumes it.
    let mut seen: HashSet<TaskId> = first.into_iter().map(|d| d.message.task_id).collect();
    let until = Instant::now() + Duration::from_secs(60);
    while seen.len() < 500 && Instant::now() < until {
        let got = backend
            .fetch(&req(&c, &busy, 50, Duration::from_millis(300)))
            .await
            .expect("fetch");
        backend.ack(&c, &receipts(&got)).await.expect("ack");
        seen.extend(got.into_iter().map(|d| d.message.task_id));
    }
    assert_eq!(seen.len(), 500);
    backend.leave(&c).await.expect("leave");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn info_reports_partitions_lag_and_this_process_pending() {
    init_tracing();
    let Some(broker) = KafkaBroker::start().await else {
        return;
    };
    let backend = KafkaBackend::connect(broker.config().partitions(1))
        .await
        .expect("connect");
    let queue = QueueName::raw("info.normal");
    let c = Consumer::new(unique_group("info"), "c");
    let before = backend
        .info(&c.group, std::slice::from_ref(&queue))
        .await
        .expect("info");
    assert_eq!(before[0].length, 0, "a queue never published to is empty");
    // One message per publish: each is its own record batch.
    for m in messages(10) {
        backend.publish(&queue, &[m]).await.expect("publish");
    }
    let got = fetch_n(&backend, &c, &queue, 4, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 4);
    assert_eq!(backend.ack(&c, &receipts(&got[..1])).await.expect("ack"), 1);
    let info = &backend
        .info(&c.group, std::slice::from_ref(&queue))
        .await
        .expect("info")[0];
    assert_eq!(info.queue, "info.normal");
    assert_eq!(info.length, 10, "{info:?}");
    assert_eq!(info.pending, 3, "delivered and not acked: {info:?}");
    assert_eq!(info.waiting, 6, "not yet delivered: {info:?}");
    assert_eq!(info.groups, 1);
    assert_eq!(info.partitions.len(), 1);
    assert_eq!(info.partitions[0].high_watermark, 10);
    let me = info
        .consumers
        .iter()
        .find(|x| x.name == "c")
        .expect("listed");
    assert_eq!(me.pending, 3);

    assert_eq!(backend.ack(&c, &receipts(&got[1..])).await.expect("ack"), 3);
    let committed = xqueue_core::testing::eventually(Duration::from_secs(10), || {
        let backend = backend.clone();
        let queue = queue.clone();
        let group = c.group.clone();
        async move {
            let info = backend.info(&group, &[queue]).await.expect("info");
            info[0].partitions[0].committed == Some(4) && info[0].partitions[0].lag == 6
        }
    })
    .await;
    assert!(committed, "the group commits offset 4: lag 6");
    backend.leave(&c).await.expect("leave");
}
