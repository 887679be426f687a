//! [`MemoryStateStore`]: task state inside the process.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::state::{Begin, Completion, Outcome, StateStore, StatusCounts, PUBLISH_GUARD};
use crate::task::{Task, TaskId, TaskStatus, UnixMillis};

/// Task records, status indexes and the schedule, held in this process.
///
/// # Behavior
/// - Implements the whole [`StateStore`] contract; every call is atomic (one lock).
/// - Only this process sees the state: use it for one instance, tests, or embedding.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tasks: HashMap<TaskId, Task>,
    /// Per status: (time it entered the status, id), oldest first.
    index: HashMap<TaskStatus, BTreeSet<(UnixMillis, TaskId)>>,
    /// Where each indexed task sits in `index`.
    index_key: HashMap<TaskId, (TaskStatus, UnixMillis)>,
    /// (due time, id) and its reverse.
    schedule: BTreeSet<(UnixMillis, TaskId)>,
    due_at: HashMap<TaskId, UnixMillis>,
}

impl Inner {
    fn set_status(&mut self, id: &TaskId, status: TaskStatus, at: UnixMillis) {
        if let Some((old, old_at)) = self.index_key.remove(id) {
            if let Some(set) = self.index.get_mut(&old) {
                set.remove(&(old_at, id.clone()));
            }
        }
        self.index
            .entry(status)
            .or_default()
            .insert((at, id.clone()));
        self.index_key.insert(id.clone(), (status, at));
        if let Some(t) = self.tasks.get_mut(id) {
            t.status = status;
        }
    }

    fn schedule(&mut self, id: &TaskId, due: UnixMillis) {
        self.unschedule(id);
        self.schedule.insert((due, id.clone()));
        self.due_at.insert(id.clone(), due);
    }

    fn unschedule(&mut self, id: &TaskId) {
        if let Some(due) = self.due_at.remove(id) {
            self.schedule.remove(&(due, id.clone()));
        }
    }

    fn remove(&mut self, id: &TaskId) -> bool {
        self.unschedule(id);
        if let Some((st, at)) = self.index_key.remove(id) {
            if let Some(set) = self.index.get_mut(&st) {
                set.remove(&(at, id.clone()));
            }
        }
        self.tasks.remove(id).is_some()
    }

    fn ids_in(&self, status: TaskStatus) -> Vec<TaskId> {
        self.index
            .get(&status)
            .map(|s| s.iter().map(|(_, id)| id.clone()).collect())
            .unwrap_or_default()
    }
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn insert(&self, tasks: &[Task]) -> Result<()> {
        let mut s = self.lock();
        if let Some(t) = tasks.iter().find(|t| s.tasks.contains_key(&t.id)) {
            return Err(Error::invalid(
                "task_id",
                format!("task {} already exists", t.id),
            ));
        }
        for t in tasks {
            s.tasks.insert(t.id.clone(), t.clone());
            let due = match t.status {
                TaskStatus::Scheduled => t.run_at.unwrap_or(t.created_at),
                _ => t.created_at + PUBLISH_GUARD.as_millis() as u64,
            };
            s.set_status(&t.id, t.status, t.created_at);
            s.schedule(&t.id, due);
        }
        Ok(())
    }

    async fn get(&self, id: &TaskId) -> Result<Option<Task>> {
        Ok(self.lock().tasks.get(id).cloned())
    }

    async fn list(&self, status: TaskStatus, limit: usize) -> Result<Vec<Task>> {
        let s = self.lock();
        Ok(s.index
            .get(&status)
            .map(|set| {
                set.iter()
                    .filter_map(|(_, id)| s.tasks.get(id).cloned())
                    .take(limit)
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn counts(&self) -> Result<StatusCounts> {
        let s = self.lock();
        let mut c = StatusCounts::default();
        for (st, set) in &s.index {
            *c.get_mut(*st) = set.len() as u64;
        }
        Ok(c)
    }

    async fn begin(&self, ids: &[TaskId], worker: &str, now: UnixMillis) -> Result<Vec<Begin>> {
        let mut s = self.lock();
        Ok(ids
            .iter()
            .map(|id| {
                let status = s.tasks.get(id).map(|t| t.status);
                match status {
                    Some(TaskStatus::Pending | TaskStatus::Processing) => {
                        s.unschedule(id);
                        s.set_status(id, TaskStatus::Processing, now);
                        let t = s.tasks.get_mut(id).expect("checked above");
                        t.attempts += 1;
                        t.started_at = Some(now);
                        t.worker = Some(worker.to_owned());
                        Begin::Run(t.clone())
                    }
                    status => Begin::Skip {
                        id: id.clone(),
                        status,
                    },
                }
            })
            .collect())
    }

    async fn complete(&self, completions: &[Completion]) -> Result<()> {
        let mut s = self.lock();
        for c in completions {
            if s.tasks.get(&c.id).map(|t| t.status) != Some(TaskStatus::Processing) {
                continue;
            }
            let status = match &c.outcome {
                Outcome::Success { .. } => TaskStatus::Success,
                Outcome::Retry { .. } => TaskStatus::Retrying,
                Outcome::Failed { .. } => TaskStatus::Failed,
            };
            s.set_status(&c.id, status, c.at);
            let t = s.tasks.get_mut(&c.id).expect("checked above");
            match &c.outcome {
                Outcome::Success { result } => {
                    t.result = (!result.is_null()).then(|| result.clone());
                    t.finished_at = Some(c.at);
                }
                Outcome::Retry { error, run_at } => {
                    t.last_error = Some(error.clone());
                    t.run_at = Some(*run_at);
                    let due = *run_at;
                    s.schedule(&c.id, due);
                }
                Outcome::Failed { error } => {
                    t.last_error = Some(error.clone());
                    t.finished_at = Some(c.at);
                }
            }
        }
        Ok(())
    }

    async fn unbegin(&self, ids: &[TaskId]) -> Result<()> {
        let mut s = self.lock();
        let now = crate::task::now_millis();
        for id in ids {
            if s.tasks.get(id).map(|t| t.status) == Some(TaskStatus::Processing) {
                s.set_status(id, TaskStatus::Pending, now);
                let t = s.tasks.get_mut(id).expect("checked above");
                t.attempts = t.attempts.saturating_sub(1);
                s.schedule(id, now + PUBLISH_GUARD.as_millis() as u64);
            }
        }
        Ok(())
    }

    async fn claim_due(&self, now: UnixMillis, lease: Duration, limit: usize) -> Result<Vec<Task>> {
        let mut s = self.lock();
        let due: Vec<TaskId> = s
            .schedule
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| id.clone())
            .collect();
        let mut out = Vec::new();
        for id in due {
            if out.len() >= limit {
                break;
            }
            match s.tasks.get(&id).map(|t| t.status) {
                Some(TaskStatus::Scheduled | TaskStatus::Retrying | TaskStatus::Pending) => {
                    s.set_status(&id, TaskStatus::Pending, now);
                    s.schedule(&id, now + lease.as_millis() as u64);
                    out.push(s.tasks[&id].clone());
                }
                _ => s.unschedule(&id),
            }
        }
        Ok(out)
    }

    async fn release_due(&self, ids: &[TaskId]) -> Result<()> {
        let mut s = self.lock();
        for id in ids {
            if matches!(
                s.tasks.get(id).map(|t| t.status),
                Some(TaskStatus::Pending) | None
            ) {
                s.unschedule(id);
            }
        }
        Ok(())
    }

    async fn cancel(&self, id: &TaskId, now: UnixMillis) -> Result<Task> {
        let mut s = self.lock();
        let status = s
            .tasks
            .get(id)
            .map(|t| t.status)
            .ok_or_else(|| Error::task_not_found(id))?;
        if !status.is_cancellable() {
            return Err(Error::Conflict {
                id: id.to_string(),
                status,
                reason: "only pending, scheduled or retrying tasks can be cancelled".into(),
            });
        }
        s.unschedule(id);
        s.set_status(id, TaskStatus::Cancelled, now);
        let t = s.tasks.get_mut(id).expect("checked above");
        t.finished_at = Some(now);
        Ok(t.clone())
    }

    async fn requeue_failed(&self, ids: Option<&[TaskId]>, now: UnixMillis) -> Result<u64> {
        let mut s = self.lock();
        let ids = ids
            .map(<[TaskId]>::to_vec)
            .unwrap_or_else(|| s.ids_in(TaskStatus::Failed));
        let mut n = 0;
        for id in ids {
            if s.tasks.get(&id).map(|t| t.status) != Some(TaskStatus::Failed) {
                continue;
            }
            s.set_status(&id, TaskStatus::Scheduled, now);
            let t = s.tasks.get_mut(&id).expect("checked above");
            t.attempts = 0;
            t.run_at = Some(now);
            t.finished_at = None;
            s.schedule(&id, now);
            n += 1;
        }
        Ok(n)
    }

    async fn purge_failed(&self, ids: Option<&[TaskId]>) -> Result<u64> {
        let mut s = self.lock();
        let ids = ids
            .map(<[TaskId]>::to_vec)
            .unwrap_or_else(|| s.ids_in(TaskStatus::Failed));
        let mut n = 0;
        for id in ids {
            if s.tasks.get(&id).map(|t| t.status) == Some(TaskStatus::Failed) && s.remove(&id) {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn purge_finished(
        &self,
        status: TaskStatus,
        before: UnixMillis,
        limit: usize,
    ) -> Result<u64> {
        if !status.is_finished() {
            return Err(Error::invalid(
                "status",
                format!("{status} is not a finished status"),
            ));
        }
        let mut s = self.lock();
        let old: Vec<TaskId> = s
            .index
            .get(&status)
            .map(|set| {
                set.iter()
                    .take_while(|(at, _)| *at <= before)
                    .take(limit)
                    .map(|(_, id)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        let n = old.len() as u64;
        for id in old {
            s.remove(&id);
        }
        Ok(n)
    }
}
