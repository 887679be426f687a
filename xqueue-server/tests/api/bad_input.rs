//! Every kind of bad input is a 4xx JSON error naming the problem.

use super::support::*;

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
