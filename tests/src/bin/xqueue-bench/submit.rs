//! How tasks reach XQueue in a measurement: through the library (`TaskManager::submit`) or
//! through the REST API (xqueue-server's router served in process on 127.0.0.1).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use xqueue_core::{NewTask, TaskManager};

use crate::latency::{payload, Probe};
use crate::setup::{manager, Target, TASK_TYPE};
use crate::Ctx;

/// Library calls or HTTP requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `TaskManager::submit` / `submit_batch`.
    Library,
    /// `POST /api/v1/tasks` / `POST /api/v1/tasks/batch`.
    Http,
}

/// Submits bench tasks one way or the other.
#[derive(Clone)]
pub enum Submitter {
    /// Through the library.
    Library(TaskManager),
    /// Through HTTP.
    Http {
        /// A client with a connection pool (keep-alive).
        client: reqwest::Client,
        /// `http://127.0.0.1:port/api/v1`.
        base: String,
    },
}

impl Submitter {
    /// Submits task `seq`, carrying `sent` (ns) when given.
    pub async fn one(&self, seq: u64, sent: Option<u64>) -> crate::Result<()> {
        match self {
            Submitter::Library(m) => {
                m.submit(NewTask::new(TASK_TYPE, payload(seq, sent)))
                    .await?;
                Ok(())
            }
            Submitter::Http { client, base } => {
                let body = json!({ "type": TASK_TYPE, "payload": payload(seq, sent) });
                let r = client
                    .post(format!("{base}/tasks"))
                    .json(&body)
                    .send()
                    .await?;
                created(r).await
            }
        }
    }

    /// Submits tasks `seqs` in one call.
    pub async fn batch(&self, seqs: Range<u64>) -> crate::Result<()> {
        match self {
            Submitter::Library(m) => {
                let tasks = seqs
                    .map(|i| NewTask::new(TASK_TYPE, payload(i, None)))
                    .collect();
                m.submit_batch(tasks).await?;
                Ok(())
            }
            Submitter::Http { client, base } => {
                let body: Vec<_> = seqs
                    .map(|i| json!({ "type": TASK_TYPE, "payload": payload(i, None) }))
                    .collect();
                let r = client
                    .post(format!("{base}/tasks/batch"))
                    .json(&body)
                    .send()
                    .await?;
                created(r).await
            }
        }
    }
}

async fn created(r: reqwest::Response) -> crate::Result<()> {
    if r.status() == reqwest::StatusCode::CREATED {
        // Read the body, as a client would.
        r.bytes().await?;
        Ok(())
    } else {
        let status = r.status();
        Err(format!("{status}: {}", r.text().await.unwrap_or_default()).into())
    }
}

/// One measurement's setup: a manager on fresh backends with the bench handler, and the way
/// tasks are submitted to it.
pub struct Rig {
    /// The manager.
    pub manager: TaskManager,
    /// Where the handler reports starts.
    pub probe: Arc<Probe>,
    /// How tasks are submitted.
    pub submitter: Submitter,
    server: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    started: bool,
}

impl Rig {
    /// A manager (not started) on fresh backends under `prefix`, reached `via` the library or
    /// HTTP.
    pub async fn new(
        ctx: &Ctx,
        target: &Target,
        prefix: &str,
        max_len: u64,
        via: Via,
    ) -> crate::Result<Rig> {
        let (m, probe) = manager(ctx, target, prefix, max_len).await?;
        let (submitter, server) = match via {
            Via::Library => (Submitter::Library(m.clone()), None),
            Via::Http => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                let app = xqueue_server::app(xqueue_server::AppState::new(m.clone()));
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let server = tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await
                });
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(256)
                    .tcp_nodelay(true)
                    .timeout(Duration::from_secs(30))
                    .build()?;
                let base = format!("http://{addr}/api/v1");
                (Submitter::Http { client, base }, Some((stop, server)))
            }
        };
        Ok(Rig {
            manager: m,
            probe,
            submitter,
            server,
            started: false,
        })
    }

    /// Starts the worker pool.
    pub async fn start(&mut self) -> crate::Result<()> {
        self.manager.start().await?;
        self.started = true;
        Ok(())
    }

    /// Stops the HTTP server and the manager.
    pub async fn close(self) {
        if let Some((stop, server)) = self.server {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
        if self.started {
            self.manager.shutdown(Duration::from_secs(5)).await;
        }
    }
}
