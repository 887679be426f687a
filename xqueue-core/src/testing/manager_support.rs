//! Helpers of the manager-level cases: configurations, set-up, waiting for statuses.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Fixture, Recorder, RecordingHandler};
use crate::config::{Backoff, ManagerConfig};
use crate::handler::HandlerOptions;
use crate::manager::TaskManager;
use crate::task::{NewTask, Task, TaskId, TaskStatus};
use crate::Backends;

/// A test configuration: a group of its own, quick loops.
pub fn test_config(group: &str, instance: &str) -> ManagerConfig {
    ManagerConfig {
        instance_id: instance.into(),
        group: group.into(),
        workers: 10,
        batch_size: 50,
        block_timeout: Duration::from_millis(500),
        scheduler_interval: Duration::from_millis(50),
        retry_backoff: Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        ..ManagerConfig::default()
    }
}

pub(super) fn group() -> String {
    format!("g-{}", uuid::Uuid::new_v4().simple())
}

pub(super) struct Setup {
    pub(super) manager: TaskManager,
    pub(super) recorder: Arc<Recorder>,
}

pub(super) async fn setup(
    backends: Backends,
    config: ManagerConfig,
    types: &[(&str, HandlerOptions)],
    recorder: Option<Arc<Recorder>>,
) -> Setup {
    let recorder = recorder.unwrap_or_default();
    let manager = TaskManager::new(backends, config);
    for (t, opts) in types {
        manager
            .register_handler_with(RecordingHandler::new(t, recorder.clone()), opts.clone())
            .expect("register");
    }
    manager.start().await.expect("start");
    Setup { manager, recorder }
}

/// One manager with one handler type, in a group of its own.
pub(super) async fn single(
    f: &Arc<dyn Fixture>,
    task_type: &str,
    options: HandlerOptions,
) -> Setup {
    setup(
        f.backends().await,
        test_config(&group(), "m1"),
        &[(task_type, options)],
        None,
    )
    .await
}

/// A second manager ("next") in group `g` with handler `task_type`; returns once it has run
/// every one of `tasks` to success.
pub(super) async fn next_instance_runs(
    backends: Backends,
    g: &str,
    task_type: &str,
    tasks: &[Task],
) -> Setup {
    let next = setup(
        backends,
        test_config(g, "next"),
        &[(task_type, opts(None, 3))],
        None,
    )
    .await;
    wait_all_success(&next.manager, tasks, Duration::from_secs(60)).await;
    next
}

pub(super) fn opts(limit: Option<u32>, retries: u32) -> HandlerOptions {
    HandlerOptions {
        max_concurrency: limit,
        max_retries: retries,
        timeout: Some(Duration::from_secs(60)),
    }
}

pub(super) async fn submit_many(m: &TaskManager, t: &str, n: usize, payload: Value) -> Vec<Task> {
    let mut out = Vec::new();
    let batch: Vec<NewTask> = (0..n).map(|_| NewTask::new(t, payload.clone())).collect();
    for chunk in batch.chunks(200) {
        out.extend(m.submit_batch(chunk.to_vec()).await.expect("submit"));
    }
    out
}

pub(super) async fn wait_status(
    m: &TaskManager,
    id: &TaskId,
    status: TaskStatus,
    within: Duration,
) -> Task {
    let until = std::time::Instant::now() + within;
    loop {
        let t = m.get(id).await.expect("get");
        if t.status == status {
            return t;
        }
        assert!(
            std::time::Instant::now() < until,
            "task {id} did not reach {status}: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(super) async fn wait_all_success(m: &TaskManager, tasks: &[Task], within: Duration) {
    let until = std::time::Instant::now() + within;
    let mut left: Vec<&Task> = tasks.iter().collect();
    while !left.is_empty() {
        let mut still = Vec::new();
        for t in left {
            if m.get(&t.id).await.expect("get").status != TaskStatus::Success {
                still.push(t);
            }
        }
        left = still;
        if left.is_empty() {
            break;
        }
        if std::time::Instant::now() >= until {
            let sample = m.get(&left[0].id).await.expect("get");
            panic!(
                "{} of {} tasks did not succeed within {within:?}; e.g. {sample:?}",
                left.len(),
                tasks.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
