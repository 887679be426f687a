//! The REST API through the router (no socket), on the memory backend.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use xqueue_core::{memory, Backends, Backoff, ManagerConfig, TaskManager};
use xqueue_server::{app, handlers, AppState};

struct Api {
    router: Router,
    manager: TaskManager,
}

fn fast_config() -> ManagerConfig {
    ManagerConfig {
        block_timeout: Duration::from_millis(200),
        scheduler_interval: Duration::from_millis(20),
        retry_backoff: Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
        ..ManagerConfig::default()
    }
}

async fn api_on(backends: Backends, start: bool) -> Api {
    let manager = TaskManager::new(backends, fast_config());
    let limits: BTreeMap<String, u32> = [("example".to_string(), 3), ("email".to_string(), 5)]
        .into_iter()
        .collect();
    handlers::register_builtin(&manager, &limits).unwrap();
    if start {
        manager.start().await.unwrap();
    }
    let state = Arc::new(AppState {
        manager: manager.clone(),
        max_body_bytes: 64 * 1024,
        health_timeout: Duration::from_secs(3),
    });
    Api {
        router: app(state),
        manager,
    }
}

async fn api() -> Api {
    api_on(memory::backends(), true).await
}

impl Api {
    async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    /// A request with an optional JSON body; answers status and JSON body.
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.raw(req.body(body).unwrap()).await
    }

    async fn raw(&self, req: Request<Body>) -> (StatusCode, Value) {
        let (status, headers, body) = self.send(req).await;
        let ct = headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "{status}: content type {ct:?}, body {}",
            String::from_utf8_lossy(&body)
        );
        let v: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{status}: not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        (status, v)
    }

    async fn submit(&self, body: Value) -> String {
        let (status, v) = self.call("POST", "/api/v1/tasks", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["task_id"].as_str().unwrap().to_string()
    }

    async fn task(&self, id: &str) -> Value {
        let (status, v) = self.call("GET", &format!("/api/v1/tasks/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    async fn wait_status(&self, id: &str, want: &str) -> Value {
        let start = Instant::now();
        loop {
            let t = self.task(id).await;
            if t["status"] == want {
                return t;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "task {id} still {} (want {want}): {t}",
                t["status"]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asserts a JSON error answer with `status`, `code` and (when given) `field`.
fn assert_error(got: &(StatusCode, Value), status: u16, code: &str, field: Option<&str>) {
    let (s, v) = got;
    assert_eq!(s.as_u16(), status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        !v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{v}"
    );
    if let Some(f) = field {
        assert_eq!(v["error"]["field"], f, "{v}");
    }
}

#[tokio::test]
async fn submit_get_and_result_keep_the_go_shapes() {
    let api = api().await;
    let (status, v) = api
        .call(
            "POST",
            "/api/v1/tasks",
            Some(json!({"type": "example", "payload": {"message": "hi", "duration_ms": 10}, "priority": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["task_id"].as_str().unwrap().to_string();
    assert_eq!(v["status"], "pending");
    assert_eq!(v["task"]["id"], id.as_str());
    assert_eq!(v["task"]["type"], "example");
    assert_eq!(v["task"]["priority"], 1);
    assert_eq!(v["task"]["payload"]["message"], "hi");
    assert!(v["task"]["created_at"].as_str().unwrap().ends_with('Z'));

    let done = api.wait_status(&id, "success").await;
    for field in [
        "id",
        "type",
        "payload",
        "priority",
        "status",
        "attempts",
        "max_retries",
        "created_at",
        "started_at",
        "finished_at",
        "result",
        "worker",
    ] {
        assert!(done.get(field).is_some(), "no {field} in {done}");
    }
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["result"]["message"], "hi");

    // Default priority and payload.
    let id = api.submit(json!({"type": "noop"})).await;
    let t = api.task(&id).await;
    assert_eq!(t["priority"], 5);
    assert_eq!(t["payload"], json!({}));
}

#[tokio::test]
async fn list_by_status_with_limit() {
    let api = api().await;
    for _ in 0..3 {
        api.submit(json!({"type": "example", "delay_ms": 60_000}))
            .await;
    }
    let (status, v) = api
        .call("GET", "/api/v1/tasks?status=scheduled&limit=2", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["count"], 2);
    assert_eq!(v["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(v["status"], "scheduled");
    assert_eq!(v["limit"], 2);
    assert_eq!(v["tasks"][0]["status"], "scheduled");
    // Default status is pending, default limit 100.
    let (status, v) = api.call("GET", "/api/v1/tasks", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "pending");
    assert_eq!(v["limit"], 100);
}

#[tokio::test]
async fn batch_is_all_or_nothing() {
    let api = api().await;
    let (status, v) = api
        .call(
            "POST",
            "/api/v1/tasks/batch",
            Some(json!([
                {"type": "noop"},
                {"type": "email", "payload": {"to": "a@b.c", "duration_ms": 1}},
                {"type": "example", "payload": {"duration_ms": 1}, "priority": 9}
            ])),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["count"], 3);
    let ids: Vec<String> = v["task_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        api.wait_status(id, "success").await;
    }

    let bad = [
        (
            json!([{"type": "noop", "delay_ms": 60000}, {"type": "noop", "priority": 12}]),
            "[1].priority",
            "invalid_input",
        ),
        (
            json!([{"type": "noop", "delay_ms": 60000}, {"type": "nope"}]),
            "[1].type",
            "unknown_task_type",
        ),
        (
            json!([{"type": "noop", "delay_ms": 60000}, {"payload": {}}]),
            "[1].type",
            "invalid_input",
        ),
        (json!([]), "body", "invalid_input"),
    ];
    for (body, field, code) in bad {
        let got = api.call("POST", "/api/v1/tasks/batch", Some(body)).await;
        assert_error(&got, 400, code, Some(field));
    }
    let (_, v) = api
        .call("GET", "/api/v1/tasks?status=scheduled", None)
        .await;
    assert_eq!(v["count"], 0, "a rejected batch stored nothing: {v}");
}

#[tokio::test]
async fn bad_input_is_a_4xx_json_error_naming_the_problem() {
    let api = api().await;
    let post = |body: &str, ct: Option<&str>| {
        let mut r = Request::builder().method("POST").uri("/api/v1/tasks");
        if let Some(ct) = ct {
            r = r.header(header::CONTENT_TYPE, ct);
        }
        r.body(Body::from(body.to_string())).unwrap()
    };
    let json_ct = Some("application/json");

    assert_error(
        &api.raw(post("{\"type\": ", json_ct)).await,
        400,
        "malformed_json",
        None,
    );
    assert_error(
        &api.raw(post("", json_ct)).await,
        400,
        "malformed_json",
        None,
    );
    assert_error(
        &api.raw(post("[1,2]", json_ct)).await,
        400,
        "invalid_input",
        None,
    );
    assert_error(
        &api.raw(post(r#"{"type":"example"}"#, Some("text/plain")))
            .await,
        415,
        "unsupported_media_type",
        None,
    );
    assert_error(
        &api.raw(post(r#"{"type":"example"}"#, None)).await,
        415,
        "unsupported_media_type",
        None,
    );
    let big = format!(
        r#"{{"type":"example","payload":{{"blob":"{}"}}}}"#,
        "x".repeat(70 * 1024)
    );
    assert_error(
        &api.raw(post(&big, json_ct)).await,
        413,
        "payload_too_large",
        None,
    );

    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"payload": {}}), "invalid_input", "type"),
        (json!({"type": ""}), "invalid_input", "type"),
        (json!({"type": "a b"}), "invalid_input", "type"),
        (json!({"type": 7}), "invalid_input", "type"),
        (json!({"type": "nope"}), "unknown_task_type", "type"),
        (
            json!({"type": "example", "priority": 10}),
            "invalid_input",
            "priority",
        ),
        (
            json!({"type": "example", "priority": -1}),
            "invalid_input",
            "priority",
        ),
        (
            json!({"type": "example", "priority": "high"}),
            "invalid_input",
            "priority",
        ),
        (
            json!({"type": "example", "max_retries": 101}),
            "invalid_input",
            "max_retries",
        ),
        (
            json!({"type": "example", "max_retries": -1}),
            "invalid_input",
            "max_retries",
        ),
        (
            json!({"type": "example", "timeout_ms": 0}),
            "invalid_input",
            "timeout_ms",
        ),
        (
            json!({"type": "example", "delay_ms": 1000u64 * 3600 * 24 * 400}),
            "invalid_input",
            "delay_ms",
        ),
        (
            json!({"type": "example", "run_at": "tomorrow"}),
            "invalid_input",
            "run_at",
        ),
        (
            json!({"type": "example", "run_at": 1700000000000u64}),
            "invalid_input",
            "run_at",
        ),
        (
            json!({"type": "example", "delay_ms": 5, "run_at": "2030-01-01T00:00:00Z"}),
            "invalid_input",
            "run_at",
        ),
        (
            json!({"type": "example", "dealy_ms": 5}),
            "invalid_input",
            "dealy_ms",
        ),
    ];
    for (body, code, field) in cases {
        let got = api.call("POST", "/api/v1/tasks", Some(body.clone())).await;
        assert_error(&got, 400, code, Some(field));
    }

    let gets = [
        ("/api/v1/tasks?status=done", "status"),
        ("/api/v1/tasks?limit=0", "limit"),
        ("/api/v1/tasks?limit=1001", "limit"),
        ("/api/v1/tasks?limit=ten", "limit"),
        ("/api/v1/tasks?limit=-1", "limit"),
        ("/api/v1/tasks?stat=pending", "stat"),
        ("/api/v1/dead-letters?limit=5000", "limit"),
        ("/api/v1/tasks/not-a-uuid", "task_id"),
        ("/api/v1/tasks/..%2F..%2Fetc", "task_id"),
    ];
    for (uri, field) in gets {
        assert_error(
            &api.call("GET", uri, None).await,
            400,
            "invalid_input",
            Some(field),
        );
    }
    assert_error(
        &api.call("POST", "/api/v1/tasks/nope/cancel", None).await,
        400,
        "invalid_input",
        Some("task_id"),
    );
    let missing = "/api/v1/tasks/01936f3e-8f6a-7c3b-9d2e-1a2b3c4d5e6f";
    assert_error(
        &api.call("GET", missing, None).await,
        404,
        "not_found",
        None,
    );

    for (body, field) in [
        (
            json!({"task_type": "example", "max_concurrency": 0}),
            "max_concurrency",
        ),
        (
            json!({"task_type": "example", "max_concurrency": -3}),
            "max_concurrency",
        ),
        (json!({"task_type": "example"}), "max_concurrency"),
        (json!({"task_type": "", "max_concurrency": 2}), "type"),
    ] {
        let got = api.call("POST", "/api/v1/concurrency", Some(body)).await;
        assert_error(&got, 400, "invalid_input", Some(field));
    }

    assert_error(
        &api.call("GET", "/api/v1/nothing", None).await,
        404,
        "route_not_found",
        None,
    );
    assert_error(
        &api.call("GET", "/", None).await,
        404,
        "route_not_found",
        None,
    );
    assert_error(
        &api.call("PUT", "/api/v1/tasks", None).await,
        405,
        "method_not_allowed",
        None,
    );
    assert_error(
        &api.call("DELETE", "/api/v1/stats", None).await,
        405,
        "method_not_allowed",
        None,
    );

    // Nothing was stored by any of that.
    let (_, stats) = api.call("GET", "/api/v1/stats", None).await;
    let stored: u64 = [
        "pending_tasks",
        "processing_tasks",
        "success_tasks",
        "failed_tasks",
        "scheduled_tasks",
        "retrying_tasks",
        "cancelled_tasks",
    ]
    .iter()
    .map(|k| stats[k].as_u64().unwrap())
    .sum();
    assert_eq!(stored, 0, "{stats}");
}

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

#[tokio::test]
async fn monitoring_endpoints_keep_the_go_shapes() {
    let api = api().await;
    let id = api
        .submit(json!({"type": "email", "payload": {"duration_ms": 1}}))
        .await;
    api.wait_status(&id, "success").await;

    let (status, v) = api.call("GET", "/api/v1/stream", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let si = &v["stream_info"];
    for f in ["length", "groups", "consumers", "queues"] {
        assert!(si.get(f).is_some(), "no {f}: {v}");
    }
    let consumer = &si["consumers"][0];
    for f in ["name", "pending", "idle"] {
        assert!(consumer.get(f).is_some(), "no consumers[0].{f}: {v}");
    }

    let (status, v) = api.call("GET", "/api/v1/workers", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["total_workers"], 10);
    assert!(v["processed_tasks"].as_u64().unwrap() >= 1, "{v}");
    for f in ["active_workers", "failed_tasks", "uptime"] {
        assert!(v[f].is_u64(), "no {f}: {v}");
    }
    // Nanoseconds: the manager has been up for more than a microsecond.
    assert!(v["uptime"].as_u64().unwrap() > 1_000, "{v}");

    let (status, v) = api.call("GET", "/api/v1/stats", None).await;
    assert_eq!(status, StatusCode::OK);
    for f in [
        "pending_tasks",
        "processing_tasks",
        "success_tasks",
        "failed_tasks",
        "total_workers",
        "active_workers",
    ] {
        assert!(v[f].is_u64(), "no {f}: {v}");
    }
    assert!(
        v["stream_info"]["length"].is_u64() && v["stream_info"]["groups"].is_u64(),
        "{v}"
    );
    assert!(
        v["instance_id"].as_str().unwrap().starts_with("xqueue-"),
        "{v}"
    );
    assert_eq!(v["is_running"], true);
    assert_eq!(v["success_tasks"], 1);
    assert_eq!(v["backend"], "memory");

    let (status, v) = api.call("GET", "/api/v1/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["backend"], "memory");

    let (status, headers, body) = api
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(body).unwrap();
    for needle in [
        "# TYPE xqueue_tasks gauge",
        "xqueue_tasks{status=\"success\"} 1",
        "xqueue_tasks{status=\"pending\"} 0",
        "xqueue_workers_total 10",
        "# TYPE xqueue_tasks_processed_total counter",
        "xqueue_tasks_processed_total 1",
        "xqueue_queue_length{queue=\"email.normal\"}",
        "xqueue_stream_length",
    ] {
        assert!(text.contains(needle), "no {needle:?} in\n{text}");
    }
}

#[tokio::test]
async fn concurrency_limits_get_and_set() {
    let api = api().await;
    let (status, v) = api.call("GET", "/api/v1/concurrency", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["concurrency_limits"], json!({"example": 3, "email": 5}));
    let (status, v) = api
        .call(
            "POST",
            "/api/v1/concurrency",
            Some(json!({"task_type": "example", "max_concurrency": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"task_type": "example", "max_concurrency": 7}));
    let (_, v) = api.call("GET", "/api/v1/concurrency", None).await;
    assert_eq!(v["concurrency_limits"]["example"], 7);
}

#[tokio::test]
async fn the_example_limit_holds() {
    let api = api().await;
    let body: Vec<Value> = (0..9)
        .map(|_| json!({"type": "example", "payload": {"duration_ms": 300}}))
        .collect();
    let (status, v) = api
        .call("POST", "/api/v1/tasks/batch", Some(Value::Array(body)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let start = Instant::now();
    let mut most = 0;
    while start.elapsed() < Duration::from_secs(10) {
        let (_, s) = api.call("GET", "/api/v1/stats", None).await;
        most = most.max(s["processing_tasks"].as_u64().unwrap());
        if s["success_tasks"] == 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(most, 3, "example runs 3 at once");
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let backends = Backends {
        queue: Arc::new(memory::MemoryQueue::new(2)),
        ..memory::backends()
    };
    // Not started: nothing drains the queue.
    let api = api_on(backends, false).await;
    api.submit(json!({"type": "noop"})).await;
    api.submit(json!({"type": "noop"})).await;
    let (status, headers, body) = api
        .send(
            Request::post("/api/v1/tasks")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"type":"noop"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "queue_full");
    drop(api.manager);
}

#[tokio::test]
async fn a_shutting_down_manager_answers_503() {
    let api = api().await;
    api.manager.shutdown(Duration::from_secs(1)).await;
    let got = api
        .call("POST", "/api/v1/tasks", Some(json!({"type": "noop"})))
        .await;
    assert_error(&got, 503, "shutting_down", None);
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let api = api().await;
    let (status, doc) = api.call("GET", "/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let routes = [
        ("post", "/api/v1/tasks"),
        ("get", "/api/v1/tasks"),
        ("post", "/api/v1/tasks/batch"),
        ("get", "/api/v1/tasks/{task_id}"),
        ("post", "/api/v1/tasks/{task_id}/cancel"),
        ("get", "/api/v1/dead-letters"),
        ("delete", "/api/v1/dead-letters"),
        ("post", "/api/v1/dead-letters/requeue"),
        ("get", "/api/v1/stream"),
        ("get", "/api/v1/workers"),
        ("get", "/api/v1/stats"),
        ("post", "/api/v1/concurrency"),
        ("get", "/api/v1/concurrency"),
        ("get", "/api/v1/health"),
        ("get", "/metrics"),
        ("get", "/api/v1/openapi.json"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let listed: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        listed,
        routes.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (method, path) in routes {
        assert!(paths[path].get(method).is_some(), "{method} {path} missing");
        // And it is really served (not a 404/405 from the router).
        let uri = path.replace("{task_id}", "01936f3e-8f6a-7c3b-9d2e-1a2b3c4d5e6f");
        let req = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = api.send(req).await;
        let code = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_default();
        assert!(
            code != "route_not_found" && code != "method_not_allowed",
            "{method} {uri}: {status} {code}"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "SubmitTaskRequest",
        "TaskResponse",
        "ErrorBody",
        "StatsResponse",
        "StreamResponse",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
    assert_eq!(
        doc,
        serde_json::to_value(xqueue_server::openapi::openapi()).unwrap()
    );
}
