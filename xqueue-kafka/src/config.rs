//! [`KafkaConfig`]: where the brokers are and how XQueue uses them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use xqueue_core::{Error, Result};

/// Settings of a [`crate::KafkaBackend`]. `Default` gives the values documented per field.
///
/// # Behavior
/// - `Debug` never prints the SASL password, nor any extra property whose name contains
///   `password` or `secret`.
/// - [`KafkaConfig::validate`] (called by `connect`) rejects settings librdkafka or the broker
///   would refuse later, with [`Error::InvalidInput`] naming the field.
#[derive(Clone)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of brokers. Default `localhost:9092`.
    pub bootstrap_servers: String,
    /// Every queue `q` lives in topic `{topic_prefix}.{q}`, and XQueue group `g` is Kafka
    /// consumer group `{topic_prefix}.{g}`. Default `xqueue`.
    pub topic_prefix: String,
    /// Partitions of each topic XQueue creates; bounds how many group members share one queue
    /// (not how many tasks run at once). Default 6.
    pub partitions: i32,
    /// Replication factor of each topic XQueue creates. Default 1; use 3 in production.
    pub replication_factor: i32,
    /// A member that sends no heartbeat for this long is removed from the group and its
    /// partitions (with their un-acked messages) go to the others. Default 10 s.
    pub session_timeout: Duration,
    /// librdkafka's `max.poll.interval.ms`, also the group's rebalance timeout. XQueue polls
    /// continuously in a background thread, so this does not bound how long a task may run.
    /// Must be at least `session_timeout`. Default 30 s.
    pub max_poll_interval: Duration,
    /// How often the contiguous prefix of completed offsets is committed. Default 1 s.
    pub commit_interval: Duration,
    /// Longest time the broker holds a fetch request when no message is ready: an upper bound
    /// on publish-to-fetch latency for brokers that do not answer early. Default 100 ms.
    pub fetch_wait_max: Duration,
    /// Messages read ahead per queue and consumer; past this the queue's partitions are paused
    /// until the buffer is half empty, so one saturated queue never stalls another. Default 1000.
    pub buffer_per_queue: usize,
    /// When partitions are taken away in a rebalance, how long this member waits for its
    /// deliveries from them to be acked before it commits and lets go; deliveries still
    /// running after that are redelivered to the new owner (and may run twice). At most half
    /// of `max_poll_interval`. Default 10 s.
    pub revoke_drain: Duration,
    /// How long the first fetch of a new subscription waits for the group to assign partitions
    /// (on top of its `block`) before it gives up with an empty result. Default 60 s.
    pub assignment_timeout: Duration,
    /// Deadline of broker requests (delivery of a published message, metadata, admin,
    /// synchronous commits). Default 30 s.
    pub request_timeout: Duration,
    /// `security.protocol` (`plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`). Default: unset.
    pub security_protocol: Option<String>,
    /// `sasl.mechanisms` (`PLAIN`, `SCRAM-SHA-256`, …). Default: unset.
    pub sasl_mechanism: Option<String>,
    /// `sasl.username`. Default: unset.
    pub sasl_username: Option<String>,
    /// `sasl.password`; never printed by `Debug`. Default: unset.
    pub sasl_password: Option<String>,
    /// Extra librdkafka properties, applied last to every client (producer, consumers, admin),
    /// so they override XQueue's choices. Default: empty.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "localhost:9092".into(),
            topic_prefix: "xqueue".into(),
            partitions: 6,
            replication_factor: 1,
            session_timeout: Duration::from_secs(10),
            max_poll_interval: Duration::from_secs(30),
            commit_interval: Duration::from_secs(1),
            fetch_wait_max: Duration::from_millis(100),
            buffer_per_queue: 1000,
            revoke_drain: Duration::from_secs(10),
            assignment_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// The defaults, with `bootstrap_servers`.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.into(),
            ..Default::default()
        }
    }

    /// Sets the topic prefix.
    pub fn topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    /// Sets the partition count of new topics.
    pub fn partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions;
        self
    }

    /// Sets an extra librdkafka property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Checks the settings; `connect` calls it.
    pub fn validate(&self) -> Result<()> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(Error::invalid("bootstrap_servers", "must not be empty"));
        }
        if self.topic_prefix.is_empty()
            || !self
                .topic_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(Error::invalid(
                "topic_prefix",
                format!(
                    "{:?} must be non-empty and use only A-Z, a-z, 0-9, '.', '_' and '-'",
                    self.topic_prefix
                ),
            ));
        }
        if self.partitions < 1 {
            return Err(Error::invalid("partitions", "must be at least 1"));
        }
        if self.replication_factor < 1 {
            return Err(Error::invalid("replication_factor", "must be at least 1"));
        }
        if self.buffer_per_queue < 1 {
            return Err(Error::invalid("buffer_per_queue", "must be at least 1"));
        }
        if self.session_timeout < Duration::from_millis(1) {
            return Err(Error::invalid("session_timeout", "must be positive"));
        }
        if self.max_poll_interval < self.session_timeout {
            return Err(Error::invalid(
                "max_poll_interval",
                "must be at least session_timeout (librdkafka refuses otherwise)",
            ));
        }
        Ok(())
    }

    /// The topic of queue `queue`.
    pub(crate) fn topic(&self, queue: &str) -> String {
        format!("{}.{}", self.topic_prefix, queue)
    }

    /// The Kafka group id of XQueue group `group`: groups are namespaced by the topic prefix
    /// too, so deployments with different prefixes never share a group.
    pub(crate) fn group_id(&self, group: &str) -> String {
        format!("{}.{}", self.topic_prefix, group)
    }

    /// Connection and security settings shared by every client.
    pub(crate) fn common_properties(&self) -> Vec<(String, String)> {
        let mut props = vec![(
            "bootstrap.servers".to_string(),
            self.bootstrap_servers.clone(),
        )];
        let optional = [
            ("security.protocol", &self.security_protocol),
            ("sasl.mechanisms", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                props.push((key.to_string(), value.clone()));
            }
        }
        props
    }
}

/// Whether a property's value must not be printed.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("secret")
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topic_prefix", &self.topic_prefix)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("session_timeout", &self.session_timeout)
            .field("max_poll_interval", &self.max_poll_interval)
            .field("commit_interval", &self.commit_interval)
            .field("fetch_wait_max", &self.fetch_wait_max)
            .field("buffer_per_queue", &self.buffer_per_queue)
            .field("revoke_drain", &self.revoke_drain)
            .field("assignment_timeout", &self.assignment_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field(
                "sasl_password",
                &self.sasl_password.as_ref().map(|_| "<redacted>"),
            )
            .field("properties", &properties)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let mut cfg = KafkaConfig::new("b:9092")
            .property("ssl.key.password", "hunter2")
            .property("linger.ms", "7");
        cfg.sasl_password = Some("s3cret-pw".into());
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("linger.ms"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn validate_rejects_bad_settings() {
        assert!(KafkaConfig::default().validate().is_ok());
        assert!(KafkaConfig::new("").validate().is_err());
        assert!(KafkaConfig::default().partitions(0).validate().is_err());
        assert!(KafkaConfig::default()
            .topic_prefix("a b")
            .validate()
            .is_err());
        let cfg = KafkaConfig {
            max_poll_interval: Duration::from_secs(1),
            ..Default::default()
        };
        assert!(matches!(
            cfg.validate(),
            Err(Error::InvalidInput {
                field: "max_poll_interval",
                ..
            })
        ));
        assert_eq!(
            KafkaConfig::default().topic("email.high"),
            "xqueue.email.high"
        );
    }
}
