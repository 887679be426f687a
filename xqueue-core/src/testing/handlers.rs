//! Handlers the conformance cases (and integration tests) run: they record what happened.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::handler::{TaskError, TaskHandler};
use crate::task::{Task, TaskId};

/// What handlers observed: runs per task, and the most that ran at once per type.
#[derive(Debug, Default)]
pub struct Recorder {
    runs: Mutex<HashMap<TaskId, usize>>,
    ends: Mutex<HashMap<TaskId, usize>>,
    order: Mutex<Vec<TaskId>>,
    running: Mutex<HashMap<String, usize>>,
    peak: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
}

impl Recorder {
    /// A shared, empty recorder.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn enter(&self, task: &Task) {
        *self
            .runs
            .lock()
            .unwrap()
            .entry(task.id.clone())
            .or_default() += 1;
        self.order.lock().unwrap().push(task.id.clone());
        let mut running = self.running.lock().unwrap();
        let n = running.entry(task.task_type.clone()).or_default();
        *n += 1;
        let mut peak = self.peak.lock().unwrap();
        let p = peak.entry(task.task_type.clone()).or_default();
        *p = (*p).max(*n);
    }

    fn exit(&self, task: &Task) {
        *self
            .ends
            .lock()
            .unwrap()
            .entry(task.id.clone())
            .or_default() += 1;
        *self
            .running
            .lock()
            .unwrap()
            .entry(task.task_type.clone())
            .or_default() -= 1;
        self.total.fetch_add(1, Ordering::SeqCst);
    }

    /// Handler runs that ended, over all tasks.
    pub fn finished(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// How many times `id` started.
    pub fn runs_of(&self, id: &TaskId) -> usize {
        self.runs.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    /// Whether `id` has started and every run of it has ended (its outcome may still be on
    /// its way to the state store).
    pub fn has_ended(&self, id: &TaskId) -> bool {
        let runs = self.runs_of(id);
        runs > 0 && self.ends.lock().unwrap().get(id).copied().unwrap_or(0) == runs
    }

    /// Every task that started, with its run count.
    pub fn runs(&self) -> HashMap<TaskId, usize> {
        self.runs.lock().unwrap().clone()
    }

    /// Tasks in the order they started.
    pub fn order(&self) -> Vec<TaskId> {
        self.order.lock().unwrap().clone()
    }

    /// Most handlers of `task_type` that ran at once.
    pub fn peak(&self, task_type: &str) -> usize {
        self.peak
            .lock()
            .unwrap()
            .get(task_type)
            .copied()
            .unwrap_or(0)
    }
}

/// A handler driven by the payload:
/// - `sleep_ms`: sleep that long;
/// - `fail_times`: fail (retryably) while `attempts <= fail_times`;
/// - `fatal`: fail without retry;
/// - `panic`: panic;
/// - `hang`: never finish;
/// - returns `{"task_id": …, "attempt": …}`.
pub struct RecordingHandler {
    task_type: String,
    recorder: Arc<Recorder>,
}

impl RecordingHandler {
    /// A handler of `task_type` recording into `recorder`.
    pub fn new(task_type: &str, recorder: Arc<Recorder>) -> Arc<Self> {
        Arc::new(RecordingHandler {
            task_type: task_type.into(),
            recorder,
        })
    }
}

struct Exit<'a>(&'a Recorder, &'a Task);

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        self.0.exit(self.1);
    }
}

#[async_trait]
impl TaskHandler for RecordingHandler {
    fn task_type(&self) -> &str {
        &self.task_type
    }

    async fn handle(&self, task: &Task) -> Result<Value, TaskError> {
        self.recorder.enter(task);
        let _exit = Exit(&self.recorder, task);
        let p = &task.payload;
        if p["hang"].as_bool() == Some(true) {
            std::future::pending::<()>().await;
        }
        if let Some(ms) = p["sleep_ms"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if p["panic"].as_bool() == Some(true) {
            panic!("handler asked to panic");
        }
        if p["fatal"].as_bool() == Some(true) {
            return Err(TaskError::fatal("fatal by request"));
        }
        if let Some(n) = p["fail_times"].as_u64() {
            if u64::from(task.attempts) <= n {
                return Err(TaskError::retry(format!(
                    "failing attempt {}",
                    task.attempts
                )));
            }
        }
        Ok(json!({ "task_id": task.id, "attempt": task.attempts }))
    }
}
