//! The `xqueue-server` program: backend, handlers, HTTP and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use xqueue_core::{ShutdownReport, TaskManager};

use crate::backend::{self, StartupError};
use crate::config::ServerConfig;
use crate::{app, handlers, AppState};

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// No backend.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The task manager refused to register or start.
    #[error("task manager: {0}")]
    Manager(#[from] xqueue_core::Error),
    /// The listener could not be bound or failed.
    #[error("serving on {addr}: {source}")]
    Io {
        /// The listen address.
        addr: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// Runs `xqueue-server` with the built-in handlers until SIGINT or SIGTERM.
pub async fn run(config: ServerConfig) -> Result<ShutdownReport, ServerError> {
    run_with(config, |manager, limits| {
        handlers::register_builtin(manager, limits)
    })
    .await
}

/// Like [`run`], with handlers registered by `register` (given the per-type limits).
///
/// # Behavior
/// - Connects the backend of `--backend`, registers the handlers, starts the worker pool,
///   applies the limits of types without a handler, then listens on `--listen`.
/// - On SIGINT or SIGTERM: stops accepting connections, finishes in-flight requests, then
///   shuts the task manager down within `--shutdown-deadline` (tasks still running then are
///   given back to the queue and run again elsewhere, never lost).
pub async fn run_with<F>(config: ServerConfig, register: F) -> Result<ShutdownReport, ServerError>
where
    F: FnOnce(&TaskManager, &std::collections::BTreeMap<String, u32>) -> xqueue_core::Result<()>,
{
    tracing::info!(?config, "starting xqueue-server");
    let backends = backend::connect(&config).await?;
    let manager = TaskManager::new(backends, config.manager_config());
    let limits = config.limit_map();
    register(&manager, &limits)?;
    manager.start().await?;
    let types = manager.task_types();
    for (task_type, limit) in &limits {
        if !types.contains(task_type) {
            manager.set_concurrency_limit(task_type, *limit).await?;
        }
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Io {
            addr: config.listen.to_string(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(%addr, instance_id = %manager.config().instance_id, backend = manager.backends().queue.kind(), "listening");
    let state = AppState::from_config(manager.clone(), &config);
    serve(listener, state, shutdown_signal(), config.shutdown_deadline)
        .await
        .map_err(|source| ServerError::Io { addr, source })
}

/// Serves [`app`] on `listener` until `signal` completes, then shuts the state's task manager
/// down within `deadline`.
///
/// # Errors
/// The server's I/O errors, and [`std::io::ErrorKind::TimedOut`] when the task manager has
/// not stopped [`SHUTDOWN_GRACE`] after the deadline and one block timeout (what it still
/// held is redelivered, as after a crash).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    signal: impl Future<Output = ()> + Send + 'static,
    deadline: Duration,
) -> std::io::Result<ShutdownReport> {
    let manager = state.manager.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(signal)
        .await?;
    tracing::info!(?deadline, "HTTP server stopped; draining running tasks");
    let limit = deadline + manager.config().block_timeout + SHUTDOWN_GRACE;
    tokio::time::timeout(limit, manager.shutdown(deadline))
        .await
        .map_err(|_| {
            tracing::error!(?limit, "the task manager did not stop in time; exiting anyway (unacked deliveries are redelivered)");
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the task manager did not stop within {limit:?}"),
            )
        })
}

/// Time the task manager's shutdown may take beyond its deadline and one fetch (giving
/// deliveries back, recording outcomes, leaving the group) before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received; shutting down"),
        _ = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
