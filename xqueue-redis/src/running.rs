//! Running attempts: a task is `processing` while `{prefix}:running` holds its mark,
//! `started_at|worker` (see `state_lib.lua`); these read tasks together with their marks.

use std::collections::HashMap;

use redis::Value;
use xqueue_core::{Result, Task, TaskStatus, UnixMillis};

use crate::backend::RedisBackend;
use crate::codec;
use crate::error;
use crate::reply;

impl RedisBackend {
    /// The records of `ids` (empty maps for those that do not exist) and their marks, in one
    /// round trip.
    pub(crate) async fn records_with_marks(
        &self,
        ids: &[String],
    ) -> Result<Vec<(HashMap<String, String>, Option<String>)>> {
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.inner.keys.task(id));
        }
        pipe.cmd("HMGET").arg(self.inner.keys.running()).arg(ids);
        let mut replies: Vec<Value> = pipe
            .query_async(&mut self.inner.conn.shared())
            .await
            .map_err(error::map)?;
        let what = "records";
        let marks = reply::array(replies.pop().unwrap_or(Value::Nil), what)?;
        if replies.len() != ids.len() || marks.len() != ids.len() {
            return Err(error::unexpected(what, "a reply per task"));
        }
        replies
            .into_iter()
            .zip(marks)
            .map(|(fields, mark)| {
                let mark = match mark {
                    Value::Nil => None,
                    m => Some(reply::string(&m, what)?),
                };
                Ok((reply::field_map(fields, what)?, mark))
            })
            .collect()
    }

    /// Up to `limit` running tasks, earliest started first.
    pub(crate) async fn list_running(&self, limit: usize) -> Result<Vec<Task>> {
        let marks: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.inner.keys.running())
            .query_async(&mut self.inner.conn.shared())
            .await
            .map_err(error::map)?;
        let mut marks: Vec<(UnixMillis, String, String)> = marks
            .into_iter()
            .filter_map(|(id, mark)| {
                let (started, _) = split_mark(&mark)?;
                Some((started, id, mark))
            })
            .collect();
        marks.sort();
        let mut out = Vec::with_capacity(limit.min(marks.len()));
        for page in marks.chunks(limit) {
            let ids: Vec<String> = page.iter().map(|(_, id, _)| id.clone()).collect();
            for (fields, mark) in self.records_with_marks(&ids).await? {
                if let Some(task) = running_task(&fields, mark.as_deref())? {
                    out.push(task);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The start time and worker of a mark (`started_at|worker`).
fn split_mark(mark: &str) -> Option<(UnixMillis, &str)> {
    let (started, worker) = mark.split_once('|')?;
    Some((started.parse().ok()?, worker))
}

/// The task of a record as it runs, if it does: a `pending` record (or an older version's
/// `processing` one) with a mark is `processing`, in the attempt after those it counts.
pub(crate) fn running_task(
    fields: &HashMap<String, String>,
    mark: Option<&str>,
) -> Result<Option<Task>> {
    let Some((started_at, worker)) = mark.and_then(split_mark) else {
        return Ok(None);
    };
    if !runs(fields, mark) {
        return Ok(None);
    }
    let mut task = codec::decode_task(fields)?;
    task.status = TaskStatus::Processing;
    task.attempts += 1;
    task.started_at = Some(started_at);
    task.worker = Some(worker.to_owned());
    Ok(Some(task))
}

/// Whether a record with `mark` is running (see [`running_task`]), without decoding it.
pub(crate) fn runs(fields: &HashMap<String, String>, mark: Option<&str>) -> bool {
    let status = fields.get("status").map(String::as_str);
    mark.and_then(split_mark).is_some() && matches!(status, Some("pending" | "processing"))
}
