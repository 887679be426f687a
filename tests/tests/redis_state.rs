//! Redis task state beyond the conformance suite: submit in one atomic step when queue and
//! state are one Redis, and scripts loaded again after Redis forgets them.

use redis::AsyncCommands;
use xqueue_core::{now_millis, Error, StateStore, TaskId};
use xqueue_redis::RedisConfig;
use xqueue_tests::redis::{unique_prefix, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_scripts_are_loaded_again_after_redis_forgets_them() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let backend = server.backend(&unique_prefix()).await;
    let task = xqueue_core::Task {
        id: TaskId::generate(),
        task_type: "flush".into(),
        payload: serde_json::json!({"n": 7}),
        priority: 5,
        status: xqueue_core::TaskStatus::Pending,
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
    };
    backend.insert(std::slice::from_ref(&task)).await.unwrap();

    // As after a restart: the script cache is empty. `begin` runs its script and reads the
    // record in one pipeline; the script must be loaded again, and the record read after it.
    let mut raw = server.raw().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    let begun = backend
        .begin(std::slice::from_ref(&task.id), "w1", now_millis())
        .await
        .unwrap();
    match begun.as_slice() {
        [xqueue_core::Begin::Run(t)] => {
            assert_eq!(t.id, task.id);
            assert_eq!(t.attempts, 1);
            assert_eq!(t.status, xqueue_core::TaskStatus::Processing);
            assert_eq!(t.payload, serde_json::json!({"n": 7}));
            assert_eq!(t.worker.as_deref(), Some("w1"));
        }
        other => panic!("expected one run, got {other:?}"),
    }
    let stored = backend.get(&task.id).await.unwrap().unwrap();
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.status, xqueue_core::TaskStatus::Processing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submit_stores_and_queues_in_one_step_or_not_at_all() {
    use xqueue_core::testing::{Recorder, RecordingHandler};
    use xqueue_core::{ManagerConfig, NewTask, TaskManager, TaskStatus};
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
        .insert_published(&[fresh.clone(), ok[0].clone()])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(backend.get(&fresh.id).await.unwrap().is_none());
    assert_eq!(raw.xlen::<_, u64>(&stream).await.unwrap(), 2);
}
