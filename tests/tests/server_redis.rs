//! The REST API end to end over HTTP on 127.0.0.1, with Redis in a container: two server
//! instances on one Redis share the work and answer for each other's tasks; health follows
//! Redis going down and coming back.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xqueue_core::{ManagerConfig, TaskManager};
use xqueue_redis::RedisConfig;
use xqueue_server::{app, handlers, AppState};
use xqueue_tests::redis::{unique_prefix, RedisServer};

/// One server instance: its own task manager over the shared Redis, on its own port.
struct Instance {
    base: String,
    manager: TaskManager,
    server: tokio::task::JoinHandle<()>,
}

impl Instance {
    async fn start(redis: &RedisServer, prefix: &str, name: &str) -> Instance {
        let backend = redis
            .backend_with(RedisConfig::new(redis.url()).key_prefix(prefix))
            .await;
        let manager = TaskManager::new(
            backend.backends(),
            ManagerConfig {
                instance_id: name.to_string(),
                // Small buffers, so that neither instance takes the whole backlog.
                batch_size: 2,
                block_timeout: Duration::from_millis(500),
                ..ManagerConfig::default()
            },
        );
        let limits = xqueue_server::config::ServerConfig::defaults().limit_map();
        handlers::register_builtin(&manager, &limits).unwrap();
        manager.start().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = app(AppState::new(manager.clone()));
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Instance {
            base,
            manager,
            server,
        }
    }

    async fn stop(self) {
        self.server.abort();
        self.manager.shutdown(Duration::from_secs(5)).await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

async fn get(c: &reqwest::Client, url: String) -> (u16, Value) {
    let r = c.get(&url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn submit(c: &reqwest::Client, base: &str, body: Value) -> String {
    let r = c
        .post(format!("{base}/api/v1/tasks"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.unwrap();
    v["task_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_the_work_and_see_each_other() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let a = Instance::start(&redis, &prefix, "server-a").await;
    let b = Instance::start(&redis, &prefix, "server-b").await;
    let c = client();

    let mut ids = Vec::new();
    for i in 0..30 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let body = json!({"type": "email", "payload": {"to": format!("u{i}@example.com"), "duration_ms": 150}});
        ids.push(submit(&c, base, body).await);
    }

    // Both instances answer for every task, wherever it was submitted or run; the `email`
    // limit (5) holds across both.
    let start = Instant::now();
    let mut most_running = 0;
    loop {
        let (_, stats) = get(&c, format!("{}/api/v1/stats", a.base)).await;
        most_running = most_running.max(stats["processing_tasks"].as_u64().unwrap());
        if stats["success_tasks"] == 30 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not all done: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(most_running <= 5, "email limit exceeded: {most_running}");

    let mut workers = BTreeSet::new();
    for (i, id) in ids.iter().enumerate() {
        let other = if i % 2 == 0 { &b.base } else { &a.base };
        let (status, t) = get(&c, format!("{other}/api/v1/tasks/{id}")).await;
        assert_eq!(status, 200, "{t}");
        assert_eq!(t["status"], "success", "{t}");
        assert_eq!(t["attempts"], 1, "ran once: {t}");
        workers.insert(t["worker"].as_str().unwrap().to_string());
    }
    assert_eq!(
        workers,
        BTreeSet::from(["server-a".to_string(), "server-b".to_string()]),
        "both instances ran tasks"
    );

    let (_, wa) = get(&c, format!("{}/api/v1/workers", a.base)).await;
    let (_, wb) = get(&c, format!("{}/api/v1/workers", b.base)).await;
    let processed =
        wa["processed_tasks"].as_u64().unwrap() + wb["processed_tasks"].as_u64().unwrap();
    assert_eq!(processed, 30, "{wa} {wb}");
    assert!(
        wa["uptime"].as_u64().unwrap() > 1_000_000,
        "uptime in ns: {wa}"
    );

    // Both see the group's two consumers.
    let (_, stream) = get(&c, format!("{}/api/v1/stream", b.base)).await;
    let names: BTreeSet<String> = stream["stream_info"]["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains("server-a") && names.contains("server-b"),
        "{stream}"
    );

    // A limit set on one instance is seen by the other.
    let r = c
        .post(format!("{}/api/v1/concurrency", a.base))
        .json(&json!({"task_type": "email", "max_concurrency": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, limits) = get(&c, format!("{}/api/v1/concurrency", b.base)).await;
    assert_eq!(limits["concurrency_limits"]["email"], 2, "{limits}");

    // A task cancelled through one instance never runs on either.
    let delayed = submit(&c, &a.base, json!({"type": "noop", "delay_ms": 1500})).await;
    let r = c
        .post(format!("{}/api/v1/tasks/{delayed}/cancel", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (_, t) = get(&c, format!("{}/api/v1/tasks/{delayed}", a.base)).await;
    assert_eq!(t["status"], "cancelled", "{t}");
    assert_eq!(t["attempts"], 0, "{t}");

    // A task of a type without a limit, submitted to an idle instance, goes straight to one
    // of that instance's workers; the limited `email` tasks above did not.
    let (_, before) = get(&c, format!("{}/api/v1/workers", a.base)).await;
    assert_eq!(before["started_on_submit_tasks"], 0, "{before}");
    let quick = submit(&c, &a.base, json!({"type": "noop"})).await;
    let start = Instant::now();
    let t = loop {
        let (_, t) = get(&c, format!("{}/api/v1/tasks/{quick}", b.base)).await;
        if t["status"] == "success" {
            break t;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{t}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(t["worker"], "server-a", "{t}");
    let (_, after) = get(&c, format!("{}/api/v1/workers", a.base)).await;
    assert_eq!(after["started_on_submit_tasks"], 1, "{after}");
    let metrics = c
        .get(format!("{}/metrics", a.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("xqueue_tasks_started_on_submit_total 1"),
        "{metrics}"
    );

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_redis() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let a = Instance::start(&redis, &prefix, "server-h").await;
    let c = client();
    let (status, h) = get(&c, format!("{}/api/v1/health", a.base)).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["backend"], "redis");

    redis.kill().await;
    let (status, h) = get(&c, format!("{}/api/v1/health", a.base)).await;
    assert_eq!(status, 503, "{h}");
    assert_eq!(h["status"], "unhealthy");
    assert!(h["error"].is_string(), "{h}");
    // Other calls answer a JSON 5xx naming the backend, not a hang or a panic.
    let r = c
        .post(format!("{}/api/v1/tasks", a.base))
        .json(&json!({"type": "noop"}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert!(status == 503 || status == 502, "{status} {v}");
    assert!(v["error"]["code"].is_string(), "{v}");

    redis.restart().await;
    let start = Instant::now();
    loop {
        let (status, h) = get(&c, format!("{}/api/v1/health", a.base)).await;
        if status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still unhealthy: {h}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let id = submit(&c, &a.base, json!({"type": "noop"})).await;
    let start = Instant::now();
    loop {
        let (_, t) = get(&c, format!("{}/api/v1/tasks/{id}", a.base)).await;
        if t["status"] == "success" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.stop().await;
}
