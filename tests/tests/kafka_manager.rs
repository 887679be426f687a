//! Two task managers (two "instances") on Kafka, sharing one state store and one limiter.
#![cfg(feature = "kafka")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use xqueue_core::testing::{Recorder, RecordingHandler};
use xqueue_core::{
    memory, Backends, HandlerOptions, ManagerConfig, NewTask, TaskManager, TaskStatus,
};
use xqueue_kafka::KafkaBackend;
use xqueue_tests::kafka::{init_tracing, unique_group, KafkaBroker};

fn options() -> HandlerOptions {
    HandlerOptions {
        max_concurrency: Some(8),
        max_retries: 0,
        timeout: Some(Duration::from_secs(60)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_managers_on_kafka_complete_2000_tasks() {
    init_tracing();
    let Some(broker) = KafkaBroker::start().await else {
        return;
    };
    let cfg = broker.config();
    let state = Arc::new(memory::MemoryStateStore::new());
    let limiter = Arc::new(memory::MemoryLimiter::new());
    let group = unique_group("managers");
    let recorder = Recorder::new();
    let mut managers = Vec::new();
    for name in ["instance-a", "instance-b"] {
        // Each instance has its own Kafka clients, as two processes would.
        let queue = KafkaBackend::connect(cfg.clone()).await.expect("connect");
        let backends = Backends {
            queue: Arc::new(queue),
            state: state.clone(),
            limiter: limiter.clone(),
        };
        let config = ManagerConfig {
            instance_id: name.into(),
            group: group.clone(),
            block_timeout: Duration::from_millis(500),
            ..ManagerConfig::default()
        };
        let manager = TaskManager::new(backends, config);
        for task_type in ["email", "report"] {
            manager
                .register_handler_with(
                    RecordingHandler::new(task_type, recorder.clone()),
                    options(),
                )
                .expect("register");
        }
        manager.start().await.expect("start");
        managers.push(manager);
    }

    let mut tasks = Vec::new();
    for (i, task_type) in ["email", "report"].iter().enumerate() {
        let batch: Vec<NewTask> = (0..1000)
            .map(|n| NewTask::new(*task_type, json!({"sleep_ms": 1})).priority((n % 10) as u8))
            .collect();
        for chunk in batch.chunks(250) {
            tasks.extend(
                managers[i]
                    .submit_batch(chunk.to_vec())
                    .await
                    .expect("submit"),
            );
        }
    }
    assert_eq!(tasks.len(), 2000);

    let until = Instant::now() + Duration::from_secs(150);
    loop {
        let counts = managers[0].stats().await.expect("stats").counts;
        if counts.success >= 2000 {
            break;
        }
        assert!(
            Instant::now() < until,
            "not every task succeeded in time: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for t in &tasks {
        let done = managers[1].get(&t.id).await.expect("get");
        assert_eq!(done.status, TaskStatus::Success, "{done:?}");
    }
    let processed: u64 = managers
        .iter()
        .map(|m| m.worker_stats().processed_tasks)
        .sum();
    assert!(processed >= 2000, "processed {processed}");
    let (a, b) = (
        managers[0].worker_stats().processed_tasks,
        managers[1].worker_stats().processed_tasks,
    );
    eprintln!("instance-a ran {a}, instance-b ran {b}");
    assert!(
        recorder.peak("email") <= 8 && recorder.peak("report") <= 8,
        "the shared limit holds across instances"
    );
    for m in &managers {
        let report = m.shutdown(Duration::from_secs(10)).await;
        assert_eq!(report.cut_off, 0);
    }
}
