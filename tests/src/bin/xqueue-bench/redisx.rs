//! Looking at the Redis under test: INFO (commands, CPU, memory) and cleanup by key prefix.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

/// A plain connection for the bench's own look-ups.
#[derive(Clone)]
pub struct RedisProbe {
    url: String,
    conn: MultiplexedConnection,
}

/// `INFO commandstats` calls per command, and Redis's CPU seconds, at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Calls per command name.
    pub calls: BTreeMap<String, u64>,
    /// Microseconds spent per command name.
    pub usec: BTreeMap<String, u64>,
    /// `used_cpu_user + used_cpu_sys` of the server.
    pub cpu: f64,
}

impl RedisProbe {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> crate::Result<RedisProbe> {
        let client = redis::Client::open(url)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(RedisProbe {
            url: url.to_string(),
            conn,
        })
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new connection of its own (for the raw baseline's consumers).
    pub async fn dedicated(
        &self,
        response_timeout: Option<Duration>,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(response_timeout);
        redis::Client::open(self.url.as_str())?
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// The shared connection.
    pub fn conn(&self) -> MultiplexedConnection {
        self.conn.clone()
    }

    /// `INFO section` as field → value.
    pub async fn info(&self, section: &str) -> redis::RedisResult<HashMap<String, String>> {
        let text: String = redis::cmd("INFO")
            .arg(section)
            .query_async(&mut self.conn())
            .await?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect())
    }

    /// The server's version.
    pub async fn version(&self) -> String {
        self.info("server")
            .await
            .ok()
            .and_then(|m| m.get("redis_version").cloned())
            .unwrap_or_else(|| "unknown".into())
    }

    /// The server's CPU seconds so far (NaN when unknown).
    pub async fn cpu_secs(&self) -> f64 {
        match self.info("cpu").await {
            Ok(m) => {
                let get = |k: &str| m.get(k).and_then(|v| v.parse::<f64>().ok());
                match (get("used_cpu_user"), get("used_cpu_sys")) {
                    (Some(u), Some(s)) => u + s,
                    _ => f64::NAN,
                }
            }
            Err(_) => f64::NAN,
        }
    }

    /// Commands and CPU now.
    pub async fn snapshot(&self) -> Snapshot {
        let mut calls = BTreeMap::new();
        let mut usec = BTreeMap::new();
        if let Ok(m) = self.info("commandstats").await {
            for (k, v) in m {
                let Some(name) = k.strip_prefix("cmdstat_") else {
                    continue;
                };
                let field = |f: &str| {
                    v.split(',')
                        .find_map(|p| p.strip_prefix(f))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0)
                };
                calls.insert(name.to_string(), field("calls="));
                usec.insert(name.to_string(), field("usec="));
            }
        }
        Snapshot {
            calls,
            usec,
            cpu: self.cpu_secs().await,
        }
    }

    /// `used_memory` in bytes, after lazy frees have finished.
    pub async fn used_memory(&self) -> u64 {
        for _ in 0..200 {
            let m = self.info("memory").await.unwrap_or_default();
            let pending = m
                .get("lazyfree_pending_objects")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            if pending == 0 {
                return m
                    .get("used_memory")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        0
    }

    /// Deletes every key starting with `prefix` (SCAN + UNLINK).
    pub async fn delete_prefix(&self, prefix: &str) -> redis::RedisResult<u64> {
        let mut conn = self.conn();
        let pattern = format!("{prefix}*");
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(2000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

impl Snapshot {
    /// Every command's calls and microseconds per task between `self` and `later`, one per
    /// line, busiest first (for `XQUEUE_BENCH_COMMANDSTATS=1`).
    pub fn detail(&self, later: &Snapshot, tasks: u64) -> String {
        let tasks = tasks.max(1) as f64;
        let mut rows: Vec<(String, f64, f64)> = later
            .calls
            .iter()
            .map(|(k, v)| {
                let calls = v.saturating_sub(*self.calls.get(k).unwrap_or(&0)) as f64;
                let us = later
                    .usec
                    .get(k)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(*self.usec.get(k).unwrap_or(&0))
                    as f64;
                (k.clone(), calls / tasks, us / tasks)
            })
            .filter(|r| r.1 > 0.0)
            .collect();
        rows.sort_by(|a, b| b.2.total_cmp(&a.2));
        rows.iter()
            .map(|(k, c, u)| format!("  {k:<24} {c:>8.3} calls/task {u:>9.2} µs/task\n"))
            .collect()
    }

    /// Commands per task between `self` and `later`: the total and the busiest six.
    ///
    /// Commands run inside scripts are counted too (Redis 7 counts them), so the total is
    /// the work Redis did, not the round trips; `evalsha` counts the script calls.
    pub fn per_task_note(&self, later: &Snapshot, tasks: u64) -> String {
        let tasks = tasks.max(1) as f64;
        let mut diffs: Vec<(String, u64)> = later
            .calls
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.saturating_sub(*self.calls.get(k).unwrap_or(&0)),
                )
            })
            .filter(|(k, v)| *v > 0 && k != "info")
            .collect();
        diffs.sort_by_key(|d| std::cmp::Reverse(d.1));
        let total: u64 = diffs.iter().map(|d| d.1).sum();
        let top: Vec<String> = diffs
            .iter()
            .take(6)
            .map(|(k, v)| format!("{k} {:.2}", *v as f64 / tasks))
            .collect();
        let cpu = if later.cpu.is_nan() || self.cpu.is_nan() {
            String::new()
        } else {
            format!(
                "; redis cpu {:.1} µs/task",
                (later.cpu - self.cpu) * 1e6 / tasks
            )
        };
        format!(
            "redis cmds/task {:.1} ({}){cpu}",
            total as f64 / tasks,
            top.join(", ")
        )
    }
}
