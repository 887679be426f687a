//! Cases on the [`QueueBackend`] contract alone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{case, Case, Fixture};
use crate::queue::{Capabilities, Consumer, Delivery, FetchRequest, QueueBackend};
use crate::task::{now_millis, Message, QueueName, TaskId};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case("publish_fetch_ack", None, |f| {
            Box::pin(publish_fetch_ack(f))
        }),
        case("batch_size_respected", None, |f| {
            Box::pin(batch_size_respected(f))
        }),
        case("blocked_fetch_wakes_on_publish", None, |f| {
            Box::pin(blocked_fetch_wakes(f))
        }),
        case("each_message_to_one_consumer", None, |f| {
            Box::pin(one_consumer_each(f))
        }),
        case("multi_queue_fetch_serves_every_queue", None, |f| {
            Box::pin(multi_queue(f))
        }),
        case("nack_redelivers", None, |f| Box::pin(nack_redelivers(f))),
        case(
            "introspection_counts",
            Some(|c: &Capabilities| c.exact_ack),
            |f| Box::pin(introspection(f)),
        ),
        case(
            "idle_deliveries_reclaimed_with_count",
            Some(|c: &Capabilities| c.idle_reclaim),
            |f| Box::pin(idle_reclaim(f)),
        ),
        case(
            "touch_prevents_reclaim",
            Some(|c: &Capabilities| c.touch && c.idle_reclaim),
            |f| Box::pin(touch_prevents_reclaim(f)),
        ),
        case("vanished_consumer_redelivered", None, |f| {
            Box::pin(vanished_consumer(f))
        }),
        case("no_loss_10k_10_consumers", None, |f| {
            Box::pin(no_loss_10k(f))
        }),
    ]
}

fn q(name: &str) -> QueueName {
    QueueName::raw(format!("{name}.normal"))
}

fn messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|_| Message {
            task_id: TaskId::generate(),
            task_type: "conf".into(),
            priority: 5,
            enqueued_at: now_millis(),
        })
        .collect()
}

fn req(c: &Consumer, queues: &[QueueName], count: usize, block_ms: u64) -> FetchRequest {
    FetchRequest {
        consumer: c.clone(),
        queues: queues.to_vec(),
        count,
        block: Duration::from_millis(block_ms),
    }
}

/// Fetches until `want` deliveries arrived or `within` passed.
async fn fetch_n(
    b: &Arc<dyn QueueBackend>,
    c: &Consumer,
    queues: &[QueueName],
    want: usize,
    within: Duration,
) -> Vec<Delivery> {
    let until = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < until {
        got.extend(
            b.fetch(&req(c, queues, want - got.len(), 200))
                .await
                .expect("fetch"),
        );
    }
    got
}

fn receipts(ds: &[Delivery]) -> Vec<crate::queue::Receipt> {
    ds.iter().map(|d| d.receipt.clone()).collect()
}

async fn publish_fetch_ack(f: Arc<dyn Fixture>) {
    let b = f.backends().await.queue;
    let queue = q("pfa");
    let c = Consumer::new("g", "c1");
    let sent = messages(5);
    b.publish(&queue, &sent).await.expect("publish");
    let got = fetch_n(
        &b,
        &c,
        std::slice::from_ref(&queue),
        5,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(got.len(), 5, "all published messages are delivered");
    let ids: HashSet<_> = got.iter().map(|d| d.message.task_id.clone()).collect();
    assert_eq!(
        ids,
        sent.iter().map(|m| m.task_id.clone()).collect(),
        "the messages published"
    );
    assert!(got.iter().all(|d| d.delivery_count >= 1));
    assert_eq!(
        got[0].message,
        sent.iter()
            .find(|m| m.task_id == got[0].message.task_id)
            .unwrap()
            .clone()
    );
    assert_eq!(
        b.ack(&c, &receipts(&got)).await.expect("ack"),
        5,
        "ack counts pending receipts"
    );
    assert_eq!(
        b.ack(&c, &receipts(&got)).await.expect("re-ack"),
        0,
        "acking again counts 0"
    );
    let again = b.fetch(&req(&c, &[queue], 10, 300)).await.expect("fetch");
    assert!(
        again.is_empty(),
        "acked messages are not delivered again: {again:?}"
    );
}

async fn batch_size_respected(f: Arc<dyn Fixture>) {
    let b = f.backends().await.queue;
    let queue = q("batch");
    let c = Consumer::new("g", "c1");
    b.publish(&queue, &messages(20)).await.expect("publish");
    let mut total = 0;
    let until = Instant::now() + Duration::from_secs(30);
    while total < 20 && Instant::now() < until {
        let got = b
            .fetch(&req(&c, std::slice::from_ref(&queue), 5, 200))
            .await
            .expect("fetch");
        assert!(got.len() <= 5, "fetch returned {} with count 5", got.len());
        total += got.len();
        b.ack(&c, &receipts(&got)).await.expect("ack");
    }
    assert_eq!(total, 20);
}

async fn blocked_fetch_wakes(f: Arc<dyn Fixture>) {
    let b = f.backends().await.queue;
    let queue = q("wake");
    let c = Consumer::new("g", "c1");
    // Join the group first (Kafka needs a settled assignment before a blocked fetch means
    // anything), then block on an empty queue.
    b.publish(&queue, &messages(1)).await.expect("publish");
    let warm = fetch_n(
        &b,
        &c,
        std::slice::from_ref(&queue),
        1,
        Duration::from_secs(60),
    )
    .await;
    b.ack(&c, &receipts(&warm)).await.expect("ack");
    let block = Duration::from_secs(10);
    let fetcher = {
        let b = b.clone();
        let c = c.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            let r = FetchRequest {
                consumer: c,
                queues: vec![queue],
                count: 10,
                block,
            };
            let got = b.fetch(&r).await.expect("fetch");
            (got, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let published = Instant::now();
    b.publish(&queue, &messages(1)).await.expect("publish");
    let (got, woke) = fetcher.await.expect("join");
    assert_eq!(got.len(), 1, "the blocked fetch returns the new message");
    let waited = woke.duration_since(published);
    assert!(
        waited < block / 2,
        "a blocked fetch must return on publish, not at its block timeout (took {waited:?})"
    );
}

/// Runs `consumers` members of group `g` that fetch (`count` at a time) and ack until the
/// queue stays empty for a few seconds; returns how often each task id was delivered.
async fn consume_all(
    b: &Arc<dyn QueueBackend>,
    queue: &QueueName,
    consumers: usize,
    count: usize,
) -> HashMap<TaskId, usize> {
    let mut tasks = Vec::new();
    for i in 0..consumers {
        let b = b.clone();
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let c = Consumer::new("g", format!("c{i}"));
            let mut seen = Vec::new();
            let mut idle = 0;
            while idle < 25 {
                let got = b
                    .fetch(&req(&c, std::slice::from_ref(&queue), count, 200))
                    .await
                    .expect("fetch");
                if got.is_empty() {
                    idle += 1;
                    continue;
                }
                idle = 0;
                b.ack(&c, &receipts(&got)).await.expect("ack");
                seen.extend(got.into_iter().map(|d| d.message.task_id));
            }
            seen
        }));
    }
    let mut count: HashMap<TaskId, usize> = HashMap::new();
    for t in tasks {
        for id in t.await.expect("join") {
            *count.entry(id).or_default() += 1;
        }
    }
    count
}

async fn one_consumer_each(f: Arc<dyn Fixture>) {
    let b = f.backends().await.queue;
    let queue = q("one");
    let n = 400;
    b.publish(&queue, &messages(n)).await.expect("publish");
    let count = consume_all(&b, &queue, 4, 16).await;
    assert_eq!(count.len(), n, "every message delivered");
    let dups = count.values().filter(|c| **c > 1).count();
    assert_eq!(dups, 0, "{dups} messages went to more than one consumer");
}

async fn multi_queue(f: Arc<dyn Fixture>) {
    let b = f.backends().await.queue;
    let (qa, qb) = (q("mqa"), q("mqb"));
    b.publish(&qa, &messages(10)).await.expect("publish");
    b.publish(&qb, &messages(10)).await.expect("publish");
    let c = Consumer::new("g", "c1");
    let queues = [qa.clone(), qb.clone()];
    let mut from: HashMap<QueueName, usize> = HashMap::new();
    let until = Instant::now() + Duration::from_secs(60);
    while from.values().sum::<usize>() < 20 && Instant::now() < until {
        let got = b.fetch(&req(&c, &queues, 3, 200)).await.expect("fetch");
        assert!(
            got.iter().filter(|d| d.receipt.queue == qa).count() <= 3
                && got.iter().filter(|d| d.receipt.queue == qb).count() <= 3,
            "count applies per queue"
        );
        let first_round = from.is_empty() && !got.is_empty();
        for d in &got {
            *from.entry(d.receipt.queue.clone()).or_default() += 1;
        }
        if first_round && got.len() >= 4 {
            assert!(
                from.len() == 2,
                "a fetch over two ready queues serves both: {from:?}"
            );
        }
        b.ack(&c, &receipts(&got)).await.expect("ack");
    }
    assert_eq!(from.get(&qa), Some(&10));
    assert_eq!(from.get(&qb), Some(&10));
}

async fn nack_redelivers(f: Arc<dyn Fixture>) {
    let backends = f.backends().await;
    let b = backends.queue;
    let queue = q("nack");
    let c1 = Consumer::new("g", "c1");
    b.publish(&queue, &messages(3)).await.expect("publish");
    let got = fetch_n(
        &b,
        &c1,
        std::slice::from_ref(&queue),
        3,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(got.len(), 3);
    b.nack(&c1, &receipts(&got)).await.expect("nack");
    let again = fetch_n(
        &b,
        &c1,
        std::slice::from_ref(&queue),
        3,
        Duration::from_secs(30),
    )
    .await;
    let ids: HashSet<_> = got.iter().map(|d| &d.message.task_id).collect();
    let ids2: HashSet<_> = again.iter().map(|d| &d.message.task_id).collect();
    assert_eq!(ids, ids2, "nacked messages are delivered again");
    if b.capabilities().delivery_count {
        assert!(
            again.iter().all(|d| d.delivery_count >= 2),
            "redelivery counts: {again:?}"
        );
    }
    b.ack(&c1, &receipts(&again)).await.expect("ack");
}

async fn introspection(f: Arc<dyn Fixture>) {
    let b = f.backends().await.queue;
    let queue = q("info");
    let c = Consumer::new("g", "c1");
    b.publish(&queue, &messages(10)).await.expect("publish");
    let got = fetch_n(
        &b,
        &c,
        std::slice::from_ref(&queue),
        4,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(got.len(), 4);
    b.ack(&c, &receipts(&got[..1])).await.expect("ack");
    let info = b
        .info("g", std::slice::from_ref(&queue))
        .await
        .expect("info");
    let i = &info[0];
    assert_eq!(i.queue, queue.to_string());
    assert_eq!(i.pending, 3, "three delivered and not acked: {i:?}");
    assert_eq!(i.waiting, 6, "six not yet delivered: {i:?}");
    assert!(i.length >= 9, "stored messages: {i:?}");
    assert!(i.groups >= 1);
    let me = i
        .consumers
        .iter()
        .find(|x| x.name == "c1")
        .expect("consumer listed");
    assert_eq!(me.pending, 3);
}

async fn idle_reclaim(f: Arc<dyn Fixture>) {
    let b = f.backends().await.queue;
    let queue = q("reclaim");
    let (dead, alive) = (Consumer::new("g", "dead"), Consumer::new("g", "alive"));
    b.publish(&queue, &messages(5)).await.expect("publish");
    let taken = fetch_n(
        &b,
        &dead,
        std::slice::from_ref(&queue),
        5,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(taken.len(), 5);
    let idle = Duration::from_millis(300);
    let early = b
        .reclaim(&alive, std::slice::from_ref(&queue), idle, 10)
        .await
        .expect("reclaim");
    assert!(early.is_empty(), "nothing is idle yet: {early:?}");
    tokio::time::sleep(idle + Duration::from_millis(100)).await;
    let got = b
        .reclaim(&alive, std::slice::from_ref(&queue), idle, 10)
        .await
        .expect("reclaim");
    assert_eq!(
        got.len(),
        5,
        "the dead consumer's deliveries move to the caller"
    );
    assert!(
        got.iter().all(|d| d.delivery_count == 2),
        "delivery count rises: {got:?}"
    );
    assert_eq!(b.ack(&alive, &receipts(&got)).await.expect("ack"), 5);
    let info = b.info("g", &[queue]).await.expect("info");
    assert_eq!(info[0].pending, 0);
}

async fn touch_prevents_reclaim(f: Arc<dyn Fixture>) {
    let b = f.backends().await.queue;
    let queue = q("touch");
    let (slow, thief) = (Consumer::new("g", "slow"), Consumer::new("g", "thief"));
    b.publish(&queue, &messages(2)).await.expect("publish");
    let held = fetch_n(
        &b,
        &slow,
        std::slice::from_ref(&queue),
        2,
        Duration::from_secs(30),
    )
    .await;
    let idle = Duration::from_millis(400);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        b.touch(&slow, &receipts(&held)).await.expect("touch");
        let stolen = b
            .reclaim(&thief, std::slice::from_ref(&queue), idle, 10)
            .await
            .expect("reclaim");
        assert!(
            stolen.is_empty(),
            "touched deliveries were reclaimed: {stolen:?}"
        );
    }
    assert_eq!(b.ack(&slow, &receipts(&held)).await.expect("ack"), 2);
}

async fn vanished_consumer(f: Arc<dyn Fixture>) {
    let b = f.backends().await.queue;
    let queue = q("vanish");
    let (dead, alive) = (Consumer::new("g", "dead"), Consumer::new("g", "alive"));
    let sent = messages(20);
    b.publish(&queue, &sent).await.expect("publish");
    let taken = fetch_n(
        &b,
        &dead,
        std::slice::from_ref(&queue),
        20,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(taken.len(), 20);
    // The consumer goes away without acking anything.
    b.leave(&dead).await.expect("leave");
    let want: HashSet<TaskId> = sent.iter().map(|m| m.task_id.clone()).collect();
    let mut seen: HashSet<TaskId> = HashSet::new();
    let idle = Duration::from_millis(300);
    let reclaim = b.capabilities().idle_reclaim;
    let until = Instant::now() + Duration::from_secs(90);
    while seen.len() < want.len() && Instant::now() < until {
        let mut got = b
            .fetch(&req(&alive, std::slice::from_ref(&queue), 50, 200))
            .await
            .expect("fetch");
        if reclaim {
            got.extend(
                b.reclaim(&alive, std::slice::from_ref(&queue), idle, 50)
                    .await
                    .expect("reclaim"),
            );
        }
        b.ack(&alive, &receipts(&got)).await.expect("ack");
        seen.extend(got.into_iter().map(|d| d.message.task_id));
    }
    let missing = want.difference(&seen).count();
    assert_eq!(
        missing, 0,
        "{missing} of the vanished consumer's messages never came back"
    );
}

async fn no_loss_10k(f: Arc<dyn Fixture>) {
    let b = f.backends().await.queue;
    let queue = q("tenk");
    let n = 10_000;
    let sent = messages(n);
    for chunk in sent.chunks(500) {
        b.publish(&queue, chunk).await.expect("publish");
    }
    let count = consume_all(&b, &queue, 10, 64).await;
    let lost = sent
        .iter()
        .filter(|m| !count.contains_key(&m.task_id))
        .count();
    assert_eq!(lost, 0, "{lost} of {n} messages were never delivered");
    if b.capabilities().exact_ack {
        let dups = count.values().filter(|c| **c > 1).count();
        assert_eq!(
            dups, 0,
            "{dups} messages were delivered twice without any fault"
        );
    }
}
