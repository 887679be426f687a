//! Several task managers on one Redis, like several server instances: shared work, exact
//! limits, a crashed instance, and a Redis restart in the middle of a run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use xqueue_core::testing::{Recorder, RecordingHandler};
use xqueue_core::{
    Consumer, FetchRequest, HandlerOptions, ManagerConfig, NewTask, QueueName, Task, TaskError,
    TaskHandler, TaskId, TaskManager, TaskStatus,
};
use xqueue_redis::RedisBackend;
use xqueue_tests::redis::{unique_prefix, RedisServer};

fn config(group: &str, instance: &str) -> ManagerConfig {
    ManagerConfig {
        instance_id: instance.into(),
        group: group.into(),
        workers: 10,
        batch_size: 50,
        block_timeout: Duration::from_millis(500),
        scheduler_interval: Duration::from_millis(50),
        ..ManagerConfig::default()
    }
}

fn limited(limit: u32) -> HandlerOptions {
    HandlerOptions {
        max_concurrency: Some(limit),
        ..HandlerOptions::default()
    }
}

/// Polls until every task in `ids` is `success`, or panics after `within`.
async fn wait_all_succeeded(backend: &RedisBackend, ids: &[TaskId], within: Duration) {
    use xqueue_core::StateStore;
    let deadline = Instant::now() + within;
    let mut remaining: Vec<TaskId> = ids.to_vec();
    while !remaining.is_empty() {
        let mut still = Vec::new();
        for id in remaining {
            match backend.get(&id).await {
                Ok(Some(t)) if t.status == TaskStatus::Success => {}
                Ok(Some(t)) if t.status.is_finished() => {
                    panic!("task {id} ended {} ({:?})", t.status, t.last_error)
                }
                _ => still.push(id),
            }
        }
        remaining = still;
        if remaining.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} tasks not finished after {within:?}, e.g. {:?}",
            remaining.len(),
            backend.get(&remaining[0]).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn submit_all(
    managers: &[TaskManager],
    task_type: &str,
    n: usize,
    payload: Value,
) -> Vec<Task> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while out.len() < n {
        let batch: Vec<NewTask> = (0..(n - out.len()).min(250))
            .map(|_| NewTask::new(task_type, payload.clone()))
            .collect();
        let m = &managers[i % managers.len()];
        out.extend(m.submit_batch(batch).await.expect("submit"));
        i += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_managers_run_5000_tasks_once_within_limits() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let recorder = Recorder::new();
    let mut managers = Vec::new();
    for i in 0..3 {
        // Each instance has its own connections, as separate processes would.
        let backend = server.backend(&prefix).await;
        let m = TaskManager::new(backend.backends(), config("workers", &format!("node-{i}")));
        m.register_handler_with(
            RecordingHandler::new("example", recorder.clone()),
            limited(3),
        )
        .unwrap();
        m.register_handler_with(RecordingHandler::new("email", recorder.clone()), limited(5))
            .unwrap();
        m.start().await.unwrap();
        managers.push(m);
    }
    let start = Instant::now();
    let (a, b) = tokio::join!(
        submit_all(&managers, "example", 2500, json!({"sleep_ms": 1})),
        submit_all(&managers, "email", 2500, json!({"sleep_ms": 1})),
    );
    let ids: Vec<TaskId> = a.iter().chain(&b).map(|t| t.id.clone()).collect();
    let probe = server.backend(&prefix).await;
    wait_all_succeeded(&probe, &ids, Duration::from_secs(100)).await;
    eprintln!("5000 tasks on 3 managers in {:?}", start.elapsed());

    let runs = recorder.runs();
    assert_eq!(runs.len(), 5000, "tasks that ran");
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "tasks not run exactly once: {twice:?}");
    let (pe, pm) = (recorder.peak("example"), recorder.peak("email"));
    eprintln!("peak concurrency: example {pe}/3, email {pm}/5");
    assert!(pe <= 3, "example ran {pe} at once, limit 3");
    assert!(pm <= 5, "email ran {pm} at once, limit 5");
    for m in &managers {
        m.shutdown(Duration::from_secs(5)).await;
    }
}

/// Counts runs per task; the doomed instance's handler never finishes.
struct Work {
    hang: bool,
    runs: Arc<Mutex<HashMap<TaskId, usize>>>,
}

#[async_trait]
impl TaskHandler for Work {
    fn task_type(&self) -> &str {
        "work"
    }

    async fn handle(&self, task: &Task) -> Result<Value, TaskError> {
        *self
            .runs
            .lock()
            .unwrap()
            .entry(task.id.clone())
            .or_default() += 1;
        if self.hang {
            std::future::pending::<()>().await;
        }
        Ok(Value::Null)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_instance_loses_no_task() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let doomed_runs = Arc::new(Mutex::new(HashMap::new()));
    let survivor_runs = Arc::new(Mutex::new(HashMap::new()));

    let doomed_backend = server.backend(&prefix).await;
    let mut cfg = config("workers", "doomed");
    cfg.workers = 5;
    let doomed = TaskManager::new(doomed_backend.backends(), cfg);
    doomed
        .register_handler(Arc::new(Work {
            hang: true,
            runs: doomed_runs.clone(),
        }))
        .unwrap();
    let tasks = submit_all(std::slice::from_ref(&doomed), "work", 300, Value::Null).await;
    let ids: Vec<TaskId> = tasks.iter().map(|t| t.id.clone()).collect();

    // A bare consumer takes some messages and vanishes without acking.
    let ghost = Consumer::new("workers", "ghost");
    use xqueue_core::QueueBackend;
    let taken = doomed_backend
        .fetch(&FetchRequest {
            consumer: ghost,
            queues: vec![QueueName::for_task("work", tasks[0].priority)],
            count: 20,
            block: Duration::ZERO,
        })
        .await
        .unwrap();
    assert_eq!(taken.len(), 20);

    // The doomed instance starts 5 tasks (they hang), buffers more, then dies: no shutdown.
    doomed.start().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while doomed.worker_stats().active_workers < 5 {
        assert!(
            Instant::now() < deadline,
            "the doomed instance took no work"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(doomed);
    drop(doomed_backend);

    let mut cfg = config("workers", "survivor");
    cfg.claim_idle = Duration::from_millis(500);
    let survivor = TaskManager::new(server.backend(&prefix).await.backends(), cfg);
    survivor
        .register_handler(Arc::new(Work {
            hang: false,
            runs: survivor_runs.clone(),
        }))
        .unwrap();
    survivor.start().await.unwrap();

    let probe = server.backend(&prefix).await;
    wait_all_succeeded(&probe, &ids, Duration::from_secs(60)).await;
    let runs = survivor_runs.lock().unwrap().clone();
    for id in &ids {
        assert_eq!(runs.get(id), Some(&1), "task {id} runs on the survivor");
    }
    let doomed_started = doomed_runs.lock().unwrap().len();
    assert!(
        doomed_started >= 5,
        "the doomed instance started {doomed_started}"
    );
    survivor.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restart_mid_run_loses_no_accepted_task() {
    // Every write is on disk before Redis answers, so a kill loses nothing acknowledged.
    let Some(server) = RedisServer::start_with(&["--appendfsync", "always"]).await else {
        return;
    };
    let prefix = unique_prefix();
    let recorder = Recorder::new();
    let mut managers = Vec::new();
    for i in 0..2 {
        let mut cfg = config("workers", &format!("node-{i}"));
        cfg.claim_idle = Duration::from_secs(2);
        let m = TaskManager::new(server.backend(&prefix).await.backends(), cfg);
        m.register_handler_with(RecordingHandler::new("job", recorder.clone()), limited(8))
            .unwrap();
        m.start().await.unwrap();
        managers.push(m);
    }
    let payload = json!({"sleep_ms": 20});
    let mut accepted: Vec<TaskId> = submit_all(&managers, "job", 400, payload.clone())
        .await
        .into_iter()
        .map(|t| t.id)
        .collect();

    // Mid-run: some finished, many still waiting or running.
    let deadline = Instant::now() + Duration::from_secs(30);
    while recorder.finished() < 50 {
        assert!(Instant::now() < deadline, "no progress before the restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = managers[0]
        .submit(NewTask::new("job", payload.clone()))
        .await;
    assert!(refused.is_err(), "a submit while Redis is down must fail");
    server.restart().await;

    // The same managers (no restart of the application) accept and finish new work.
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepted.len() < 800 {
        match managers[1]
            .submit(NewTask::new("job", payload.clone()))
            .await
        {
            Ok(t) => accepted.push(t.id),
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("submit after the restart: {e}"),
        }
    }
    let probe = server.backend(&prefix).await;
    wait_all_succeeded(&probe, &accepted, Duration::from_secs(90)).await;
    let runs = recorder.runs();
    assert!(accepted.iter().all(|id| runs.contains_key(id)));
    for m in &managers {
        m.shutdown(Duration::from_secs(5)).await;
    }
}
