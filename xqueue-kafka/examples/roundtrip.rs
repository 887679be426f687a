//! Publishes messages to a queue and consumes them with one group member.
//!
//! ```text
//! cargo run -p xqueue-kafka --example roundtrip -- 127.0.0.1:9092 [messages]
//! ```
//! `RUST_LOG=debug` shows the member's subscription and rebalances.

use std::time::{Duration, Instant};

use xqueue_core::{now_millis, Consumer, FetchRequest, Message, QueueBackend, QueueName, TaskId};
use xqueue_kafka::{KafkaBackend, KafkaConfig};

#[tokio::main]
async fn main() -> xqueue_core::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);

    let mut cfg = KafkaConfig::new(bootstrap).topic_prefix(format!("roundtrip{}", now_millis()));
    // Short group timeouts: some brokers finish a join only after the rebalance timeout.
    cfg.session_timeout = Duration::from_secs(6);
    cfg.max_poll_interval = Duration::from_secs(7);
    if let Ok(debug) = std::env::var("KAFKA_DEBUG") {
        cfg = cfg.property("debug", debug);
    }
    let backend = KafkaBackend::connect(cfg).await?;
    let queue = QueueName::raw("roundtrip.normal");
    let messages: Vec<Message> = (0..n)
        .map(|_| Message {
            task_id: TaskId::generate(),
            task_type: "roundtrip".into(),
            priority: 5,
            enqueued_at: now_millis(),
        })
        .collect();
    let start = Instant::now();
    backend.publish(&queue, &messages).await?;
    println!("published {n} in {:?}", start.elapsed());

    let consumer = Consumer::new(format!("roundtrip-{}", now_millis()), "c1");
    let req = FetchRequest {
        consumer: consumer.clone(),
        queues: vec![queue.clone()],
        count: 100,
        block: Duration::from_secs(1),
    };
    let mut done = 0;
    while done < n && start.elapsed() < Duration::from_secs(120) {
        let got = backend.fetch(&req).await?;
        let receipts: Vec<_> = got.iter().map(|d| d.receipt.clone()).collect();
        done += backend.ack(&consumer, &receipts).await? as usize;
        println!("{:?}: {done}/{n} acked", start.elapsed());
    }
    let info = backend.info(&consumer.group, &[queue]).await?;
    println!("{info:#?}");
    backend.leave(&consumer).await?;
    println!("left the group after {:?}", start.elapsed());
    Ok(())
}
