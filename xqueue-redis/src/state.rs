//! Task state in Redis: one hash per task, a sorted set per status, the schedule, and the
//! marks of running attempts.
//!
//! Every state change but the start of an attempt is one Lua script (`scripts/state_*.lua`)
//! per batch: atomic, so two instances can never both claim or finish the same task, and one
//! round trip. A running task is `processing` by its mark in `{prefix}:running` (its record
//! stays `pending` until the attempt ends; see `state_lib.lua`), so `begin` needs no script:
//! it marks and reads in one pipeline, the cheapest start Redis allows.

use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use xqueue_core::state::PUBLISH_GUARD;
use xqueue_core::{
    now_millis, Begin, Completion, Error, Outcome, QueueName, Result, StateStore, StatusCounts,
    Take, Taken, Task, TaskId, TaskStatus, UnixMillis,
};

use crate::backend::RedisBackend;
use crate::codec;
use crate::entries;
use crate::error::{self, KIND};
use crate::reply;
use crate::running::{running_task, runs};
use crate::snapshot;

/// Tasks looked at per script call by the "all" forms of `requeue_failed` and `purge_failed`.
const SWEEP_BATCH: usize = 1000;

impl RedisBackend {
    /// Ids `offset..offset + count` of `status`'s index, oldest first. For `success` that is
    /// the sorted set (tasks recorded by versions before the `succeeded` list), then the list.
    async fn index_page(
        &self,
        status: TaskStatus,
        offset: usize,
        count: usize,
    ) -> Result<Vec<String>> {
        let keys = &self.inner.keys;
        let mut conn = self.inner.conn.shared();
        let (mut ids, sorted): (Vec<String>, usize) = redis::pipe()
            .cmd("ZRANGE")
            .arg(keys.status(status))
            .arg(offset)
            .arg(offset + count - 1)
            .cmd("ZCARD")
            .arg(keys.status(status))
            .query_async(&mut conn)
            .await
            .map_err(error::map)?;
        let end = (offset + count).saturating_sub(sorted);
        if status == TaskStatus::Success && ids.len() < count && end > 0 {
            let listed: Vec<String> = redis::cmd("LRANGE")
                .arg(keys.succeeded())
                .arg(offset.saturating_sub(sorted))
                .arg(end - 1)
                .query_async(&mut conn)
                .await
                .map_err(error::map)?;
            ids.extend(listed);
        }
        Ok(ids)
    }

    fn task_from(&self, fields: Value, what: &str) -> Result<Task> {
        codec::decode_task(&reply::field_map(fields, what)?)
    }

    fn tasks_from(&self, list: Value, what: &str) -> Result<Vec<Task>> {
        reply::array(list, what)?
            .into_iter()
            .map(|f| self.task_from(f, what))
            .collect()
    }

    /// Runs one of the "ids or all" sweeps; returns how many tasks it changed.
    async fn sweep(
        &self,
        script: &redis::Script,
        head: &[String],
        ids: Option<&[TaskId]>,
        what: &str,
    ) -> Result<u64> {
        let mut total = 0;
        loop {
            let mut inv = script.prepare_invoke();
            inv.arg(self.inner.keys.prefix()).arg(head);
            match ids {
                Some(ids) => {
                    inv.arg("ids").arg(0);
                    for id in ids {
                        inv.arg(id.as_str());
                    }
                }
                None => {
                    inv.arg("all").arg(SWEEP_BATCH);
                }
            }
            let r = reply::array(self.run(&inv).await.map_err(error::map)?, what)?;
            let changed = r
                .first()
                .map(|v| reply::int(v, what))
                .transpose()?
                .unwrap_or(0);
            let looked = r
                .get(1)
                .map(|v| reply::int(v, what))
                .transpose()?
                .unwrap_or(0);
            total += changed.max(0) as u64;
            if ids.is_some() || (looked as usize) < SWEEP_BATCH {
                return Ok(total);
            }
        }
    }
}

#[async_trait]
impl StateStore for RedisBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, count = tasks.len()))]
    async fn insert(&self, tasks: &[Task]) -> Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut inv = self.inner.scripts.insert.prepare_invoke();
        inv.arg(self.inner.keys.prefix())
            .arg(PUBLISH_GUARD.as_millis() as u64);
        for t in tasks {
            let fields = codec::task_fields(t);
            inv.arg(fields.len());
            for (name, value) in fields {
                inv.arg(name).arg(value);
            }
        }
        let what = "insert";
        let r = reply::array(self.run(&inv).await.map_err(error::map)?, what)?;
        match r.as_slice() {
            [ok] if reply::int(ok, what)? == 1 => Ok(()),
            [_, id] => Err(error::already_exists(&reply::string(id, what)?)),
            _ => Err(error::unexpected(what, r)),
        }
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, count = tasks.len()))]
    async fn insert_published(
        &self,
        tasks: &[Task],
        take: Option<&Take>,
    ) -> Result<Option<Vec<Taken>>> {
        if tasks.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut inv = self.inner.scripts.insert_published.prepare_invoke();
        let max_len = self.inner.config.max_len;
        inv.arg(self.inner.keys.prefix())
            .arg(max_len)
            .arg(codec::MESSAGE_PAIRS + 1);
        let mut streams: Vec<(QueueName, String)> = Vec::new();
        let mut stream_of = |queue: QueueName, inv: &mut redis::ScriptInvocation| {
            match streams.iter().position(|(q, _)| *q == queue) {
                Some(i) => i + 1, // Lua counts from 1
                None => {
                    let key = self.inner.keys.stream(&queue);
                    inv.key(&key);
                    streams.push((queue, key));
                    streams.len()
                }
            }
        };
        match take {
            Some(t) if t.count > 0 => {
                let at = stream_of(t.queue.clone(), &mut inv);
                inv.arg(at)
                    .arg(t.count)
                    .arg(&t.consumer.group)
                    .arg(&t.consumer.name)
                    .arg(t.now);
            }
            _ => {
                inv.arg(0).arg(0).arg("").arg("").arg(0);
            }
        }
        for t in tasks {
            let at = stream_of(t.queue(), &mut inv);
            let fields = codec::task_fields(t);
            let snapshot = snapshot::snapshot_value(t, &fields);
            inv.arg(at).arg(fields.len());
            for (name, value) in fields {
                inv.arg(name).arg(value);
            }
            inv.arg(&codec::message_fields(&t.message())[..])
                .arg(snapshot::F_SNAPSHOT)
                .arg(snapshot);
        }
        let what = "insert_published";
        let r = reply::array(self.run(&inv).await.map_err(error::map)?, what)?;
        match r.as_slice() {
            [ok, _, _] if reply::int(ok, what)? == 1 => {}
            [tag, id] if reply::int(tag, what)? == 0 => {
                return Err(error::already_exists(&reply::string(id, what)?))
            }
            [tag, stream, in_use] if reply::int(tag, what)? == 2 => {
                let stream = reply::string(stream, what)?;
                let queue = streams
                    .iter()
                    .find(|(_, key)| *key == stream)
                    .map(|(q, _)| q.to_string())
                    .unwrap_or(stream);
                tracing::debug!(in_use = reply::int(in_use, what)?, max_len, "queue full");
                return Err(error::queue_full(queue, max_len));
            }
            _ => return Err(error::unexpected(what, r)),
        }
        let (Some(take), mut r) = (take, r.into_iter().skip(1)) else {
            return Ok(Some(Vec::new()));
        };
        let entries = reply::array(r.next().unwrap_or(Value::Nil), what)?;
        let attempts = reply::array(r.next().unwrap_or(Value::Nil), what)?;
        if entries.len() != attempts.len() {
            return Err(error::unexpected(
                what,
                "entries and attempts of different lengths",
            ));
        }
        let stream = self.inner.keys.stream(&take.queue);
        let mut poison = Vec::new();
        let mut taken = Vec::with_capacity(entries.len());
        for (e, n) in entries.into_iter().zip(attempts) {
            let Some(delivery) =
                entries::delivered(&take.queue, &stream, e, 1, what, &mut poison, None)?
            else {
                continue;
            };
            let n = reply::int(&n, what)?;
            let task = if n > 0 {
                tasks
                    .iter()
                    .find(|t| t.id == delivery.message.task_id)
                    .map(|t| Task {
                        status: TaskStatus::Processing,
                        attempts: n as u32,
                        started_at: Some(take.now),
                        worker: Some(take.consumer.name.clone()),
                        ..t.clone()
                    })
            } else {
                None
            };
            taken.push(Taken { delivery, task });
        }
        if !poison.is_empty() {
            self.drop_poison(&take.consumer.group, poison).await;
        }
        Ok(Some(taken))
    }

    async fn get(&self, id: &TaskId) -> Result<Option<Task>> {
        let ids = [id.to_string()];
        let Some((fields, mark)) = self.records_with_marks(&ids).await?.pop() else {
            return Ok(None);
        };
        if fields.is_empty() {
            return Ok(None);
        }
        match running_task(&fields, mark.as_deref())? {
            Some(task) => Ok(Some(task)),
            None => codec::decode_task(&fields).map(Some),
        }
    }

    async fn list(&self, status: TaskStatus, limit: usize) -> Result<Vec<Task>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        if status == TaskStatus::Processing {
            return self.list_running(limit).await;
        }
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let ids = self.index_page(status, offset, limit).await?;
            if ids.is_empty() {
                return Ok(out);
            }
            offset += ids.len();
            for (fields, mark) in self.records_with_marks(&ids).await? {
                // A task deleted since the index was read is skipped; one that changed status
                // since, or that runs (a `pending` record with a mark), is left out too, so
                // the list holds only tasks in `status`.
                if fields.is_empty() {
                    continue;
                }
                let task = codec::decode_task(&fields)?;
                if task.status == status && !runs(&fields, mark.as_deref()) {
                    out.push(task);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            if ids.len() < limit {
                return Ok(out);
            }
        }
    }

    async fn counts(&self) -> Result<StatusCounts> {
        let mut pipe = redis::pipe();
        for status in TaskStatus::ALL {
            pipe.cmd("ZCARD").arg(self.inner.keys.status(status));
        }
        pipe.cmd("LLEN").arg(self.inner.keys.succeeded());
        pipe.cmd("HKEYS").arg(self.inner.keys.running());
        let mut conn = self.inner.conn.shared();
        let (counts, succeeded, running): (Vec<u64>, u64, Vec<String>) = {
            let mut replies: Vec<Value> = pipe.query_async(&mut conn).await.map_err(error::map)?;
            let what = "counts";
            let running = reply::array(replies.pop().unwrap_or(Value::Nil), what)?
                .iter()
                .map(|v| reply::string(v, what))
                .collect::<Result<_>>()?;
            let mut counts = replies
                .iter()
                .map(|v| reply::int(v, what).map(|n| n.max(0) as u64))
                .collect::<Result<Vec<_>>>()?;
            let succeeded = counts.pop().unwrap_or(0);
            (counts, succeeded, running)
        };
        let mut out = StatusCounts::default();
        for (status, n) in TaskStatus::ALL.into_iter().zip(counts) {
            *out.get_mut(status) = n;
        }
        // Succeeded tasks are listed apart (the sorted set holds those of earlier versions).
        out.success += succeeded;
        if !running.is_empty() {
            // Running tasks are `pending` records with a mark (a mark on anything else is one
            // `begin` is about to take off).
            let scores: Vec<Option<f64>> = redis::cmd("ZMSCORE")
                .arg(self.inner.keys.status(TaskStatus::Pending))
                .arg(&running)
                .query_async(&mut conn)
                .await
                .map_err(error::map)?;
            let n = scores.iter().filter(|s| s.is_some()).count() as u64;
            out.processing += n;
            out.pending = out.pending.saturating_sub(n);
        }
        Ok(out)
    }

    /// Starts attempts: one pipeline, no script; a first delivery whose entry carries a
    /// snapshot of its record is not read (`begin_attempts` in `start.rs` says when).
    async fn begin(&self, ids: &[TaskId], worker: &str, now: UnixMillis) -> Result<Vec<Begin>> {
        self.begin_attempts(ids, worker, now).await
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, count = completions.len()))]
    async fn complete(&self, completions: &[Completion]) -> Result<()> {
        if completions.is_empty() {
            return Ok(());
        }
        let mut inv = self.inner.scripts.complete.prepare_invoke();
        // Plain successes (no result: almost every completion) first, two values each; then
        // the others, five values each (see `state_complete.lua`).
        let (plain, others): (Vec<&Completion>, Vec<&Completion>) = completions
            .iter()
            .partition(|c| matches!(&c.outcome, Outcome::Success { result } if result.is_null()));
        inv.arg(self.inner.keys.prefix()).arg(plain.len());
        for c in plain {
            inv.arg(c.id.as_str()).arg(codec::packed_run(c));
        }
        for c in others {
            let (outcome, data, run_at) = match &c.outcome {
                Outcome::Success { result } => ("success", result.to_string(), String::new()),
                Outcome::Retry { error, run_at } => ("retry", error.clone(), run_at.to_string()),
                Outcome::Failed { error } => ("failed", error.clone(), String::new()),
            };
            inv.arg(c.id.as_str())
                .arg(outcome)
                .arg(data)
                .arg(run_at)
                .arg(codec::packed_run(c));
        }
        self.run(&inv).await.map_err(error::map)?;
        Ok(())
    }

    async fn unbegin(&self, ids: &[TaskId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut inv = self.inner.scripts.unbegin.prepare_invoke();
        inv.arg(self.inner.keys.prefix())
            .arg(now_millis())
            .arg(PUBLISH_GUARD.as_millis() as u64);
        for id in ids {
            inv.arg(id.as_str());
        }
        self.run(&inv).await.map_err(error::map)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, limit))]
    async fn claim_due(&self, now: UnixMillis, lease: Duration, limit: usize) -> Result<Vec<Task>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut inv = self.inner.scripts.claim_due.prepare_invoke();
        inv.arg(self.inner.keys.prefix())
            .arg(now)
            .arg(lease.as_millis() as u64)
            .arg(limit);
        let value = self.run(&inv).await.map_err(error::map)?;
        self.tasks_from(value, "claim_due")
    }

    async fn release_due(&self, ids: &[TaskId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut inv = self.inner.scripts.release_due.prepare_invoke();
        inv.arg(self.inner.keys.prefix());
        for id in ids {
            inv.arg(id.as_str());
        }
        self.run(&inv).await.map_err(error::map)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, task_id = %id))]
    async fn cancel(&self, id: &TaskId, now: UnixMillis) -> Result<Task> {
        let mut inv = self.inner.scripts.cancel.prepare_invoke();
        inv.arg(self.inner.keys.prefix()).arg(id.as_str()).arg(now);
        let what = "cancel";
        let mut parts = reply::array(self.run(&inv).await.map_err(error::map)?, what)?.into_iter();
        let tag = parts
            .next()
            .map(|t| reply::string(&t, what))
            .transpose()?
            .unwrap_or_default();
        match (tag.as_str(), parts.next()) {
            ("ok", Some(fields)) => self.task_from(fields, what),
            ("missing", _) => Err(Error::task_not_found(id)),
            ("conflict", Some(status)) => Err(Error::Conflict {
                id: id.to_string(),
                status: reply::string(&status, what)?.parse()?,
                reason: "only a task that has not started can be cancelled".into(),
            }),
            _ => Err(error::unexpected(what, tag)),
        }
    }

    async fn requeue_failed(&self, ids: Option<&[TaskId]>, now: UnixMillis) -> Result<u64> {
        let script = &self.inner.scripts.requeue_failed;
        self.sweep(script, &[now.to_string()], ids, "requeue_failed")
            .await
    }

    async fn purge_failed(&self, ids: Option<&[TaskId]>) -> Result<u64> {
        let script = &self.inner.scripts.purge;
        self.sweep(script, &["failed".to_string()], ids, "purge")
            .await
    }

    async fn purge_finished(
        &self,
        status: TaskStatus,
        before: UnixMillis,
        limit: usize,
    ) -> Result<u64> {
        if !status.is_finished() {
            return Err(Error::invalid(
                "status",
                format!("{status} is not a finished status"),
            ));
        }
        if limit == 0 {
            return Ok(0);
        }
        let mut inv = self.inner.scripts.purge.prepare_invoke();
        inv.arg(self.inner.keys.prefix())
            .arg(status.as_str())
            .arg("before")
            .arg(limit)
            .arg(before);
        let what = "purge_finished";
        let r = reply::array(self.run(&inv).await.map_err(error::map)?, what)?;
        Ok(r.first()
            .map(|v| reply::int(v, what))
            .transpose()?
            .unwrap_or(0)
            .max(0) as u64)
    }
}
