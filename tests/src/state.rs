//! Helpers for tests of a [`StateStore`] beyond the conformance suite: a task to insert, an
//! attempt to start, its successful end.

use xqueue_core::{now_millis, Begin, Completion, Outcome, StateStore, Task, TaskId, TaskStatus};

/// A new `pending` task of `task_type` whose payload is `{"n": n}`.
pub fn pending_task(task_type: &str, n: i32) -> Task {
    Task {
        id: TaskId::generate(),
        task_type: task_type.into(),
        payload: serde_json::json!({ "n": n }),
        priority: 5,
        status: TaskStatus::Pending,
        attempts: 0,
        max_retries: 3,
        timeout_ms: None,
        created_at: now_millis(),
        run_at: None,
        started_at: None,
        finished_at: None,
        last_error: None,
        result: None,
        worker: None,
    }
}

/// Begins `id` as `worker` at `now` and returns the task; panics unless it runs.
pub async fn run_one<S: StateStore + ?Sized>(
    state: &S,
    id: &TaskId,
    worker: &str,
    now: u64,
) -> Task {
    let begun = state
        .begin(std::slice::from_ref(id), worker, now)
        .await
        .unwrap();
    match begun.as_slice() {
        [Begin::Run(t)] => {
            assert_eq!(&t.id, id);
            assert_eq!(t.status, TaskStatus::Processing);
            assert_eq!(
                (t.started_at, t.worker.as_deref()),
                (Some(now), Some(worker))
            );
            t.clone()
        }
        other => panic!("expected one run, got {other:?}"),
    }
}

/// The successful end, now, of the attempt `t` (as `begin` returned it).
pub fn success(t: &Task) -> Completion {
    Completion {
        id: t.id.clone(),
        outcome: Outcome::Success {
            result: serde_json::Value::Null,
        },
        at: now_millis(),
        attempts: t.attempts,
        started_at: t.started_at,
        worker: t.worker.clone(),
    }
}
