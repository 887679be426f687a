//! Your own task type served by XQueue's REST API.
//!
//! ```text
//! cargo run -p xqueue-server --example custom_handler            # in-memory
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p xqueue-server --example custom_handler
//!
//! curl -X POST http://127.0.0.1:8080/api/v1/tasks -H 'Content-Type: application/json' \
//!      -d '{"type": "resize", "payload": {"width": 640}}'
//! curl http://127.0.0.1:8080/api/v1/tasks/<task_id>
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use xqueue_core::{
    memory, HandlerOptions, ManagerConfig, Task, TaskError, TaskHandler, TaskManager,
};
use xqueue_server::{app, AppState};

/// Resizes an image (pretends to): `{"width": 640}` → `{"resized_to": 640}`.
struct ResizeHandler;

#[async_trait]
impl TaskHandler for ResizeHandler {
    fn task_type(&self) -> &str {
        "resize"
    }

    async fn handle(&self, task: &Task) -> Result<Value, TaskError> {
        let width = task.payload["width"]
            .as_u64()
            // A payload that can never work: dead-letter it at once, no retries.
            .ok_or_else(|| TaskError::fatal("payload.width must be a whole number"))?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(json!({ "resized_to": width }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let backends = match std::env::var("REDIS_URL") {
        Ok(url) => xqueue_redis::RedisBackend::connect(xqueue_redis::RedisConfig::new(url))
            .await?
            .backends(),
        Err(_) => memory::backends(),
    };
    let manager = TaskManager::new(backends, ManagerConfig::default());
    // At most 4 resizes at once across every instance; 2 retries after a failed attempt;
    // 30 s per attempt.
    manager.register_handler_with(
        Arc::new(ResizeHandler),
        HandlerOptions {
            max_concurrency: Some(4),
            max_retries: 2,
            timeout: Some(Duration::from_secs(30)),
        },
    )?;
    // The built-in `example`, `email` and `noop` types too, if you like.
    xqueue_server::handlers::register_builtin(&manager, &Default::default())?;
    manager.start().await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    tracing::info!(addr = %listener.local_addr()?, "serving");
    axum::serve(listener, app(AppState::new(manager.clone())))
        .with_graceful_shutdown(xqueue_server::server::shutdown_signal())
        .await?;
    // Running tasks get 30 s to finish; the rest go back to the queue.
    let report = manager.shutdown(Duration::from_secs(30)).await;
    tracing::info!(?report, "stopped");
    Ok(())
}
