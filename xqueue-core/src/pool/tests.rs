//! The pool against a state store that records slowly.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::run::UNRECORDED_MAX;
use crate::error::Result;
use crate::state::{Begin, Completion, StateStore, StatusCounts, Take, Taken};
use crate::task::{NewTask, Task, TaskId, TaskStatus, UnixMillis};
use crate::testing::{test_config, Recorder, RecordingHandler};
use crate::{memory, ManagerConfig, TaskManager};

/// The memory store, except that `complete` waits until the gate opens.
struct Gated {
    inner: Arc<dyn StateStore>,
    open: watch::Receiver<bool>,
}

#[async_trait]
impl StateStore for Gated {
    fn kind(&self) -> &'static str {
        "gated"
    }
    async fn insert(&self, tasks: &[Task]) -> Result<()> {
        self.inner.insert(tasks).await
    }
    async fn insert_published(
        &self,
        tasks: &[Task],
        take: Option<&Take>,
    ) -> Result<Option<Vec<Taken>>> {
        self.inner.insert_published(tasks, take).await
    }
    async fn get(&self, id: &TaskId) -> Result<Option<Task>> {
        self.inner.get(id).await
    }
    async fn list(&self, status: TaskStatus, limit: usize) -> Result<Vec<Task>> {
        self.inner.list(status, limit).await
    }
    async fn counts(&self) -> Result<StatusCounts> {
        self.inner.counts().await
    }
    async fn begin(&self, ids: &[TaskId], worker: &str, now: UnixMillis) -> Result<Vec<Begin>> {
        self.inner.begin(ids, worker, now).await
    }
    async fn complete(&self, completions: &[Completion]) -> Result<()> {
        let mut open = self.open.clone();
        let _ = open.wait_for(|open| *open).await;
        self.inner.complete(completions).await
    }
    async fn unbegin(&self, ids: &[TaskId]) -> Result<()> {
        self.inner.unbegin(ids).await
    }
    async fn claim_due(&self, now: UnixMillis, lease: Duration, limit: usize) -> Result<Vec<Task>> {
        self.inner.claim_due(now, lease, limit).await
    }
    async fn release_due(&self, ids: &[TaskId]) -> Result<()> {
        self.inner.release_due(ids).await
    }
    async fn cancel(&self, id: &TaskId, now: UnixMillis) -> Result<Task> {
        self.inner.cancel(id, now).await
    }
    async fn requeue_failed(&self, ids: Option<&[TaskId]>, now: UnixMillis) -> Result<u64> {
        self.inner.requeue_failed(ids, now).await
    }
    async fn purge_failed(&self, ids: Option<&[TaskId]>) -> Result<u64> {
        self.inner.purge_failed(ids).await
    }
    async fn purge_finished(
        &self,
        status: TaskStatus,
        before: UnixMillis,
        limit: usize,
    ) -> Result<u64> {
        self.inner.purge_finished(status, before, limit).await
    }
}

/// How many handler runs have ended, once at least `least` have and the number has stopped
/// growing for half a second.
async fn settled(recorder: &Recorder, least: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while recorder.finished() < least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of at least {least} tasks ran",
            recorder.finished()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut last = recorder.finished();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = recorder.finished();
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_tasks_wait_for_a_completer_that_falls_behind_then_all_finish() {
    let (gate, open) = watch::channel(false);
    let mut backends = memory::backends();
    backends.state = Arc::new(Gated {
        inner: backends.state.clone(),
        open,
    });
    let config = ManagerConfig {
        start_ahead: 0,
        batch_size: 500,
        ..test_config("g", "i")
    };
    let manager = TaskManager::new(backends, config.clone());
    let recorder = Recorder::new();
    manager
        .register_handler(RecordingHandler::new("quick", recorder.clone()))
        .unwrap();
    let n = 3 * UNRECORDED_MAX;
    for _ in 0..n / 1000 + 1 {
        let batch = (0..1000)
            .map(|_| NewTask::new("quick", serde_json::json!({})))
            .collect();
        manager.submit_batch(batch).await.unwrap();
    }
    let n = (n / 1000 + 1) * 1000;
    manager.start().await.unwrap();

    // Nothing is recorded: the pool stops beginning once UNRECORDED_MAX attempts wait, give
    // or take the begins already on their way (at most 4 of `workers` tasks each).
    let ran = settled(&recorder, UNRECORDED_MAX).await;
    let slack = 4 * config.workers + config.workers;
    assert!(
        ran <= UNRECORDED_MAX + slack,
        "{ran} tasks ran while none could be recorded (at most {UNRECORDED_MAX} + {slack})"
    );

    // Once the store records again, every task runs and is recorded once.
    gate.send_replace(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let counts = manager.backends().state.counts().await.unwrap();
        if counts.success == n as u64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all recorded: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(recorder.finished(), n);
    assert!(recorder.runs().values().all(|&runs| runs == 1));
    manager.shutdown(Duration::from_secs(5)).await;
}
