//! Consumer groups on demand (created once per process, re-created after NOGROUP), and the
//! bookkeeping the queue operations share.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::Value;
use tracing::{debug, warn};
use xqueue_core::{Consumer, QueueName, Receipt, Result};

use crate::backend::{lock, RedisBackend};
use crate::entries::is_stream_id;
use crate::error::{self, is_nogroup, KIND};

impl RedisBackend {
    /// Creates `group` on each stream (and the stream) unless known to exist.
    pub(crate) async fn ensure_groups(&self, group: &str, streams: &[String]) -> Result<()> {
        let missing: Vec<&String> = {
            let known = self.inner.groups.lock().unwrap_or_else(|p| p.into_inner());
            streams
                .iter()
                .filter(|s| !known.contains(&(group.to_string(), s.to_string())))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let mut inv = self.inner.scripts.ensure_groups.prepare_invoke();
        inv.arg(group).arg(self.inner.keys.snapshot_floors());
        {
            let lost = lock(&self.inner.lost);
            for s in &missing {
                inv.key(s.as_str());
                let was_lost = lost.contains(&(group.to_string(), s.to_string()));
                inv.arg(if was_lost { "1" } else { "0" });
            }
        }
        let created = self.run(&inv).await.map_err(error::map)?;
        debug!(backend = KIND, group, created = ?created, "consumer groups ensured");
        let mut known = self.inner.groups.lock().unwrap_or_else(|p| p.into_inner());
        let mut lost = lock(&self.inner.lost);
        for s in missing {
            lost.remove(&(group.to_string(), s.clone()));
            known.insert((group.to_string(), s.clone()));
        }
        Ok(())
    }

    /// Forgets that groups exist (Redis answered NOGROUP), so the next call re-creates them.
    pub(crate) fn forget_groups(&self, group: &str, streams: &[String]) {
        let mut known = self.inner.groups.lock().unwrap_or_else(|p| p.into_inner());
        let mut lost = lock(&self.inner.lost);
        for s in streams {
            lost.insert((group.to_string(), s.clone()));
            known.remove(&(group.to_string(), s.clone()));
        }
    }

    pub(crate) fn remember(&self, consumer: &Consumer, queues: &[QueueName]) {
        let mut members = self.inner.members.lock().unwrap_or_else(|p| p.into_inner());
        members
            .entry(consumer.clone())
            .or_default()
            .extend(queues.iter().cloned());
    }

    /// Runs a stream script over `streams` after making sure the group exists; when Redis
    /// answers NOGROUP (it lost the group), re-creates the group and runs it once more.
    pub(crate) async fn run_on_group(
        &self,
        group: &str,
        streams: &[String],
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<Value> {
        self.ensure_groups(group, streams).await?;
        match self.run(invocation).await {
            Err(e) if is_nogroup(&e) => {
                warn!(backend = KIND, group, "consumer group lost; re-creating it");
                self.forget_groups(group, streams);
                self.ensure_groups(group, streams).await?;
                self.run(invocation).await.map_err(error::map)
            }
            r => r.map_err(error::map),
        }
    }

    pub(crate) async fn read_group(
        &self,
        cmd: &redis::Cmd,
        block: Duration,
    ) -> redis::RedisResult<Value> {
        if block.is_zero() {
            cmd.query_async(&mut self.inner.conn.shared()).await
        } else {
            self.inner.conn.blocking(cmd, block).await
        }
    }

    /// Receipts grouped by stream: `(queue, stream key, ids)`; malformed tags are dropped.
    pub(crate) fn by_stream(&self, receipts: &[Receipt]) -> Vec<(QueueName, String, Vec<String>)> {
        let mut map: BTreeMap<&QueueName, Vec<String>> = BTreeMap::new();
        for r in receipts {
            if is_stream_id(&r.tag) {
                map.entry(&r.queue).or_default().push(r.tag.clone());
            }
        }
        map.into_iter()
            .map(|(q, ids)| (q.clone(), self.inner.keys.stream(q), ids))
            .collect()
    }

    /// Runs a per-stream script (nack, touch) for `consumer` over `receipts`: one call, each
    /// stream a key followed by its id count and ids.
    pub(crate) async fn per_stream(
        &self,
        script: &redis::Script,
        consumer: &Consumer,
        receipts: &[Receipt],
    ) -> Result<()> {
        let groups = self.by_stream(receipts);
        if groups.is_empty() {
            return Ok(());
        }
        let mut inv = script.prepare_invoke();
        inv.arg(&consumer.group).arg(&consumer.name);
        for (_, stream, ids) in &groups {
            inv.key(stream).arg(ids.len()).arg(ids);
        }
        let streams: Vec<String> = groups.iter().map(|g| g.1.clone()).collect();
        self.run_on_group(&consumer.group, &streams, &inv).await?;
        Ok(())
    }

    /// Acks entries that cannot be decoded, so they are not redelivered forever.
    pub(crate) async fn drop_poison(&self, group: &str, poison: Vec<(String, String)>) {
        for (stream, id) in poison {
            let r: redis::RedisResult<i64> = redis::cmd("XACK")
                .arg(&stream)
                .arg(group)
                .arg(&id)
                .query_async(&mut self.inner.conn.shared())
                .await;
            if let Err(e) = r {
                warn!(backend = KIND, stream, id, error = %e, "could not ack an undecodable entry");
            }
        }
    }
}
