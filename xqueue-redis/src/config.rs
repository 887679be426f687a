//! [`RedisConfig`]: where Redis is and how XQueue uses it.

use std::fmt;
use std::time::Duration;

use xqueue_core::{Error, Result};

/// How to reach Redis and how XQueue lays out its keys there.
///
/// `Default` gives the values documented per field. The consumer group, batch size, block
/// timeout and claim idle time are the task manager's settings (`ManagerConfig`), the same
/// for every backend.
///
/// # Behavior
/// - `Debug` shows the URL with its password replaced by `***`.
/// - [`RedisConfig::validate`] (called by `RedisBackend::connect`) rejects an empty prefix, a
///   zero `max_len` and zero timeouts with [`Error::InvalidInput`].
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[user][:password@]host[:port][/db]`, or `rediss://…` for TLS (with the default
    /// `tls` feature). Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// Prefix of every key XQueue writes, so several deployments can share one Redis.
    /// Default `xqueue`.
    pub key_prefix: String,
    /// Most messages a queue holds undelivered or pending (per consumer group). Publishing past
    /// it fails with [`Error::QueueFull`]; nothing is ever trimmed before every group has acked
    /// it. Default 100,000.
    pub max_len: u64,
    /// Longest wait for a connection to open. Default 5 s.
    pub connect_timeout: Duration,
    /// Longest wait for an answer to a (non-blocking) command. A blocking fetch waits for its
    /// block time plus this. Default 3 s.
    pub response_timeout: Duration,
    /// Longest pause between reconnection attempts after a lost connection. Default 2 s.
    pub reconnect_max_delay: Duration,
    /// Idle connections kept for blocking fetches (each running fetch uses one of its own).
    /// Default 16.
    pub blocking_connections: usize,
    /// Lease of concurrency permits taken by a holder that has not called `refresh` yet.
    /// Default 30 s.
    pub limiter_lease: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "xqueue".into(),
            max_len: 100_000,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(3),
            reconnect_max_delay: Duration::from_secs(2),
            blocking_connections: 16,
            limiter_lease: Duration::from_secs(30),
        }
    }
}

impl RedisConfig {
    /// The default configuration for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            ..Default::default()
        }
    }

    /// Sets the key prefix.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the most undelivered and pending messages per queue.
    pub fn max_len(mut self, max_len: u64) -> Self {
        self.max_len = max_len;
        self
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.key_prefix.is_empty() {
            return Err(Error::invalid("key_prefix", "must not be empty"));
        }
        if self.key_prefix.chars().any(|c| c.is_whitespace()) {
            return Err(Error::invalid("key_prefix", "must not contain whitespace"));
        }
        if self.max_len == 0 {
            return Err(Error::invalid("max_len", "must be at least 1"));
        }
        for (field, d) in [
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
            ("limiter_lease", self.limiter_lease),
        ] {
            if d.is_zero() {
                return Err(Error::invalid(field, "must be more than zero"));
            }
        }
        Ok(())
    }

    /// The URL with its password (if any) replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("key_prefix", &self.key_prefix)
            .field("max_len", &self.max_len)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .field("blocking_connections", &self.blocking_connections)
            .field("limiter_lease", &self.limiter_lease)
            .finish()
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // The last '@' of the authority ends the user info (a password may contain '@').
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let user_info = &rest[..at];
    let Some(colon) = user_info.find(':') else {
        return url.to_string();
    };
    format!(
        "{}{}:***{}",
        &url[..scheme_end],
        &user_info[..colon],
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        for (url, shown) in [
            ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
            ("rediss://alice:p@ss@host", "rediss://alice:***@host"),
            ("redis://alice@host", "redis://alice@host"),
            ("redis://host:6379", "redis://host:6379"),
        ] {
            let cfg = RedisConfig::new(url);
            let dbg = format!("{cfg:?}");
            assert!(dbg.contains(shown), "{dbg}");
            assert!(!dbg.contains("s3cret") && !dbg.contains("p@ss"), "{dbg}");
        }
    }

    #[test]
    fn validation() {
        assert!(RedisConfig::default().validate().is_ok());
        assert!(RedisConfig::default().key_prefix("").validate().is_err());
        assert!(RedisConfig::default().max_len(0).validate().is_err());
    }
}
