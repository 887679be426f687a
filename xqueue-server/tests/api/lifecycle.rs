//! Cancel, dead letters, delayed and scheduled tasks.

use super::support::*;

#[tokio::test]
async fn cancel_before_start_and_conflict_after() {
    let api = api().await;
    let id = api
        .submit(json!({"type": "example", "delay_ms": 60_000}))
        .await;
    let (status, v) = api
        .call("POST", &format!("/api/v1/tasks/{id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "cancelled");
    assert_eq!(api.task(&id).await["status"], "cancelled");
    let again = api
        .call("POST", &format!("/api/v1/tasks/{id}/cancel"), None)
        .await;
    assert_error(&again, 409, "conflict", None);

    let running = api
        .submit(json!({"type": "example", "payload": {"duration_ms": 2000}}))
        .await;
    api.wait_status(&running, "processing").await;
    let got = api
        .call("POST", &format!("/api/v1/tasks/{running}/cancel"), None)
        .await;
    assert_error(&got, 409, "conflict", None);

    let missing = "01936f3e-8f6a-7c3b-9d2e-1a2b3c4d5e6f";
    let got = api
        .call("POST", &format!("/api/v1/tasks/{missing}/cancel"), None)
        .await;
    assert_error(&got, 404, "not_found", None);
}

#[tokio::test]
async fn dead_letters_list_requeue_and_purge() {
    let api = api().await;
    let fatal = api
        .submit(json!({"type": "email", "payload": {"duration_ms": 0, "fail": "fatal"}}))
        .await;
    let retried = api
        .submit(json!({"type": "noop", "payload": {"fail": "retry"}, "max_retries": 2}))
        .await;
    let t = api.wait_status(&fatal, "failed").await;
    assert_eq!(t["attempts"], 1);
    assert!(t["error"].as_str().unwrap().contains("fatal"), "{t}");
    let t = api.wait_status(&retried, "failed").await;
    assert_eq!(t["attempts"], 3, "{t}");

    let (status, v) = api.call("GET", "/api/v1/dead-letters?limit=10", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["count"], 2, "{v}");

    let first_finish = api.task(&fatal).await["finished_at"].clone();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, v) = api
        .call(
            "POST",
            "/api/v1/dead-letters/requeue",
            Some(json!({"task_ids": [fatal]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["requeued"], 1);
    // It runs again (and fails again: the payload says so).
    let start = Instant::now();
    loop {
        let t = api.task(&fatal).await;
        if t["status"] == "failed" && t["finished_at"] != first_finish {
            assert_eq!(t["attempts"], 1, "fresh attempts: {t}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{t}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for body in [
        json!({}),
        json!({"task_ids": []}),
        json!({"all": false}),
        json!({"all": true, "task_ids": [fatal]}),
        json!({"task_ids": ["nope"]}),
        json!({"every": true}),
    ] {
        let got = api
            .call("POST", "/api/v1/dead-letters/requeue", Some(body.clone()))
            .await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{body}: {}", got.1);
        let got = api.call("DELETE", "/api/v1/dead-letters", Some(body)).await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{}", got.1);
    }

    let (status, v) = api
        .call(
            "DELETE",
            "/api/v1/dead-letters",
            Some(json!({"task_ids": [retried]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["purged"], 1);
    assert_error(
        &api.call("GET", &format!("/api/v1/tasks/{retried}"), None)
            .await,
        404,
        "not_found",
        None,
    );
    let (status, v) = api
        .call("DELETE", "/api/v1/dead-letters", Some(json!({"all": true})))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["purged"], 1);
    let (_, v) = api.call("GET", "/api/v1/dead-letters", None).await;
    assert_eq!(v["count"], 0, "{v}");
}

#[tokio::test]
async fn delayed_and_scheduled_tasks_run_on_time() {
    let api = api().await;
    let submitted = Instant::now();
    let (status, v) = api
        .call(
            "POST",
            "/api/v1/tasks",
            Some(json!({"type": "noop", "delay_ms": 300})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v["status"], "scheduled");
    assert!(v["task"]["run_at"].is_string(), "{v}");
    let id = v["task_id"].as_str().unwrap().to_string();
    api.wait_status(&id, "success").await;
    assert!(submitted.elapsed() >= Duration::from_millis(300));

    // A run_at in the past runs at once; one with an offset is understood.
    let id = api
        .submit(json!({"type": "noop", "run_at": "2020-01-01T00:00:00+02:00"}))
        .await;
    api.wait_status(&id, "success").await;
    let (_, v) = api
        .call(
            "POST",
            "/api/v1/tasks",
            Some(json!({"type": "noop", "run_at": "2099-01-01T00:00:00Z", "timeout_ms": 500})),
        )
        .await;
    // More than a year ahead.
    assert_eq!(v["error"]["field"], "run_at", "{v}");
    let (status, v) = api
        .call(
            "POST",
            "/api/v1/tasks",
            Some(
                json!({"type": "noop", "delay_ms": 3_600_000, "timeout_ms": 500, "max_retries": 0}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v["task"]["timeout_ms"], 500);
    assert_eq!(v["task"]["max_retries"], 0);
}
