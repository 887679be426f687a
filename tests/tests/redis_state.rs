//! Redis task state beyond the conformance suite: attempts marked running and recorded once,
//! submit in one atomic step when queue and state are one Redis, and scripts loaded again
//! after Redis forgets them.

use redis::AsyncCommands;
use xqueue_core::{now_millis, Begin, Error, Outcome, StateStore, TaskId, TaskStatus};
use xqueue_redis::RedisConfig;
use xqueue_tests::queue::fetch_req;
use xqueue_tests::redis::{destroy_group, unique_prefix, RedisServer};
use xqueue_tests::state::{pending_task, run_one, success};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_scripts_are_loaded_again_after_redis_forgets_them() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let backend = server.backend(&unique_prefix()).await;
    let task = pending_task("flush", 7);
    backend.insert(std::slice::from_ref(&task)).await.unwrap();
    let t = run_one(&backend, &task.id, "w1", now_millis()).await;
    assert_eq!(t.payload, serde_json::json!({"n": 7}));

    // As after a restart: the script cache is empty. `complete` must load its script again.
    let mut raw = server.raw().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    backend.complete(&[success(&t)]).await.unwrap();
    let stored = backend.get(&task.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TaskStatus::Success);
    assert_eq!(stored.attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_task_is_processing_by_its_mark_until_its_attempt_is_recorded_once() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let backend = server.backend(&prefix).await;
    let mut raw = server.raw().await;
    let running_key = format!("{prefix}:running");
    let task = pending_task("marked", 1);
    let cancelled = pending_task("marked", 2);
    backend
        .insert(&[task.clone(), cancelled.clone()])
        .await
        .unwrap();

    // Started: `processing` everywhere a user looks, and no longer cancellable.
    let first = run_one(&backend, &task.id, "w1", 1_700_000_000_000).await;
    assert_eq!(first.attempts, 1);
    let stored = backend.get(&task.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TaskStatus::Processing);
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.started_at, Some(1_700_000_000_000));
    assert_eq!(stored.worker.as_deref(), Some("w1"));
    let counts = backend.counts().await.unwrap();
    assert_eq!((counts.pending, counts.processing), (1, 1));
    let ids = |tasks: Vec<xqueue_core::Task>| tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let processing = backend.list(TaskStatus::Processing, 10).await.unwrap();
    assert_eq!(ids(processing), vec![task.id.clone()]);
    let pending = backend.list(TaskStatus::Pending, 1).await.unwrap();
    assert_eq!(
        ids(pending),
        vec![cancelled.id.clone()],
        "a running task is not listed pending"
    );
    let err = backend.cancel(&task.id, now_millis()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                status: TaskStatus::Processing,
                ..
            }
        ),
        "{err}"
    );

    // Redelivered after w1 vanished: the cut-short attempt counts.
    let second = run_one(&backend, &task.id, "w2", 1_700_000_000_500).await;
    assert_eq!(second.attempts, 2);
    let stored = backend.get(&task.id).await.unwrap().unwrap();
    assert_eq!((stored.attempts, stored.worker.as_deref()), (2, Some("w2")));

    // Recorded once: a second completion of the task changes nothing.
    backend.complete(&[success(&second)]).await.unwrap();
    let late = xqueue_core::Completion {
        outcome: Outcome::Failed {
            error: "late".into(),
        },
        ..success(&first)
    };
    backend.complete(&[late]).await.unwrap();
    let stored = backend.get(&task.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TaskStatus::Success);
    assert_eq!(stored.attempts, 2);
    assert_eq!(stored.started_at, Some(1_700_000_000_500));
    assert_eq!(stored.worker.as_deref(), Some("w2"));
    let counts = backend.counts().await.unwrap();
    assert_eq!(
        (
            counts.pending,
            counts.processing,
            counts.success,
            counts.failed
        ),
        (1, 0, 1, 0)
    );

    // A stale duplicate of the finished task, and one of a task cancelled before its
    // delivery, are skipped, and their marks taken off.
    backend.cancel(&cancelled.id, now_millis()).await.unwrap();
    let begun = backend
        .begin(&[task.id.clone(), cancelled.id.clone()], "w3", now_millis())
        .await
        .unwrap();
    let statuses: Vec<_> = begun
        .iter()
        .map(|b| match b {
            Begin::Skip { status, .. } => *status,
            Begin::Run(t) => panic!("ran {t:?}"),
        })
        .collect();
    assert_eq!(
        statuses,
        vec![Some(TaskStatus::Success), Some(TaskStatus::Cancelled)]
    );
    assert_eq!(raw.hlen::<_, u64>(&running_key).await.unwrap(), 0);
    assert_eq!(backend.counts().await.unwrap().processing, 0);
}

/// Calls of `command` Redis has run so far (`INFO commandstats`; each test has its own
/// server).
async fn calls(raw: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(raw)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// Two instances on one Redis and prefix (each keeps the snapshots of what it fetched), and
/// `n` tasks of `task_type` submitted in one step by the first.
struct TwoInstances {
    _server: RedisServer,
    here: xqueue_redis::RedisBackend,
    elsewhere: xqueue_redis::RedisBackend,
    raw: redis::aio::MultiplexedConnection,
    prefix: String,
    tasks: Vec<xqueue_core::Task>,
    ids: Vec<TaskId>,
}

async fn two_instances(task_type: &str, n: i32) -> Option<TwoInstances> {
    let server = RedisServer::start().await?;
    let prefix = unique_prefix();
    let here = server.backend(&prefix).await;
    let elsewhere = server.backend(&prefix).await;
    let raw = server.raw().await;
    let tasks: Vec<_> = (1..=n).map(|i| pending_task(task_type, i)).collect();
    let ids = tasks.iter().map(|t| t.id.clone()).collect();
    here.insert_published(&tasks, None).await.unwrap();
    Some(TwoInstances {
        _server: server,
        here,
        elsewhere,
        raw,
        prefix,
        tasks,
        ids,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_first_delivery_starts_from_its_entry_unless_its_record_may_have_changed() {
    use std::time::Duration;
    use xqueue_core::{Consumer, QueueBackend};
    // `_server` is bound, not left to `..`: dropping it would stop the container.
    let Some(TwoInstances {
        _server,
        here,
        elsewhere,
        mut raw,
        tasks,
        ids,
        ..
    }) = two_instances("snap", 5).await
    else {
        return;
    };
    let consumer = Consumer::new("g", "here");
    let queue = tasks[0].queue();
    let fetch = |count: usize| {
        let req = fetch_req(&consumer, &queue, count, 0);
        let here = &here;
        async move { here.fetch(&req).await }
    };
    let summary = |begun: &[Begin]| -> Vec<_> {
        begun
            .iter()
            .map(|b| match b {
                Begin::Run(t) => {
                    assert_eq!((t.task_type.as_str(), t.priority), ("snap", 5));
                    assert_eq!(t.status, TaskStatus::Processing);
                    (t.payload["n"].as_i64(), t.attempts, None)
                }
                Begin::Skip { status, .. } => (None, 0, *status),
            })
            .collect()
    };
    let now = now_millis();

    // The first two: the second is cancelled elsewhere after the fetch.
    assert_eq!(fetch(2).await.unwrap().len(), 2);
    elsewhere.cancel(&ids[1], now).await.unwrap();
    let reads_before = calls(&mut raw, "hmget").await;
    let begun = here.begin(&ids[..2], "here", now).await.unwrap();
    assert_eq!(
        summary(&begun),
        vec![(Some(1), 1, None), (None, 0, Some(TaskStatus::Cancelled))]
    );
    // The marks, the streams' snapshot floors and the cancelled task's record: the other
    // started from its entry.
    assert_eq!(calls(&mut raw, "hmget").await - reads_before, 3);

    // The third: cancelled elsewhere after the fetch, and purged (as past the retention).
    assert_eq!(fetch(1).await.unwrap().len(), 1);
    elsewhere.cancel(&ids[2], now).await.unwrap();
    let purged = elsewhere
        .purge_finished(TaskStatus::Cancelled, now_millis() + 1_000, 100)
        .await
        .unwrap();
    assert_eq!(purged, 2);
    let begun = here.begin(&ids[2..3], "here", now).await.unwrap();
    assert_eq!(
        summary(&begun),
        vec![(None, 0, None)],
        "a purged task is not run"
    );

    // The last two: after the fetch, elsewhere takes the deliveries over (as if this
    // instance had stalled), starts the fourth twice (the second time as a redelivery, which
    // counts the first attempt) and gives it back.
    assert_eq!(fetch(2).await.unwrap().len(), 2);
    let taken = elsewhere
        .reclaim(
            &Consumer::new("g", "elsewhere"),
            &[tasks[0].queue()],
            Duration::ZERO,
            10,
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 5, "every delivery held here");
    run_one(&elsewhere, &ids[3], "gone", now).await;
    let again = run_one(&elsewhere, &ids[3], "gone-too", now).await;
    assert_eq!(again.attempts, 2);
    elsewhere.unbegin(&ids[3..4]).await.unwrap();

    let reads_before = calls(&mut raw, "hmget").await;
    let begun = here.begin(&ids[3..], "here", now + 1).await.unwrap();
    assert_eq!(
        summary(&begun),
        // The fourth's record counts the attempt cut short elsewhere: this is its second.
        vec![(Some(4), 2, None), (Some(5), 1, None)]
    );
    // After a takeover no snapshot is trusted: both records were read.
    assert_eq!(calls(&mut raw, "hmget").await - reads_before, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_created_again_or_beside_another_trusts_no_snapshot_of_older_entries() {
    use xqueue_core::{Consumer, QueueBackend};
    // `_server` is bound, not left to `..`: dropping it would stop the container.
    let Some(TwoInstances {
        _server,
        here,
        elsewhere,
        mut raw,
        prefix,
        tasks,
        ids,
    }) = two_instances("regroup", 2).await
    else {
        return;
    };
    let queue = tasks[0].queue();
    let fetch = |backend: &xqueue_redis::RedisBackend, group: &str, count: usize| {
        let req = fetch_req(&Consumer::new(group, "c"), &queue, count, 0);
        let backend = backend.clone();
        async move { backend.fetch(&req).await.unwrap() }
    };
    let statuses = |begun: Vec<Begin>| -> Vec<Option<TaskStatus>> {
        begun
            .into_iter()
            .map(|b| match b {
                Begin::Run(_) => None,
                Begin::Skip { status, .. } => status,
            })
            .collect()
    };
    let now = now_millis();

    // The first task runs and succeeds; its entry stays in the stream until a trim.
    let first = fetch(&here, "g", 1).await;
    let t = run_one(&here, &ids[0], "c", now).await;
    here.complete(&[success(&t)]).await.unwrap();
    here.ack(&Consumer::new("g", "c"), &[first[0].receipt.clone()])
        .await
        .unwrap();

    // The group is lost (destroyed by hand) and re-created at 0 by the next fetch: both
    // entries come again as first deliveries, and the finished task must not run again.
    destroy_group(&mut raw, &format!("{prefix}:stream:{queue}"), "g").await;
    assert_eq!(fetch(&here, "g", 10).await.len(), 2);
    let begun = here.begin(&ids, "c", now).await.unwrap();
    assert_eq!(statuses(begun), vec![Some(TaskStatus::Success), None]);
    let t = run_one(&here, &ids[1], "c", now).await;
    here.complete(&[success(&t)]).await.unwrap();

    // A second group on the same stream gets both entries as first deliveries too.
    assert_eq!(fetch(&elsewhere, "g2", 10).await.len(), 2);
    let begun = elsewhere.begin(&ids, "c2", now).await.unwrap();
    assert_eq!(
        statuses(begun),
        vec![Some(TaskStatus::Success), Some(TaskStatus::Success)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submit_stores_and_queues_in_one_step_or_not_at_all() {
    use xqueue_core::testing::{Recorder, RecordingHandler};
    use xqueue_core::{ManagerConfig, NewTask, TaskManager};
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let backend = server
        .backend_with(RedisConfig::default().key_prefix(&prefix).max_len(3))
        .await;
    let manager = TaskManager::new(backend.backends(), ManagerConfig::default());
    assert!(manager.backends().queue_is_state());
    manager
        .register_handler(RecordingHandler::new("fused", Recorder::new()))
        .unwrap();
    let new = |i: i32| NewTask::new("fused", serde_json::json!({ "i": i }));

    let ok = manager.submit_batch(vec![new(1), new(2)]).await.unwrap();
    let mut raw = server.raw().await;
    let stream = format!("{prefix}:stream:{}", ok[0].queue());
    let schedule = format!("{prefix}:schedule");
    for t in &ok {
        let stored = backend.get(&t.id).await.unwrap().unwrap();
        assert_eq!(stored.status, TaskStatus::Pending);
    }
    assert_eq!(raw.xlen::<_, u64>(&stream).await.unwrap(), 2);
    // Stored and queued in one step: no publish guard is left on the schedule.
    assert_eq!(raw.zcard::<_, u64>(&schedule).await.unwrap(), 0);

    // No room for two more: refused, and nothing stored or queued.
    let err = manager
        .submit_batch(vec![new(3), new(4)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::QueueFull { limit: 3, .. }), "{err}");
    assert_eq!(raw.xlen::<_, u64>(&stream).await.unwrap(), 2);
    assert_eq!(backend.counts().await.unwrap().pending, 2);

    // An id that exists: refused, and the new task beside it is neither stored nor queued.
    let fresh = xqueue_core::Task {
        id: TaskId::generate(),
        ..ok[1].clone()
    };
    let err = backend
        .insert_published(&[fresh.clone(), ok[0].clone()], None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(backend.get(&fresh.id).await.unwrap().is_none());
    assert_eq!(raw.xlen::<_, u64>(&stream).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submit_hands_its_tasks_to_the_submitting_consumer_in_the_same_step() {
    use std::time::Duration;
    use xqueue_core::{Consumer, FetchRequest, QueueBackend, Take};
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let backend = server.backend(&prefix).await;
    let mut raw = server.raw().await;
    let older = pending_task("take", 0);
    let queue = older.queue();
    let stream = format!("{prefix}:stream:{queue}");
    let consumer = Consumer::new("g".to_string(), "c1".to_string());
    let take = |count| Take {
        consumer: consumer.clone(),
        queue: queue.clone(),
        count,
        now: 1_700_000_000_000,
    };

    // Before the group exists (no instance fetches this queue yet), nothing is taken: the
    // task is stored and queued as without `take`.
    let taken = backend
        .insert_published(std::slice::from_ref(&older), Some(&take(5)))
        .await
        .unwrap()
        .expect("Redis takes this path");
    assert!(taken.is_empty(), "{taken:?}");
    assert_eq!(raw.xlen::<_, u64>(&stream).await.unwrap(), 1);

    // The group exists from here on (as an instance's first fetch creates it); `older` is
    // still undelivered.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("g")
        .arg("0")
        .query_async(&mut raw)
        .await
        .unwrap();

    // Taking two delivers the oldest undelivered entries first: `older` only as a delivery
    // (it was not submitted by this call), the new task begun for the consumer.
    let new = pending_task("take", 1);
    let taken = backend
        .insert_published(std::slice::from_ref(&new), Some(&take(2)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.len(), 2, "{taken:?}");
    assert_eq!(taken[0].delivery.message.task_id, older.id);
    assert!(taken[0].task.is_none());
    assert_eq!(taken[1].delivery.message.task_id, new.id);
    assert_eq!(taken[1].delivery.delivery_count, 1);
    let started = taken[1].task.as_ref().expect("the new task is begun");
    assert_eq!(started.status, TaskStatus::Processing);
    assert_eq!(started.attempts, 1);
    assert_eq!(started.worker.as_deref(), Some("c1"));
    assert_eq!(started.payload, new.payload);
    let stored = backend.get(&new.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TaskStatus::Processing);
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.started_at, Some(1_700_000_000_000));
    assert_eq!(stored.worker.as_deref(), Some("c1"));
    assert_eq!(
        backend.get(&older.id).await.unwrap().unwrap().status,
        TaskStatus::Pending
    );
    let counts = backend.counts().await.unwrap();
    assert_eq!((counts.pending, counts.processing), (1, 1));
    // Both are pending for c1 in the group, as after a fetch: acked by it, or reclaimed from
    // it if it dies.
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("g")
        .arg("-")
        .arg("+")
        .arg(10)
        .arg("c1")
        .query_async(&mut raw)
        .await
        .unwrap();
    let redis::Value::Array(pending) = pending else {
        panic!("{pending:?}")
    };
    assert_eq!(pending.len(), 2);
    let acked = backend
        .ack(
            &consumer,
            &[
                taken[0].delivery.receipt.clone(),
                taken[1].delivery.receipt.clone(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(acked, 2);

    // With nothing older, a take of one gets exactly the task submitted; the second task of
    // the batch stays undelivered for the fetchers.
    let (a, b) = (pending_task("take", 2), pending_task("take", 3));
    let taken = backend
        .insert_published(&[a.clone(), b.clone()], Some(&take(1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].task.as_ref().map(|t| &t.id), Some(&a.id));
    assert_eq!(
        backend.get(&b.id).await.unwrap().unwrap().status,
        TaskStatus::Pending
    );
    let rest = backend
        .fetch(&FetchRequest {
            consumer: Consumer::new("g".to_string(), "c2".to_string()),
            queues: vec![queue.clone()],
            count: 10,
            block: Duration::ZERO,
        })
        .await
        .unwrap();
    let rest: Vec<_> = rest.iter().map(|d| d.message.task_id.clone()).collect();
    assert_eq!(rest, vec![b.id.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_worker_runs_a_task_submitted_on_its_instance_without_a_fetch() {
    use std::time::Duration;
    use xqueue_core::testing::{eventually, test_config, Recorder, RecordingHandler};
    use xqueue_core::{NewTask, TaskManager};
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let backend = server.backend(&prefix).await;
    let run = |on: bool, instance: &str| {
        let recorder = Recorder::new();
        let mut config = test_config("g", instance);
        config.start_on_submit = on;
        let manager = TaskManager::new(backend.backends(), config);
        manager
            .register_handler(RecordingHandler::new(instance, recorder.clone()))
            .unwrap();
        (manager, recorder)
    };
    for on in [true, false] {
        let instance = if on { "on" } else { "off" };
        let (manager, recorder) = run(on, instance);
        manager.start().await.unwrap();
        // Let the lane's fetch block: the pool is idle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut ids = Vec::new();
        for i in 0..3 {
            let task = manager
                .submit(NewTask::new(instance, serde_json::json!({ "i": i })))
                .await
                .unwrap();
            // Answered as stored: already running here, or still waiting.
            let (status, attempts) = if on {
                (TaskStatus::Processing, 1)
            } else {
                (TaskStatus::Pending, 0)
            };
            assert_eq!((task.status, task.attempts), (status, attempts));
            assert!(
                eventually(Duration::from_secs(10), || {
                    let backend = backend.clone();
                    let id = task.id.clone();
                    async move {
                        backend.get(&id).await.unwrap().unwrap().status == TaskStatus::Success
                    }
                })
                .await
            );
            ids.push(task.id);
        }
        for id in &ids {
            assert_eq!(recorder.runs_of(id), 1);
            let done = backend.get(id).await.unwrap().unwrap();
            assert_eq!(done.attempts, 1);
            assert_eq!(done.worker.as_deref(), Some(instance));
        }
        let stats = manager.stats().await.unwrap();
        let expected = if on { 3 } else { 0 };
        assert_eq!(
            stats.workers.started_on_submit, expected,
            "start_on_submit {on}"
        );
        // Every delivery was acked: nothing is left pending for a reclaim.
        let mut pending = u64::MAX;
        for _ in 0..50 {
            pending = manager.stats().await.unwrap().queues.pending;
            if pending == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(pending, 0);
        manager.shutdown(Duration::from_secs(5)).await;
    }
}
