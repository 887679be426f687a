//! Submit, get, list and batch keep the Go shapes.

use super::support::*;

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
