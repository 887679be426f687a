//! Connections: one shared, self-healing connection for ordinary commands, and a small pool of
//! dedicated connections for blocking reads.
//!
//! A blocking `XREADGROUP … BLOCK` on the shared (multiplexed) connection would stall every
//! command queued behind it, and the driver's default response timeout (500 ms) would cut it
//! short, so each blocking read takes a connection of its own whose answer may take the block
//! time plus the response timeout.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Cmd, Value};
use xqueue_core::{Error, Result};

use crate::config::RedisConfig;
use crate::error::{self, KIND};

/// Reconnection attempts of the shared connection per lost connection (each command that
/// finds the connection lost starts a new round).
const RECONNECT_ATTEMPTS: usize = 4;

pub(crate) struct Connections {
    client: Client,
    shared: ConnectionManager,
    idle: Mutex<Vec<MultiplexedConnection>>,
    max_idle: usize,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl Connections {
    /// Opens the shared connection (failing with [`Error::Unavailable`] if Redis can't be
    /// reached).
    pub(crate) async fn open(config: &RedisConfig) -> Result<Self> {
        if config.url.starts_with("rediss://") || config.url.starts_with("valkeys://") {
            #[cfg(feature = "tls")]
            {
                // Ignored when a provider is already installed.
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            #[cfg(not(feature = "tls"))]
            return Err(Error::invalid(
                "url",
                "rediss:// needs xqueue-redis's `tls` feature",
            ));
        }
        let client = Client::open(config.url.as_str())
            .map_err(|e| Error::invalid("url", format!("{}: {e}", config.redacted_url())))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(RECONNECT_ATTEMPTS)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(config.reconnect_max_delay);
        let shared = ConnectionManager::new_with_config(client.clone(), manager_config)
            .await
            .map_err(|e| match error::map(e) {
                Error::Unavailable { message, .. } => Error::Unavailable {
                    backend: KIND,
                    message: format!("cannot connect to {}: {message}", config.redacted_url()),
                },
                other => other,
            })?;
        Ok(Connections {
            client,
            shared,
            idle: Mutex::new(Vec::new()),
            max_idle: config.blocking_connections,
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
        })
    }

    /// The shared connection (a cheap handle; it reconnects by itself after a failure).
    pub(crate) fn shared(&self) -> ConnectionManager {
        self.shared.clone()
    }

    /// Runs a command that may block for up to `block` on a dedicated connection.
    ///
    /// A reused connection that turns out to be dead (Redis restarted while it sat idle) is
    /// replaced once; any other failure is returned and the connection dropped.
    pub(crate) async fn blocking(&self, cmd: &Cmd, block: Duration) -> redis::RedisResult<Value> {
        let deadline = block + self.response_timeout;
        let (mut conn, reused) = match self.take_idle() {
            Some(c) => (c, true),
            None => (self.open_blocking().await?, false),
        };
        let mut result = run_with_deadline(&mut conn, cmd, deadline).await;
        if reused && matches!(&result, Err(e) if e.is_io_error()) {
            conn = self.open_blocking().await?;
            result = run_with_deadline(&mut conn, cmd, deadline).await;
        }
        if result.is_ok() {
            self.give_back(conn);
        }
        result
    }

    /// Closes the idle blocking connections.
    pub(crate) fn close_idle(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn take_idle(&self) -> Option<MultiplexedConnection> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn give_back(&self, conn: MultiplexedConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    async fn open_blocking(&self) -> redis::RedisResult<MultiplexedConnection> {
        // No response timeout of the driver's own: `run_with_deadline` sets one per command.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None);
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

async fn run_with_deadline(
    conn: &mut MultiplexedConnection,
    cmd: &Cmd,
    deadline: Duration,
) -> redis::RedisResult<Value> {
    match tokio::time::timeout(deadline, cmd.query_async(conn)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer to a blocking read within {deadline:?}"),
        )
        .into()),
    }
}
