//! The Redis task record's layout: what never changes packed in one field, how a success ran
//! packed in another, succeeded tasks in a list; and records and indexes written by earlier
//! versions, still read.

use redis::AsyncCommands;
use xqueue_core::{Outcome, StateStore, TaskId, TaskStatus};
use xqueue_tests::redis::{unique_prefix, RedisServer};
use xqueue_tests::state::{pending_task, run_one, success};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_pack_their_fixed_fields_and_older_records_still_run() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let backend = server.backend(&prefix).await;
    let mut raw = server.raw().await;
    let mut task = pending_task("packed", 1);
    task.timeout_ms = Some(2500);
    backend.insert(std::slice::from_ref(&task)).await.unwrap();
    let key = format!("{prefix}:task:{}", task.id);
    let mut fields: Vec<String> = raw.hkeys(&key).await.unwrap();
    fields.sort();
    // Only the fields with a value: a new task has no start, end, error, result or worker.
    assert_eq!(
        fields,
        ["attempts", "id", "payload", "spec", "status"],
        "a new record holds only what has a value"
    );
    for apart in [
        "type",
        "priority",
        "max_retries",
        "timeout_ms",
        "created_at",
    ] {
        assert!(
            !fields.contains(&apart.to_string()),
            "{apart} is packed: {fields:?}"
        );
    }
    let first = run_one(&backend, &task.id, "w1", 1_700_000_000_000).await;
    let expect = |t: &xqueue_core::Task| {
        (
            t.task_type.clone(),
            t.payload.clone(),
            t.priority,
            t.max_retries,
            t.timeout_ms,
            t.created_at,
        )
    };
    assert_eq!(expect(&first), expect(&task));

    // A record of an earlier version: the same fields apart, no `spec`. It is read, begun
    // (with its scheduled run_at and last error) and finished like any other.
    let old = TaskId::generate();
    let old_key = format!("{prefix}:task:{old}");
    let _: () = raw
        .hset_multiple(
            &old_key,
            &[
                ("id", old.as_str()),
                ("type", "legacy"),
                ("payload", r#"{"n":7}"#),
                ("priority", "8"),
                ("max_retries", "4"),
                ("timeout_ms", ""),
                ("created_at", "1600000000000"),
                ("status", "pending"),
                ("attempts", "1"),
                ("run_at", "1600000000500"),
                ("started_at", ""),
                ("finished_at", ""),
                ("last_error", "boom"),
                ("result", ""),
                ("worker", ""),
            ],
        )
        .await
        .unwrap();
    let _: () = raw
        .zadd(
            format!("{prefix}:status:pending"),
            old.as_str(),
            1_600_000_000_000u64,
        )
        .await
        .unwrap();
    let stored = backend.get(&old).await.unwrap().unwrap();
    assert_eq!((stored.task_type.as_str(), stored.priority), ("legacy", 8));
    let began = run_one(&backend, &old, "w1", 1_700_000_000_000).await;
    assert_eq!(
        (
            began.task_type.as_str(),
            began.payload.clone(),
            began.priority,
            began.max_retries,
            began.timeout_ms,
            began.created_at,
        ),
        (
            "legacy",
            serde_json::json!({"n": 7}),
            8,
            4,
            None,
            1_600_000_000_000
        )
    );
    assert_eq!(began.attempts, 2);
    assert_eq!(began.run_at, Some(1_600_000_000_500));
    assert_eq!(began.last_error.as_deref(), Some("boom"));
    backend.complete(&[success(&began)]).await.unwrap();
    let done = backend.get(&old).await.unwrap().unwrap();
    assert_eq!((done.status, done.attempts), (TaskStatus::Success, 2));
    assert_eq!(done.task_type, "legacy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn succeeded_tasks_are_listed_in_order_recorded_beside_an_older_sorted_index() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let backend = server.backend(&prefix).await;
    let mut raw = server.raw().await;
    let tasks: Vec<_> = (0..3).map(|n| pending_task("listed", n)).collect();
    backend.insert(&tasks).await.unwrap();
    let ids: Vec<TaskId> = tasks.iter().map(|t| t.id.clone()).collect();
    let mut done = Vec::new();
    for (t, at) in tasks.iter().zip([1_000, 2_000, 3_000]) {
        let began = run_one(&backend, &t.id, "w", at - 10).await;
        done.push(xqueue_core::Completion {
            at,
            ..success(&began)
        });
    }
    backend.complete(&done).await.unwrap();

    // A success is its status and one packed field: `finished_at|attempts|started_at|worker`.
    let first_key = format!("{prefix}:task:{}", ids[0]);
    let run: Option<String> = raw.hget(&first_key, "run").await.unwrap();
    assert_eq!(run.as_deref(), Some("1000|1|990|w"));
    let first = backend.get(&ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (
            first.status,
            first.finished_at,
            first.attempts,
            first.started_at,
            first.worker.as_deref(),
            first.result
        ),
        (
            TaskStatus::Success,
            Some(1_000),
            1,
            Some(990),
            Some("w"),
            None
        )
    );

    // A task an earlier version recorded as succeeded: in the `success` sorted set.
    let old = pending_task("listed", 9);
    backend.insert(std::slice::from_ref(&old)).await.unwrap();
    let old_key = format!("{prefix}:task:{}", old.id);
    let _: () = raw
        .hset_multiple(&old_key, &[("status", "success"), ("finished_at", "500")])
        .await
        .unwrap();
    let _: () = raw
        .zrem(format!("{prefix}:status:pending"), old.id.as_str())
        .await
        .unwrap();
    let _: () = raw
        .zadd(format!("{prefix}:status:success"), old.id.as_str(), 500)
        .await
        .unwrap();

    let listed: Vec<String> = raw
        .lrange(format!("{prefix}:succeeded"), 0, -1)
        .await
        .unwrap();
    let as_str = |ids: &[TaskId]| ids.iter().map(|i| i.to_string()).collect::<Vec<_>>();
    assert_eq!(listed, as_str(&ids), "appended in the order recorded");
    let list = |n| {
        let backend = &backend;
        async move {
            let tasks = backend.list(TaskStatus::Success, n).await.unwrap();
            tasks.into_iter().map(|t| t.id).collect::<Vec<_>>()
        }
    };
    let mut all = vec![old.id.clone()];
    all.extend(ids.iter().cloned());
    assert_eq!(list(10).await, all, "the older index first, then the list");
    assert_eq!(list(2).await, all[..2].to_vec());
    assert_eq!(backend.counts().await.unwrap().success, 4);

    // Retention takes both, oldest first, and stops at the first task finished after the cutoff.
    let purged = backend
        .purge_finished(TaskStatus::Success, 2_000, 100)
        .await
        .unwrap();
    assert_eq!(purged, 3);
    assert_eq!(list(10).await, vec![ids[2].clone()]);
    assert_eq!(backend.counts().await.unwrap().success, 1);
    for gone in [&old.id, &ids[0], &ids[1]] {
        assert!(backend.get(gone).await.unwrap().is_none(), "{gone} purged");
    }
    let purged = backend
        .purge_finished(TaskStatus::Success, 3_000, 100)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(backend.counts().await.unwrap().success, 0);
    assert_eq!(
        raw.llen::<_, u64>(format!("{prefix}:succeeded"))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_batch_records_every_kind_of_outcome_once() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let backend = server.backend(&prefix).await;
    let tasks: Vec<_> = (0..4).map(|n| pending_task("mixed", n)).collect();
    backend.insert(&tasks).await.unwrap();
    let mut began = Vec::new();
    for t in &tasks {
        began.push(run_one(&backend, &t.id, "w", 1_000).await);
    }
    let end = |t: &xqueue_core::Task, outcome| xqueue_core::Completion {
        outcome,
        at: 2_000,
        ..success(t)
    };
    let plain = success(&began[0]);
    let batch = vec![
        // A failure first: plain successes travel apart from the others, yet each applies.
        end(
            &began[2],
            Outcome::Failed {
                error: "boom".into(),
            },
        ),
        plain.clone(),
        end(
            &began[1],
            Outcome::Success {
                result: serde_json::json!({"sum": 3}),
            },
        ),
        end(
            &began[3],
            Outcome::Retry {
                error: "again".into(),
                run_at: 9_000,
            },
        ),
        // The same attempt twice in one batch is recorded once.
        plain,
    ];
    backend.complete(&batch).await.unwrap();

    let get = |i: usize| {
        let backend = &backend;
        let id = tasks[i].id.clone();
        async move { backend.get(&id).await.unwrap().unwrap() }
    };
    let first = get(0).await;
    assert_eq!(
        (first.status, first.result, first.attempts),
        (TaskStatus::Success, None, 1)
    );
    let second = get(1).await;
    assert_eq!(second.status, TaskStatus::Success);
    assert_eq!(second.result, Some(serde_json::json!({"sum": 3})));
    assert_eq!(second.finished_at, Some(2_000));
    let third = get(2).await;
    assert_eq!(
        (third.status, third.last_error.as_deref(), third.finished_at),
        (TaskStatus::Failed, Some("boom"), Some(2_000))
    );
    let fourth = get(3).await;
    assert_eq!(
        (fourth.status, fourth.last_error.as_deref(), fourth.run_at),
        (TaskStatus::Retrying, Some("again"), Some(9_000))
    );
    let counts = backend.counts().await.unwrap();
    assert_eq!(
        (
            counts.success,
            counts.failed,
            counts.retrying,
            counts.pending,
            counts.processing
        ),
        (2, 1, 1, 0, 0)
    );
    // Recorded once: a second try of the whole batch changes nothing.
    backend.complete(&batch).await.unwrap();
    assert_eq!(backend.counts().await.unwrap(), counts);
}
