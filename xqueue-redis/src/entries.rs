//! Stream entries as XQueue reads them: ids, fields, deliveries.

use redis::Value;
use xqueue_core::{Delivery, Message, QueueName, Receipt, Result};

use crate::codec;
use crate::error;
use crate::reply;
use crate::snapshot;

/// Whether `tag` looks like a stream entry id (`ms-seq`).
pub(crate) fn is_stream_id(tag: &str) -> bool {
    match tag.split_once('-') {
        Some((ms, seq)) => {
            !ms.is_empty()
                && !seq.is_empty()
                && ms.bytes().all(|b| b.is_ascii_digit())
                && seq.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// A stream entry as XQueue reads it.
pub(crate) struct Entry {
    pub id: String,
    /// The message and the deliveries the entry carries over from `nack`, or why it cannot
    /// be read.
    pub message: Result<(Message, u32)>,
    /// Its [`snapshot::F_SNAPSHOT`] value, if it has one (taken out of the reply, not copied).
    pub snapshot: Option<String>,
}

/// One stream entry as returned by XREADGROUP or a script: `[id, [field, value, …]]`.
pub(crate) fn entry(v: Value, what: &str) -> Result<Entry> {
    let mut parts = reply::array(v, what)?.into_iter();
    let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
        return Err(error::unexpected(what, "an entry without id or fields"));
    };
    let id = reply::string(&id, what)?;
    let mut fields = reply::array(fields, what)?;
    let snapshot = fields
        .chunks_mut(2)
        .find_map(|p| match p {
            [Value::BulkString(k), Value::BulkString(v)]
                if k.as_slice() == snapshot::F_SNAPSHOT.as_bytes() =>
            {
                Some(std::mem::take(v))
            }
            _ => None,
        })
        .and_then(|v| String::from_utf8(v).ok());
    let pairs: Vec<(&[u8], &[u8])> = fields
        .chunks(2)
        .filter_map(|p| match p {
            [Value::BulkString(k), Value::BulkString(v)] => Some((&k[..], &v[..])),
            _ => None,
        })
        .collect();
    let decoded = codec::decode_message(|name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name.as_bytes())
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    });
    Ok(Entry {
        id,
        message: decoded,
        snapshot,
    })
}

/// One delivered entry of `queue` (stream `stream`), delivered `count` times by Redis: the
/// delivery, or `None` when it cannot be decoded; it is then logged and added to `poison`, for
/// [`crate::RedisBackend`] to drop (an entry no one can read would be redelivered forever).
///
/// With `snapshots`, the [`snapshot::Snapshot`] of a first delivery (never delivered before, not
/// a copy made by `nack`) is added to it with the task's id and the entry's id.
pub(crate) fn delivered(
    queue: &QueueName,
    stream: &str,
    e: Value,
    count: u32,
    what: &str,
    poison: &mut Vec<(String, String)>,
    snapshots: Option<&mut Vec<(String, snapshot::Snapshot, String)>>,
) -> Result<Option<Delivery>> {
    match entry(e, what)? {
        Entry {
            id,
            message: Ok((message, carried)),
            snapshot,
        } => {
            let count = carried + count;
            if let (Some(out), Some(snapshot), 1) = (snapshots, snapshot, count) {
                if let Some(snapshot) = snapshot::Snapshot::decode(snapshot) {
                    out.push((message.task_id.to_string(), snapshot, id.clone()));
                }
            }
            Ok(Some(delivery(queue, id, message, count)))
        }
        Entry {
            id,
            message: Err(err),
            ..
        } => {
            tracing::error!(queue = %queue, id, error = %err, "dropping an undecodable entry");
            poison.push((stream.to_owned(), id));
            Ok(None)
        }
    }
}

fn delivery(queue: &QueueName, id: String, message: Message, count: u32) -> Delivery {
    Delivery {
        receipt: Receipt {
            queue: queue.clone(),
            tag: id,
        },
        message,
        delivery_count: count.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::is_stream_id;

    #[test]
    fn stream_ids() {
        assert!(is_stream_id("1700000000000-0"));
        assert!(is_stream_id("0-1"));
        assert!(!is_stream_id("1700000000000"));
        assert!(!is_stream_id("a-1"));
        assert!(!is_stream_id("-"));
        assert!(!is_stream_id("1-2-3"));
    }
}
