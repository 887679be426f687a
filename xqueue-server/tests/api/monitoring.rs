//! Monitoring, limits, back-pressure and the OpenAPI document.

use super::support::*;

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
