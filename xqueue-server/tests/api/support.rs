//! Helpers of the router tests: an `Api` over the memory backend and JSON assertions.

pub use std::collections::BTreeMap;
pub use std::sync::Arc;
pub use std::time::{Duration, Instant};

pub use axum::body::Body;
pub use axum::http::{header, Request, StatusCode};
pub use axum::Router;
pub use http_body_util::BodyExt;
pub use serde_json::{json, Value};
pub use tower::ServiceExt;
pub use xqueue_core::{memory, Backends, Backoff, ManagerConfig, TaskManager};
pub use xqueue_server::{app, handlers, AppState};

pub struct Api {
    pub router: Router,
    pub manager: TaskManager,
}

pub fn fast_config() -> ManagerConfig {
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

pub async fn api_on(backends: Backends, start: bool) -> Api {
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

pub async fn api() -> Api {
    api_on(memory::backends(), true).await
}

impl Api {
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
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
    pub async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
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

    pub async fn raw(&self, req: Request<Body>) -> (StatusCode, Value) {
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

    pub async fn submit(&self, body: Value) -> String {
        let (status, v) = self.call("POST", "/api/v1/tasks", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["task_id"].as_str().unwrap().to_string()
    }

    pub async fn task(&self, id: &str) -> Value {
        let (status, v) = self.call("GET", &format!("/api/v1/tasks/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    pub async fn wait_status(&self, id: &str, want: &str) -> Value {
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
pub fn assert_error(got: &(StatusCode, Value), status: u16, code: &str, field: Option<&str>) {
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
