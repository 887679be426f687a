//! Redis containers for tests.
//!
//! The image comes from `XQUEUE_REDIS_IMAGE`: by default the official [`DEFAULT_IMAGE`] (for
//! machines that can pull it); `scripts/test.sh` sets `xqueue-test/redis:7.0.15`, built
//! locally by `scripts/build-images.sh` from Debian's redis-server. Each test starts its own
//! server; it is removed when the [`RedisServer`] is dropped. The host port is fixed at start,
//! so a server stopped and started again (fault injection) keeps its URL.

use std::time::{Duration, Instant};

use testcontainers::core::{ContainerPort, IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use xqueue_redis::{RedisBackend, RedisConfig};

use crate::docker::{free_port, require_docker};

/// The image used when `XQUEUE_REDIS_IMAGE` is unset (XAUTOCLAIM needs 6.2 or newer).
pub const DEFAULT_IMAGE: &str = "redis:7.2";

/// Durable by default: an append-only file, synced every second.
const BASE_ARGS: [&str; 5] = [
    "redis-server",
    "--protected-mode",
    "no",
    "--appendonly",
    "yes",
];

/// A Redis server in a container; removed when dropped.
pub struct RedisServer {
    container: ContainerAsync<GenericImage>,
    url: String,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("id", &self.container.id())
            .field("url", &self.url)
            .finish()
    }
}

impl RedisServer {
    /// Starts a server (append-only file on) and waits until it answers PING.
    ///
    /// Returns `None` (the test should return early) when Docker is unavailable and not
    /// required.
    pub async fn start() -> Option<RedisServer> {
        Self::start_with(&[]).await
    }

    /// Like [`RedisServer::start`], with more `redis-server` arguments (e.g.
    /// `["--appendfsync", "always"]`).
    pub async fn start_with(extra_args: &[&str]) -> Option<RedisServer> {
        if !require_docker() {
            return None;
        }
        let image = image();
        let (name, tag) = image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
        let args: Vec<String> = BASE_ARGS
            .iter()
            .chain(extra_args)
            .map(|s| s.to_string())
            .collect();
        let mut last_error = String::new();
        // A free port can be taken by someone else before Docker binds it: try a few.
        for _ in 0..3 {
            let port = free_port();
            let started = GenericImage::new(name, tag)
                .with_exposed_port(6379.tcp())
                .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
                .with_cmd(args.clone())
                .with_mapped_port(port, ContainerPort::Tcp(6379))
                .with_startup_timeout(Duration::from_secs(60))
                .start()
                .await;
            match started {
                Ok(container) => {
                    let server = RedisServer {
                        container,
                        url: format!("redis://127.0.0.1:{port}"),
                    };
                    server.wait_ready(Duration::from_secs(30)).await;
                    return Some(server);
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        panic!("starting {image}: {last_error}");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The container, for fault injection.
    pub fn container(&self) -> &ContainerAsync<GenericImage> {
        &self.container
    }

    /// Kills the server at once (no shutdown save).
    pub async fn kill(&self) {
        self.container
            .stop_with_timeout(Some(0))
            .await
            .expect("stopping the Redis container");
    }

    /// Starts the stopped server again on the same port and waits until it answers.
    pub async fn restart(&self) {
        self.container
            .start()
            .await
            .expect("starting the Redis container again");
        self.wait_ready(Duration::from_secs(30)).await;
    }

    /// A backend on this server with its own key prefix.
    pub async fn backend(&self, prefix: &str) -> RedisBackend {
        self.backend_with(RedisConfig::new(&self.url).key_prefix(prefix))
            .await
    }

    /// A backend on this server with `config` (its URL is replaced by this server's).
    pub async fn backend_with(&self, config: RedisConfig) -> RedisBackend {
        RedisBackend::connect(RedisConfig {
            url: self.url.clone(),
            ..config
        })
        .await
        .expect("connecting to the Redis container")
    }

    /// A plain connection, for looking at or breaking what the backend wrote.
    pub async fn raw(&self) -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(self.url.as_str())
            .expect("a valid URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connecting to the Redis container")
    }

    /// Polls PING until it answers PONG (not LOADING), or panics after `within`.
    pub async fn wait_ready(&self, within: Duration) {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < within {
            match ping(&self.url).await {
                Ok(()) => return,
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("Redis at {} not ready after {within:?}: {last}", self.url);
    }
}

/// The image to run: `XQUEUE_REDIS_IMAGE` or [`DEFAULT_IMAGE`].
pub fn image() -> String {
    std::env::var("XQUEUE_REDIS_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE.into())
}

async fn ping(url: &str) -> Result<(), String> {
    let client = ::redis::Client::open(url).map_err(|e| e.to_string())?;
    let config = ::redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    let pong: String = match ::redis::cmd("PING").query_async(&mut conn).await {
        Ok(pong) => pong,
        // A server with a password answers, so it is up.
        Err(e) if e.code() == Some("NOAUTH") => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    if pong == "PONG" {
        Ok(())
    } else {
        Err(format!("PING answered {pong:?}"))
    }
}

/// Destroys consumer group `group` of `stream` (as an operator might by hand).
pub async fn destroy_group(
    raw: &mut ::redis::aio::MultiplexedConnection,
    stream: &str,
    group: &str,
) {
    let _: i64 = ::redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(stream)
        .arg(group)
        .query_async(raw)
        .await
        .unwrap();
}

/// A key prefix no other test uses: `xq-test-<uuid>`.
pub fn unique_prefix() -> String {
    format!("xq-test-{}", uuid::Uuid::new_v4().simple())
}
