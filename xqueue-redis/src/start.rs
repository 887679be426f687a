//! Starting attempts (`StateStore::begin` on Redis): one pipeline of native commands, no
//! script, and no read of the record for a first delivery whose entry carries a snapshot of
//! it (see [`crate::snapshot`]).

use redis::Value;
use xqueue_core::{Begin, Result, TaskId, TaskStatus, UnixMillis};

use crate::backend::RedisBackend;
use crate::codec;
use crate::error::{self, KIND};
use crate::reply;
use crate::snapshot::Kept;

impl RedisBackend {
    /// Marks the tasks running and reads their records in one pipeline, no script: their
    /// earlier marks (`HMGET`), the new mark of each (one `HSET`), then each record. The mark
    /// comes before the read, so `cancel`, which refuses a marked task, and `begin` are
    /// ordered: a task cancelled before the mark is read as `cancelled` and skipped; once it
    /// is marked, the cancel is refused. What is left is rare and one script call: counting a
    /// redelivered task's earlier attempt, and taking the marks off tasks not started.
    ///
    /// A task this backend fetched for the first time, whose entry carries a snapshot of its
    /// record ([`crate::snapshot::Snapshot`]), is not read. Until the entry was delivered, nothing
    /// could start the task (that takes a delivery of its only entry), so its record could
    /// change only by a `cancel` (and, past the retention, the purge of the cancelled task);
    /// after it, only by an attempt from a delivery taken over from this consumer. So the
    /// snapshot holds when, read after the marks in the same pipeline, the task has no
    /// earlier mark, is not in the `cancelled` index (one `ZMSCORE` for the batch, of a small
    /// index), the guard token (`{prefix}:guard`, replaced by every reclaim that takes
    /// anything and every purge of cancelled tasks) is the one read before the fetch, and the
    /// entry is above its stream's snapshot floor (set when a group is created beside another
    /// or re-created after it was lost, which hands out entries that may have run already;
    /// `ensure_groups.lua`). Any other task is read with an `HMGET`, after the marks as well.
    #[tracing::instrument(skip_all, fields(backend = KIND, worker, count = ids.len()))]
    pub(crate) async fn begin_attempts(
        &self,
        ids: &[TaskId],
        worker: &str,
        now: UnixMillis,
    ) -> Result<Vec<Begin>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = &self.inner.keys;
        let running = keys.running();
        let mark = format!("{now}|{worker}");
        let mut snapshots: Vec<Option<Kept>> = {
            let mut kept = crate::backend::lock(&self.inner.snapshots);
            if kept.is_empty() {
                ids.iter().map(|_| None).collect()
            } else {
                ids.iter().map(|id| kept.remove(id.as_str())).collect()
            }
        };
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(&running);
        for id in ids {
            pipe.arg(id.as_str());
        }
        pipe.cmd("HSET").arg(&running);
        for id in ids {
            pipe.arg(id.as_str()).arg(&mark);
        }
        self.inner.read_guard(&mut pipe);
        let snapshotted = snapshots.iter().filter(|s| s.is_some()).count();
        let mut streams: Vec<String> = snapshots
            .iter()
            .flatten()
            .map(|k| k.stream.clone())
            .collect();
        streams.sort_unstable();
        streams.dedup();
        if snapshotted > 0 {
            pipe.cmd("ZMSCORE").arg(keys.status(TaskStatus::Cancelled));
            for (id, _) in ids.iter().zip(&snapshots).filter(|(_, s)| s.is_some()) {
                pipe.arg(id.as_str());
            }
            pipe.cmd("HMGET").arg(keys.snapshot_floors()).arg(&streams);
        }
        for (id, _) in ids.iter().zip(&snapshots).filter(|(_, s)| s.is_none()) {
            pipe.cmd("HMGET")
                .arg(keys.task(id.as_str()))
                .arg(&codec::BEGIN_FIELDS[..]);
        }
        let what = "begin";
        let replies: Vec<Value> = pipe
            .query_async(&mut self.inner.conn.shared())
            .await
            .map_err(error::map)?;
        let mut replies = replies.into_iter();
        let earlier = reply::array(replies.next().unwrap_or(Value::Nil), what)?;
        replies.next(); // the HSET's count
        replies.next(); // the SET NX of the guard token
        let guard = self.inner.saw_guard(replies.next());
        let (cancelled, floors): (Vec<Option<f64>>, Vec<Option<String>>) = match snapshotted {
            0 => (Vec::new(), Vec::new()),
            _ => {
                let mut next = || replies.next().unwrap_or(Value::Nil);
                let cancelled = redis::from_redis_value(next());
                let floors = redis::from_redis_value(next());
                (
                    cancelled.map_err(|e| error::unexpected(what, e))?,
                    floors.map_err(|e| error::unexpected(what, e))?,
                )
            }
        };
        // Per stream, whether an entry is above its floor: the floor is set when a group is
        // created beside another or re-created (`ensure_groups.lua`), which may hand out
        // entries that another group or the lost one already ran.
        let above_floor = |k: &Kept| {
            let i = streams.iter().position(|s| *s == k.stream);
            match i.and_then(|i| floors.get(i)).cloned().flatten() {
                None => true,
                Some(floor) => match (entry_id(&k.entry), entry_id(&floor)) {
                    (Some(entry), Some(floor)) => entry > floor,
                    _ => false,
                },
            }
        };
        if earlier.len() != ids.len()
            || cancelled.len() != snapshotted
            || (snapshotted > 0 && floors.len() != streams.len())
            || replies.len() != ids.len() - snapshotted
        {
            return Err(error::unexpected(what, "a reply per task"));
        }
        // A snapshot that may no longer hold is dropped: its record is read below.
        let mut cancelled = cancelled.into_iter();
        let mut stale = Vec::new();
        for ((id, snapshot), earlier) in ids.iter().zip(snapshots.iter_mut()).zip(&earlier) {
            let Some(kept) = snapshot else {
                continue;
            };
            let was_cancelled = cancelled.next().flatten().is_some();
            let holds = *earlier == Value::Nil
                && !was_cancelled
                && guard.as_ref() == Some(&kept.guard)
                && above_floor(kept);
            if !holds {
                *snapshot = None;
                stale.push(id);
            }
        }
        let mut reread = Vec::new();
        if !stale.is_empty() {
            let mut pipe = redis::pipe();
            for id in &stale {
                pipe.cmd("HMGET")
                    .arg(keys.task(id.as_str()))
                    .arg(&codec::BEGIN_FIELDS[..]);
            }
            reread = pipe
                .query_async(&mut self.inner.conn.shared())
                .await
                .map_err(error::map)?;
        }
        // Each task's record, as `HMGET` answers it, in the order of `ids`.
        let mut read = replies;
        let mut reread = reread.into_iter();
        let records: Vec<Value> = ids
            .iter()
            .zip(snapshots)
            .map(|(id, snapshot)| match snapshot {
                Some(k) => Value::Array(k.snapshot.into_begin_values()),
                None if stale.contains(&id) => reread.next().unwrap_or(Value::Nil),
                None => read.next().unwrap_or(Value::Nil),
            })
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        let (mut redelivered, mut not_started) = (Vec::new(), Vec::new());
        for ((id, earlier), record) in ids.iter().zip(earlier).zip(records) {
            let values = reply::array(record, what)?;
            let field = |name: &str| match values.get(codec::begin_field(name)?) {
                Some(Value::BulkString(b)) => std::str::from_utf8(b).ok(),
                _ => None,
            };
            let status = match field("status") {
                None => None,
                Some("pending" | "processing") => {
                    // A record written before the packed spec holds its fields apart (rare):
                    // read them, and look them up only for such a record.
                    let legacy: Option<Vec<Option<String>>> = match field(codec::F_SPEC) {
                        Some(_) => None,
                        None => Some(
                            redis::cmd("HMGET")
                                .arg(keys.task(id.as_str()))
                                .arg(&codec::SPEC_FIELDS[..])
                                .query_async(&mut self.inner.conn.shared())
                                .await
                                .map_err(error::map)?,
                        ),
                    };
                    let legacy_field = |name: &str| {
                        let values = legacy.as_ref()?;
                        let i = codec::SPEC_FIELDS.iter().position(|f| *f == name)?;
                        values.get(i)?.as_deref()
                    };
                    let mut task = codec::decode_with(|name| match name {
                        "id" => Some(id.as_str()),
                        _ => field(name).or_else(|| legacy_field(name)),
                    })?;
                    // A task marked before was running (a redelivery): that attempt counts.
                    // (An older version's `processing` record with no mark counted it.)
                    let again = earlier != Value::Nil;
                    if again {
                        redelivered.push(id.as_str());
                    }
                    task.status = TaskStatus::Processing;
                    task.attempts += u32::from(again) + 1;
                    task.started_at = Some(now);
                    task.worker = Some(worker.to_owned());
                    out.push(Begin::Run(task));
                    continue;
                }
                Some(s) => Some(s.parse()?),
            };
            not_started.push(id.as_str());
            out.push(Begin::Skip {
                id: id.clone(),
                status,
            });
        }
        if !redelivered.is_empty() || !not_started.is_empty() {
            let mut inv = self.inner.scripts.begin_settle.prepare_invoke();
            inv.arg(keys.prefix())
                .arg(&mark)
                .arg(redelivered.len())
                .arg(&redelivered)
                .arg(&not_started);
            self.run(&inv).await.map_err(error::map)?;
        }
        Ok(out)
    }
}

/// A stream entry id (`ms-seq`) as a pair that orders as Redis orders ids.
fn entry_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}
