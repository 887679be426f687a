//! The server end to end with `--backend kafka` (state and limits in memory): 50 tasks
//! submitted over HTTP all succeed.
#![cfg(feature = "kafka")]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xqueue_core::TaskManager;
use xqueue_server::config::ServerConfig;
use xqueue_server::{app, backend, handlers, AppState};
use xqueue_tests::kafka::KafkaBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_tasks_over_http_on_kafka() {
    xqueue_tests::kafka::init_tracing();
    let Some(broker) = KafkaBroker::start().await else {
        return;
    };
    let prefix = format!("srv{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let config = ServerConfig::try_from_args([
        "xqueue-server",
        "--backend",
        "kafka",
        "--kafka-brokers",
        broker.bootstrap(),
        "--kafka-topic-prefix",
        &prefix,
        "--kafka-partitions",
        "2",
        // Short group timeouts: the test broker completes a join after the rebalance timeout.
        "--kafka-session-timeout",
        "6s",
        "--kafka-max-poll-interval",
        "7s",
        "--block-timeout",
        "500ms",
        "--listen",
        "127.0.0.1:0",
    ])
    .unwrap();
    let backends = backend::connect(&config).await.expect("kafka backend");
    assert_eq!(backends.queue.kind(), "kafka");
    assert_eq!(backends.state.kind(), "memory");
    let manager = TaskManager::new(backends, config.manager_config());
    handlers::register_builtin(&manager, &config.limit_map()).unwrap();
    manager.start().await.unwrap();
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app(AppState::from_config(manager.clone(), &config));
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });

    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..50 {
        let (task_type, payload) = match i % 3 {
            0 => ("noop", json!({})),
            1 => (
                "email",
                json!({"to": format!("u{i}@example.com"), "duration_ms": 20}),
            ),
            _ => ("example", json!({"message": i, "duration_ms": 20})),
        };
        let r = c
            .post(format!("{base}/api/v1/tasks"))
            .json(&json!({"type": task_type, "payload": payload, "priority": i % 10}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let v: Value = r.json().await.unwrap();
        ids.push(v["task_id"].as_str().unwrap().to_string());
    }

    let start = Instant::now();
    loop {
        let stats: Value = c
            .get(format!("{base}/api/v1/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if stats["success_tasks"] == 50 {
            assert_eq!(stats["backend"], "kafka");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(100),
            "not all done: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &ids {
        let t: Value = c
            .get(format!("{base}/api/v1/tasks/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(t["status"], "success", "{t}");
    }
    // The stream endpoint shows Kafka's partitions.
    let stream: Value = c
        .get(format!("{base}/api/v1/stream"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let queues = stream["stream_info"]["queues"].as_array().unwrap();
    assert!(
        queues
            .iter()
            .any(|q| !q["partitions"].as_array().unwrap().is_empty()),
        "{stream}"
    );

    server.abort();
    // Dropped, not shut down: on the test broker, `KafkaBackend::leave` (the last step of a
    // graceful shutdown) can block on rdkafka's consumer close, and the runtime would wait
    // for it. A clean stop on Kafka is the backend's own test.
    drop(manager);
}
