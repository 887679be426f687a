//! [`RedisBackend`]: the queue contract on Redis Streams consumer groups.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use tracing::{debug, error, warn};
use xqueue_core::{
    Backends, Capabilities, Consumer, ConsumerInfo, Delivery, Error, FetchRequest, Message,
    QueueBackend, QueueInfo, QueueName, Receipt, Result,
};

use crate::codec;
use crate::config::RedisConfig;
use crate::conn::Connections;
use crate::entries::delivered;
use crate::error::{self, is_nogroup, KIND};
use crate::keys::Keys;
use crate::reply;
use crate::scripts::Scripts;
use crate::snapshot::{Kept, SNAPSHOTS_MAX};

/// XQueue's Redis backend: queues, task state and concurrency limits in one Redis.
///
/// One value implements [`QueueBackend`], [`xqueue_core::StateStore`] and
/// [`xqueue_core::ConcurrencyLimiter`]; clones share its connections. See the crate docs for
/// the key layout and the guarantees.
#[derive(Clone)]
pub struct RedisBackend {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: RedisConfig,
    pub(crate) keys: Keys,
    pub(crate) conn: Connections,
    pub(crate) scripts: Scripts,
    /// `(group, stream key)` pairs known to exist, so groups are created once per process.
    pub(crate) groups: Mutex<HashSet<(String, String)>>,
    /// The queues each consumer used, for `leave`.
    pub(crate) members: Mutex<HashMap<Consumer, BTreeSet<QueueName>>>,
    /// `(group, stream key)` pairs Redis answered NOGROUP for and that are not re-created
    /// yet: `ensure_groups` then sets the stream's snapshot floor.
    pub(crate) lost: Mutex<HashSet<(String, String)>>,
    /// Snapshots of the records of tasks fetched for the first time and not begun yet, by
    /// task id, each with the guard token known before its fetch, for `begin` to start
    /// them without reading their records (see [`crate::snapshot::Snapshot`]). At most
    /// [`SNAPSHOTS_MAX`]; `begin` checks each before use.
    pub(crate) snapshots: Mutex<HashMap<String, Kept>>,
    /// The guard token (`Keys::guard`) last read, if any: a fetch tags its snapshots
    /// with it.
    pub(crate) guard: Mutex<Option<Arc<str>>>,
}

impl Inner {
    /// Adds to `pipe` the two commands that read the guard token: one that creates it
    /// (a fresh random value) if it is missing, as after Redis lost its data, then a `GET`.
    pub(crate) fn read_guard(&self, pipe: &mut redis::Pipeline) {
        pipe.cmd("SET")
            .arg(self.keys.guard())
            .arg(xqueue_core::TaskId::generate().to_string())
            .arg("NX")
            .cmd("GET")
            .arg(self.keys.guard());
    }

    /// Records the reply of the `GET` of [`Inner::read_guard`] and returns the token. A
    /// token is never used twice, so a stale one stored after a newer one (replies of
    /// concurrent reads) only makes snapshots tagged with it fail their check.
    pub(crate) fn saw_guard(&self, reply: Option<Value>) -> Option<Arc<str>> {
        let token: Arc<str> = match reply? {
            Value::BulkString(b) => String::from_utf8(b).ok()?.into(),
            _ => return None,
        };
        *lock(&self.guard) = Some(token.clone());
        Some(token)
    }
}

/// Locks `m`, whatever a panicking holder left in it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Connects to Redis.
    ///
    /// # Behavior
    /// - Invalid settings or URL are [`Error::InvalidInput`]; an unreachable server is
    ///   [`Error::Unavailable`]; a server older than 6.2 (no XAUTOCLAIM) is [`Error::Backend`].
    /// - Nothing is written until the first call.
    pub async fn connect(config: RedisConfig) -> Result<RedisBackend> {
        config.validate()?;
        let conn = Connections::open(&config).await?;
        let backend = RedisBackend {
            inner: Arc::new(Inner {
                keys: Keys::new(&config.key_prefix),
                config,
                conn,
                scripts: Scripts::new(),
                groups: Mutex::new(HashSet::new()),
                members: Mutex::new(HashMap::new()),
                lost: Mutex::new(HashSet::new()),
                snapshots: Mutex::new(HashMap::new()),
                guard: Mutex::new(None),
            }),
        };
        backend.check_version().await?;
        Ok(backend)
    }

    /// The three services of a deployment, all on this connection.
    pub fn backends(&self) -> Backends {
        // One object for all three: the manager then submits with one script
        // (`StateStore::insert_published`).
        let one = Arc::new(self.clone());
        Backends {
            queue: one.clone(),
            state: one.clone(),
            limiter: one,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    async fn check_version(&self) -> Result<()> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.inner.conn.shared())
            .await
            .map_err(error::map)?;
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("0")
            .trim()
            .to_string();
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) < (6, 2) {
            return Err(Error::Backend {
                backend: KIND,
                message: format!("Redis 6.2 or newer is required (XAUTOCLAIM); found {version}"),
            });
        }
        debug!(backend = KIND, version, "connected");
        let mut pipe = redis::pipe();
        self.inner.read_guard(&mut pipe);
        let replies: Vec<Value> = pipe
            .query_async(&mut self.inner.conn.shared())
            .await
            .map_err(error::map)?;
        self.inner.saw_guard(replies.into_iter().nth(1));
        Ok(())
    }

    /// Runs a script on the shared connection.
    pub(crate) async fn run(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<Value> {
        invocation.invoke_async(&mut self.inner.conn.shared()).await
    }
}

#[async_trait]
impl QueueBackend for RedisBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            idle_reclaim: true,
            touch: true,
            durable: true,
            shared: true,
            delivery_count: true,
            exact_ack: true,
        }
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, queue = %queue, count = messages.len()))]
    async fn publish(&self, queue: &QueueName, messages: &[Message]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let max_len = self.inner.config.max_len;
        let mut inv = self.inner.scripts.publish.prepare_invoke();
        inv.key(self.inner.keys.stream(queue))
            .arg(max_len)
            .arg(codec::MESSAGE_PAIRS);
        for m in messages {
            inv.arg(&codec::message_fields(m)[..]);
        }
        let r = reply::array(self.run(&inv).await.map_err(error::map)?, "publish")?;
        let added = r.first().map(|v| reply::int(v, "publish")).transpose()? == Some(1);
        if !added {
            let in_use = r.get(1).map(|v| reply::int(v, "publish")).transpose()?;
            debug!(in_use, max_len, "queue full");
            return Err(error::queue_full(queue.to_string(), max_len));
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, consumer = %req.consumer.name, group = %req.consumer.group))]
    async fn fetch(&self, req: &FetchRequest) -> Result<Vec<Delivery>> {
        if req.queues.is_empty() || req.count == 0 {
            return Ok(Vec::new());
        }
        self.remember(&req.consumer, &req.queues);
        let streams: Vec<String> = req
            .queues
            .iter()
            .map(|q| self.inner.keys.stream(q))
            .collect();
        let group = &req.consumer.group;
        self.ensure_groups(group, &streams).await?;

        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(&req.consumer.name)
            .arg("COUNT")
            .arg(req.count);
        if !req.block.is_zero() {
            cmd.arg("BLOCK").arg(req.block.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&streams);
        for _ in &streams {
            cmd.arg(">");
        }
        // Read before the fetch is sent: nothing that happens to the deliveries it brings can
        // come before this token was read.
        let guard = lock(&self.inner.guard).clone();
        let value = match self.read_group(&cmd, req.block).await {
            Err(e) if is_nogroup(&e) => {
                warn!(backend = KIND, group = %group, "consumer group lost; re-creating it");
                self.forget_groups(group, &streams);
                self.ensure_groups(group, &streams).await?;
                self.read_group(&cmd, req.block).await
            }
            r => r,
        }
        .map_err(error::map)?;

        let queue_of: HashMap<&str, &QueueName> = streams
            .iter()
            .map(String::as_str)
            .zip(req.queues.iter())
            .collect();
        let mut out = Vec::new();
        let mut poison = Vec::new();
        let mut snapshots = Vec::new();
        let mut found = Vec::new();
        for stream in reply::array(value, "XREADGROUP")? {
            let mut parts = reply::array(stream, "XREADGROUP")?.into_iter();
            let (Some(key), Some(entries)) = (parts.next(), parts.next()) else {
                return Err(error::unexpected("XREADGROUP", "a stream without entries"));
            };
            let key = reply::string(&key, "XREADGROUP")?;
            let Some(queue) = queue_of.get(key.as_str()) else {
                return Err(error::unexpected("XREADGROUP", key));
            };
            for e in reply::array(entries, "XREADGROUP")? {
                let d = delivered(
                    queue,
                    &key,
                    e,
                    1,
                    "XREADGROUP",
                    &mut poison,
                    Some(&mut found),
                )?;
                out.extend(d);
                snapshots.extend(found.drain(..).map(|(id, s, e)| (id, s, e, key.clone())));
            }
        }
        if let (false, Some(token)) = (snapshots.is_empty(), guard) {
            let mut kept = lock(&self.inner.snapshots);
            if kept.len() + snapshots.len() > SNAPSHOTS_MAX {
                kept.clear();
            }
            for (id, snapshot, entry, stream) in snapshots {
                let guard = token.clone();
                let k = Kept {
                    snapshot,
                    guard,
                    stream,
                    entry,
                };
                kept.insert(id, k);
            }
        }
        if !poison.is_empty() {
            self.drop_poison(group, poison).await;
        }
        Ok(out)
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, consumer = %consumer.name, count = receipts.len()))]
    async fn ack(&self, consumer: &Consumer, receipts: &[Receipt]) -> Result<u64> {
        let groups = self.by_stream(receipts);
        if groups.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for (_, stream, ids) in &groups {
            pipe.cmd("XACK").arg(stream).arg(&consumer.group).arg(ids);
        }
        let counts: Vec<u64> = match pipe.query_async(&mut self.inner.conn.shared()).await {
            Err(e) if is_nogroup(&e) => {
                // The group is gone, and its pending entries with it: re-create it and
                // count what is still pending (nothing, where it was lost).
                let streams: Vec<String> = groups.iter().map(|g| g.1.clone()).collect();
                self.forget_groups(&consumer.group, &streams);
                self.ensure_groups(&consumer.group, &streams).await?;
                pipe.query_async(&mut self.inner.conn.shared()).await
            }
            r => r,
        }
        .map_err(error::map)?;
        Ok(counts.into_iter().sum())
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, consumer = %consumer.name, count = receipts.len()))]
    async fn nack(&self, consumer: &Consumer, receipts: &[Receipt]) -> Result<()> {
        self.per_stream(&self.inner.scripts.nack, consumer, receipts)
            .await
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, consumer = %consumer.name))]
    async fn reclaim(
        &self,
        consumer: &Consumer,
        queues: &[QueueName],
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        if queues.is_empty() || count == 0 {
            return Ok(Vec::new());
        }
        self.remember(consumer, queues);
        let streams: Vec<String> = queues.iter().map(|q| self.inner.keys.stream(q)).collect();
        let mut inv = self.inner.scripts.reclaim.prepare_invoke();
        inv.arg(&consumer.group)
            .arg(&consumer.name)
            .arg(min_idle.as_millis() as u64)
            .arg(count)
            .arg(self.inner.keys.guard());
        for s in &streams {
            inv.key(s);
        }
        let value = self.run_on_group(&consumer.group, &streams, &inv).await?;
        let mut out = Vec::new();
        let mut poison = Vec::new();
        for (queue, (stream, per_stream)) in queues
            .iter()
            .zip(streams.iter().zip(reply::array(value, "reclaim")?))
        {
            let mut parts = reply::array(per_stream, "reclaim")?.into_iter();
            let (entries, lost) = (parts.next(), parts.next());
            for e in reply::array(entries.unwrap_or(Value::Nil), "reclaim")? {
                let mut fields = reply::array(e, "reclaim")?;
                let count = fields
                    .pop()
                    .map(|c| reply::int(&c, "reclaim"))
                    .transpose()?;
                let count = count.unwrap_or(1).max(1) as u32;
                let e = Value::Array(fields);
                out.extend(delivered(
                    queue,
                    stream,
                    e,
                    count,
                    "reclaim",
                    &mut poison,
                    None,
                )?);
            }
            for id in reply::array(lost.unwrap_or(Value::Nil), "reclaim")? {
                // With XQueue's trimming this cannot happen: someone else trimmed the stream.
                error!(
                    queue = %queue,
                    id = %reply::string(&id, "reclaim")?,
                    "a pending message was deleted from the stream (trimmed by another client); it is lost"
                );
            }
        }
        if !poison.is_empty() {
            self.drop_poison(&consumer.group, poison).await;
        }
        Ok(out)
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, consumer = %consumer.name, count = receipts.len()))]
    async fn touch(&self, consumer: &Consumer, receipts: &[Receipt]) -> Result<()> {
        self.per_stream(&self.inner.scripts.touch, consumer, receipts)
            .await
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, group = %group))]
    async fn info(&self, group: &str, queues: &[QueueName]) -> Result<Vec<QueueInfo>> {
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.inner.scripts.info.prepare_invoke();
        inv.arg(group);
        for q in queues {
            inv.key(self.inner.keys.stream(q));
        }
        let value = self.run(&inv).await.map_err(error::map)?;
        let what = "info";
        let mut out = Vec::with_capacity(queues.len());
        for (queue, v) in queues.iter().zip(reply::array(value, what)?) {
            let parts = reply::array(v, what)?;
            let [length, waiting, pending, groups, consumers] =
                <[Value; 5]>::try_from(parts).map_err(|p| error::unexpected(what, p))?;
            let mut members = Vec::new();
            for c in reply::array(consumers, what)? {
                let c = reply::array(c, what)?;
                let [name, pending, idle] =
                    <[Value; 3]>::try_from(c).map_err(|c| error::unexpected(what, c))?;
                members.push(ConsumerInfo {
                    name: reply::string(&name, what)?,
                    pending: reply::int(&pending, what)?.max(0) as u64,
                    idle_ms: reply::int(&idle, what)?.max(0) as u64,
                });
            }
            out.push(QueueInfo {
                queue: queue.to_string(),
                length: reply::int(&length, what)?.max(0) as u64,
                waiting: reply::int(&waiting, what)?.max(0) as u64,
                pending: reply::int(&pending, what)?.max(0) as u64,
                groups: reply::int(&groups, what)?.max(0) as u64,
                consumers: members,
                partitions: Vec::new(),
            });
        }
        Ok(out)
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, consumer = %consumer.name))]
    async fn leave(&self, consumer: &Consumer) -> Result<()> {
        let queues: Vec<QueueName> = {
            let members = self.inner.members.lock().unwrap_or_else(|p| p.into_inner());
            members
                .get(consumer)
                .map(|q| q.iter().cloned().collect())
                .unwrap_or_default()
        };
        if !queues.is_empty() {
            let mut inv = self.inner.scripts.leave.prepare_invoke();
            inv.arg(&consumer.group).arg(&consumer.name);
            for q in &queues {
                inv.key(self.inner.keys.stream(q));
            }
            let left = reply::array(self.run(&inv).await.map_err(error::map)?, "leave")?;
            let mut members = self.inner.members.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(mine) = members.get_mut(consumer) {
                for (q, gone) in queues.iter().zip(&left) {
                    if matches!(gone, Value::Int(1)) {
                        mine.remove(q);
                    }
                }
                if mine.is_empty() {
                    members.remove(consumer);
                }
            }
            // Where it still holds deliveries it stays a member, so they stay pending and
            // are reclaimed by others (or by itself) as for a vanished consumer.
            debug!(left = ?left, "left the consumer group where nothing was pending");
        }
        self.inner.conn.close_idle();
        Ok(())
    }
}
