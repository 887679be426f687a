//! Cases on the whole stack: a [`TaskManager`] on the fixture's backends.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{case, eventually, Case, Fixture, Recorder, RecordingHandler};
use crate::error::Error;
use crate::manager::TaskManager;
use crate::queue::Capabilities;
use crate::task::{NewTask, QueueName, TaskId, TaskStatus};

use super::lifecycle_cases::*;
use super::manager_support::*;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case("manager_runs_every_task_once", None, |f| {
            Box::pin(runs_every_task_once(f))
        }),
        case("limit_held_exactly", None, |f| {
            Box::pin(limit_held_exactly(f))
        }),
        case("saturated_type_does_not_delay_another", None, |f| {
            Box::pin(no_head_of_line(f))
        }),
        case("retry_with_backoff_then_success", None, |f| {
            Box::pin(retry_then_success(f))
        }),
        case("fatal_error_dead_letters_at_once", None, |f| {
            Box::pin(fatal_dead_letters(f))
        }),
        case("dead_letters_listed_requeued_purged", None, |f| {
            Box::pin(dead_letter_cycle(f))
        }),
        case("timeout_fails_the_attempt", None, |f| {
            Box::pin(timeout_fails(f))
        }),
        case("panic_is_a_failed_attempt", None, |f| {
            Box::pin(panic_survived(f))
        }),
        case("higher_priority_first_no_starvation", None, |f| {
            Box::pin(priority_order(f))
        }),
        case("delayed_task_runs_once_when_due", None, |f| {
            Box::pin(delayed_once(f))
        }),
        case("cancel_only_before_start", None, |f| {
            Box::pin(cancel_rules(f))
        }),
        case("results_kept_then_expired", None, |f| {
            Box::pin(results_and_retention(f))
        }),
        case("two_managers_share_the_work", None, |f| {
            Box::pin(two_managers(f))
        }),
        case(
            "crashed_manager_work_finished_elsewhere",
            Some(|c: &Capabilities| c.idle_reclaim),
            |f| Box::pin(crash_recovery(f)),
        ),
        case(
            "live_manager_keeps_its_long_tasks",
            Some(|c: &Capabilities| c.idle_reclaim && c.touch),
            |f| Box::pin(long_tasks_kept(f)),
        ),
        case("shutdown_drains_and_gives_back", None, |f| {
            Box::pin(graceful_shutdown(f))
        }),
        case("slow_handlers_are_never_started_ahead", None, |f| {
            Box::pin(slow_not_ahead(f))
        }),
        case("started_ahead_tasks_given_back_on_shutdown", None, |f| {
            Box::pin(ahead_given_back(f))
        }),
        case(
            "poison_message_dead_lettered",
            Some(|c: &Capabilities| c.idle_reclaim && c.delivery_count),
            |f| Box::pin(poison(f)),
        ),
    ]
}

async fn runs_every_task_once(f: Arc<dyn Fixture>) {
    let g = group();
    let s = setup(
        f.backends().await,
        test_config(&g, "m1"),
        &[("alpha", opts(None, 0)), ("beta", opts(None, 0))],
        None,
    )
    .await;
    let mut tasks = submit_many(&s.manager, "alpha", 150, json!({})).await;
    tasks.extend(submit_many(&s.manager, "beta", 150, json!({})).await);
    wait_all_success(&s.manager, &tasks, Duration::from_secs(60)).await;
    for t in &tasks {
        assert_eq!(
            s.recorder.runs_of(&t.id),
            1,
            "task {} ran {} times",
            t.id,
            s.recorder.runs_of(&t.id)
        );
    }
    let done = s.manager.get(&tasks[0].id).await.expect("get");
    assert_eq!(done.attempts, 1);
    assert_eq!(done.result, Some(json!({"task_id": done.id, "attempt": 1})));
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    let w = s.manager.worker_stats();
    assert_eq!(w.processed_tasks, 300);
    s.manager.shutdown(Duration::from_secs(5)).await;
}

async fn limit_held_exactly(f: Arc<dyn Fixture>) {
    let g = group();
    let s = setup(
        f.backends().await,
        test_config(&g, "m1"),
        &[("limited", opts(Some(3), 0))],
        None,
    )
    .await;
    let tasks = submit_many(&s.manager, "limited", 30, json!({"sleep_ms": 40})).await;
    wait_all_success(&s.manager, &tasks, Duration::from_secs(60)).await;
    assert_eq!(
        s.recorder.peak("limited"),
        3,
        "the limit is reached and never exceeded"
    );
    // Raise the limit at run time.
    s.manager
        .set_concurrency_limit("limited", 5)
        .await
        .expect("set limit");
    assert_eq!(
        s.manager
            .concurrency_limits()
            .await
            .expect("limits")
            .get("limited"),
        Some(&5)
    );
    let recorder2 = s.recorder.clone();
    let more = submit_many(&s.manager, "limited", 30, json!({"sleep_ms": 40})).await;
    wait_all_success(&s.manager, &more, Duration::from_secs(60)).await;
    assert_eq!(
        recorder2.peak("limited"),
        5,
        "the new limit is used and held"
    );
    assert!(matches!(
        s.manager.set_concurrency_limit("limited", 0).await,
        Err(Error::InvalidInput { .. })
    ));
    s.manager.shutdown(Duration::from_secs(5)).await;
}

async fn no_head_of_line(f: Arc<dyn Fixture>) {
    let g = group();
    let s = setup(
        f.backends().await,
        test_config(&g, "m1"),
        &[("slow", opts(Some(1), 0)), ("fast", opts(None, 0))],
        None,
    )
    .await;
    let slow = submit_many(&s.manager, "slow", 20, json!({"sleep_ms": 200})).await;
    let fast = submit_many(&s.manager, "fast", 50, json!({})).await;
    wait_all_success(&s.manager, &fast, Duration::from_secs(30)).await;
    let mut slow_done = 0;
    for t in &slow {
        if s.manager.get(&t.id).await.expect("get").status == TaskStatus::Success {
            slow_done += 1;
        }
    }
    assert!(
        slow_done < 10,
        "fast tasks waited behind the saturated type ({slow_done} slow tasks done first)"
    );
    s.manager.shutdown(Duration::from_secs(1)).await;
}

async fn two_managers(f: Arc<dyn Fixture>) {
    let backends = f.backends().await;
    let g = group();
    let recorder = Recorder::new();
    let a = setup(
        backends.clone(),
        test_config(&g, "m1"),
        &[("shared", opts(Some(4), 0))],
        Some(recorder.clone()),
    )
    .await;
    let b = setup(
        backends,
        test_config(&g, "m2"),
        &[("shared", opts(Some(4), 0))],
        Some(recorder.clone()),
    )
    .await;
    let tasks = submit_many(&a.manager, "shared", 300, json!({"sleep_ms": 5})).await;
    wait_all_success(&b.manager, &tasks, Duration::from_secs(120)).await;
    for t in &tasks {
        assert_eq!(recorder.runs_of(&t.id), 1);
    }
    assert!(
        recorder.peak("shared") <= 4,
        "the limit holds across managers: {}",
        recorder.peak("shared")
    );
    let (wa, wb) = (a.manager.worker_stats(), b.manager.worker_stats());
    assert_eq!(wa.processed_tasks + wb.processed_tasks, 300);
    a.manager.shutdown(Duration::from_secs(5)).await;
    b.manager.shutdown(Duration::from_secs(5)).await;
}

async fn crash_recovery(f: Arc<dyn Fixture>) {
    let backends = f.backends().await;
    let g = group();
    let recorder = Recorder::new();
    let mut cfg = test_config(&g, "doomed");
    cfg.workers = 5;
    let a = setup(
        backends.clone(),
        cfg,
        &[("work", opts(None, 3))],
        Some(recorder.clone()),
    )
    .await;
    // Five tasks hang on the first attempt (the process "dies" mid-run), five are buffered.
    let tasks = submit_many(&a.manager, "work", 10, json!({"sleep_ms": 60_000})).await;
    let running = eventually(Duration::from_secs(30), || {
        let m = a.manager.clone();
        async move { m.worker_stats().active_workers == 5 }
    })
    .await;
    assert!(running, "the first manager took the tasks");
    drop(a); // a crash: nothing acked, nothing given back
    let mut cfg = test_config(&g, "survivor");
    cfg.claim_idle = Duration::from_millis(500);
    let rec2 = Recorder::new();
    let b = TaskManager::new(backends, cfg);
    b.register_handler_with(RecordingHandler::new("work", rec2.clone()), opts(None, 3))
        .expect("register");
    b.start().await.expect("start");
    // The survivor's handler would sleep too; the payload is fixed, so wait for starts only.
    let ok = eventually(Duration::from_secs(60), || {
        let r = rec2.clone();
        let ids: Vec<TaskId> = tasks.iter().map(|t| t.id.clone()).collect();
        async move { ids.iter().all(|id| r.runs_of(id) >= 1) }
    })
    .await;
    assert!(
        ok,
        "every task of the crashed manager started again elsewhere"
    );
    let t = b.get(&tasks[0].id).await.expect("get");
    assert_eq!(t.status, TaskStatus::Processing);
    assert_eq!(t.worker.as_deref(), Some("survivor"));
    b.shutdown(Duration::from_millis(200)).await;
}

/// A live instance keeps what it holds, running or buffered, however long past `claim_idle`:
/// its lease keeper touches it in time, so another instance reclaiming idle deliveries never
/// takes it over (the first touch comes one keeper period after start, not at once).
async fn long_tasks_kept(f: Arc<dyn Fixture>) {
    let backends = f.backends().await;
    let g = group();
    let recorder = Recorder::new();
    let config = |name: &str| {
        let mut cfg = test_config(&g, name);
        cfg.claim_idle = Duration::from_millis(300);
        cfg.workers = 1;
        cfg
    };
    let a = setup(
        backends.clone(),
        config("holder"),
        &[("long", opts(None, 0))],
        Some(recorder.clone()),
    )
    .await;
    // One worker: the first task runs four claim_idle periods, the second waits in the buffer.
    let tasks = submit_many(&a.manager, "long", 2, json!({"sleep_ms": 1200})).await;
    let queues = QueueName::all_for_type("long");
    let holding = eventually(Duration::from_secs(10), || {
        let (m, q, g, queues) = (
            a.manager.clone(),
            backends.queue.clone(),
            g.clone(),
            &queues,
        );
        async move {
            let delivered = match q.info(&g, queues).await {
                Ok(info) => info.iter().map(|i| i.waiting).sum::<u64>() == 0,
                Err(_) => false,
            };
            delivered && m.worker_stats().active_workers == 1
        }
    })
    .await;
    assert!(holding, "the holder started one task and holds the other");
    let b = setup(
        backends,
        config("idle-reclaimer"),
        &[("long", opts(None, 0))],
        Some(recorder.clone()),
    )
    .await;
    wait_all_success(&a.manager, &tasks, Duration::from_secs(30)).await;
    for t in &tasks {
        assert_eq!(
            recorder.runs_of(&t.id),
            1,
            "a task held by a live instance never runs twice"
        );
    }
    assert_eq!(
        b.manager.worker_stats().processed_tasks,
        0,
        "the other instance took over nothing"
    );
    a.manager.shutdown(Duration::from_secs(5)).await;
    b.manager.shutdown(Duration::from_secs(5)).await;
}

async fn graceful_shutdown(f: Arc<dyn Fixture>) {
    let backends = f.backends().await;
    let g = group();
    let mut cfg = test_config(&g, "leaving");
    cfg.workers = 2;
    let rec = Recorder::new();
    let a = setup(
        backends.clone(),
        cfg,
        &[("job", opts(None, 3))],
        Some(rec.clone()),
    )
    .await;
    let quick = submit_many(&a.manager, "job", 2, json!({"sleep_ms": 300})).await;
    let ok = eventually(Duration::from_secs(30), || {
        let m = a.manager.clone();
        async move { m.worker_stats().active_workers == 2 }
    })
    .await;
    assert!(ok);
    let queued = submit_many(&a.manager, "job", 4, json!({})).await;
    let report = a.manager.shutdown(Duration::from_secs(10)).await;
    assert_eq!(
        report.cut_off, 0,
        "in-flight tasks finished within the deadline"
    );
    for t in &quick {
        assert_eq!(
            a.manager.get(&t.id).await.expect("get").status,
            TaskStatus::Success
        );
    }
    assert!(matches!(
        a.manager.submit(NewTask::new("job", json!({}))).await,
        Err(Error::ShuttingDown)
    ));
    // What it had not started runs on the next instance.
    let b = next_instance_runs(backends, &g, "job", &queued).await;
    b.manager.shutdown(Duration::from_secs(5)).await;
}

/// A type whose handlers take long has no task `processing` beyond those running.
async fn slow_not_ahead(f: Arc<dyn Fixture>) {
    let mut cfg = test_config(&group(), "m1");
    cfg.workers = 1;
    cfg.start_ahead = 5;
    let s = setup(f.backends().await, cfg, &[("slow", opts(None, 0))], None).await;
    let m = &s.manager;
    // The first run teaches the pool that this type is slow.
    let first = submit_many(m, "slow", 1, json!({"sleep_ms": 50})).await;
    wait_all_success(m, &first, Duration::from_secs(30)).await;
    let tasks = submit_many(m, "slow", 4, json!({"sleep_ms": 100})).await;
    let until = std::time::Instant::now() + Duration::from_millis(350);
    while std::time::Instant::now() < until {
        // A task whose run has ended stays `processing` until the completer records it; the
        // next one may begin meanwhile. Neither is started ahead.
        let processing: Vec<_> = m
            .list(TaskStatus::Processing, 100)
            .await
            .expect("list")
            .into_iter()
            .filter(|t| !s.recorder.has_ended(&t.id))
            .collect();
        assert!(
            processing.len() <= 1,
            "{} tasks processing with one worker: {processing:?}",
            processing.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_all_success(m, &tasks, Duration::from_secs(30)).await;
    m.shutdown(Duration::from_secs(5)).await;
}

/// Tasks of a quick type started ahead while the only worker is busy are `processing` but
/// not run; a shutdown gives them back as `pending`, uncounted, and they run once elsewhere.
async fn ahead_given_back(f: Arc<dyn Fixture>) {
    let backends = f.backends().await;
    let g = group();
    let mut cfg = test_config(&g, "ahead");
    cfg.workers = 1;
    cfg.start_ahead = 3;
    let a = setup(backends.clone(), cfg, &[("job", opts(None, 3))], None).await;
    let m = &a.manager;
    let warm = submit_many(m, "job", 3, json!({})).await;
    wait_all_success(m, &warm, Duration::from_secs(30)).await;
    let busy = submit_many(m, "job", 1, json!({"sleep_ms": 1500})).await;
    let running = eventually(Duration::from_secs(30), || {
        let m = m.clone();
        async move { m.worker_stats().active_workers == 1 }
    })
    .await;
    assert!(running, "the long task did not start");
    let ahead = submit_many(m, "job", 3, json!({})).await;
    let started = eventually(Duration::from_secs(10), || {
        let (m, ids) = (m.clone(), ahead.clone());
        async move {
            for t in &ids {
                if m.get(&t.id).await.expect("get").status != TaskStatus::Processing {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(
        started,
        "quick tasks were not started ahead of the busy worker"
    );
    for t in &ahead {
        assert_eq!(a.recorder.runs_of(&t.id), 0, "started ahead, not run");
    }
    let report = m.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.cut_off, 0);
    assert!(report.given_back >= 3, "{report:?}");
    assert_eq!(
        m.get(&busy[0].id).await.expect("get").status,
        TaskStatus::Success
    );
    for t in &ahead {
        let back = m.get(&t.id).await.expect("get");
        assert_eq!(back.status, TaskStatus::Pending, "{back:?}");
        assert_eq!(back.attempts, 0, "an attempt that never ran is not counted");
    }
    let b = next_instance_runs(backends, &g, "job", &ahead).await;
    for t in &ahead {
        assert_eq!(b.recorder.runs_of(&t.id), 1);
        assert_eq!(b.manager.get(&t.id).await.expect("get").attempts, 1);
    }
    b.manager.shutdown(Duration::from_secs(5)).await;
}
