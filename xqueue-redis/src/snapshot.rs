//! Snapshots of task records carried by stream entries, so that a first delivery starts
//! without reading its record (BENCHMARKS.md, fix 26): what an entry carries, how it is read,
//! and what the backend keeps of it between a fetch and `begin` (see `start.rs` for the
//! checks that decide whether one is trusted).

use std::sync::Arc;

use xqueue_core::{Task, TaskStatus};

use crate::codec;

/// Stream entry field of a task submitted in one step with its record
/// (`StateStore::insert_published`): the record as `begin` would read it, packed as
/// `{length of spec}|{spec}{payload}`, so that a first delivery starts without reading the
/// record (BENCHMARKS.md, fix 26). Empty when the record holds more than that (an attempt
/// counted, a `run_at`, an error) or the payload is big ([`SNAPSHOT_PAYLOAD_MAX`]): such a
/// task is read as before. Entries of other versions, without it, are read as before too.
pub(crate) const F_SNAPSHOT: &str = "task";

/// What a first delivery's [`F_SNAPSHOT`] says of its task's record as it was stored: its
/// [`codec::F_SPEC`] and `payload`, with no attempts, `run_at` or error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub spec: String,
    pub payload: String,
}

impl Snapshot {
    /// Reads an [`F_SNAPSHOT`] value; `None` for an empty or malformed one.
    pub fn decode(packed: String) -> Option<Snapshot> {
        let (len, rest) = packed.split_once('|')?;
        let len: usize = len.parse().ok()?;
        let start = packed.len() - rest.len();
        let end = start.checked_add(len)?;
        if end >= packed.len() || !packed.is_char_boundary(end) {
            return None;
        }
        let payload = packed[end..].to_owned();
        let mut spec = packed;
        spec.truncate(end);
        spec.drain(..start);
        Some(Snapshot { spec, payload })
    }

    /// The values of [`codec::BEGIN_FIELDS`] of the record it stands for, as `HMGET` would answer.
    pub fn into_begin_values(self) -> Vec<redis::Value> {
        use redis::Value;
        let mut values = vec![Value::Nil; codec::BEGIN_FIELDS.len()];
        let mut set = |name: &str, v: Vec<u8>| {
            if let Some(i) = codec::begin_field(name) {
                values[i] = Value::BulkString(v);
            }
        };
        set("status", b"pending".to_vec());
        set("attempts", b"0".to_vec());
        set(codec::F_SPEC, self.spec.into_bytes());
        set("payload", self.payload.into_bytes());
        values
    }
}

/// Largest payload (as JSON) a snapshot carries. A queued task's snapshot holds its payload a
/// second time, beside its record, until the entry is trimmed; past this size that costs
/// Redis more memory than the record's read at the start costs it time.
pub(crate) const SNAPSHOT_PAYLOAD_MAX: usize = 1024;

/// The [`F_SNAPSHOT`] value of new task `t` whose record is `record` ([`codec::task_fields`]): the
/// record's own values. Empty when the record holds more than a snapshot carries, or the
/// payload is over [`SNAPSHOT_PAYLOAD_MAX`].
pub(crate) fn snapshot_value(t: &Task, record: &[(&'static str, String)]) -> String {
    let value = |name: &str| record.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
    let (Some(spec), Some(payload)) = (value(codec::F_SPEC), value("payload")) else {
        return String::new();
    };
    if t.status != TaskStatus::Pending
        || t.attempts != 0
        || t.run_at.is_some()
        || t.last_error.as_deref().is_some_and(|e| !e.is_empty())
        || payload.len() > SNAPSHOT_PAYLOAD_MAX
    {
        return String::new();
    }
    format!("{}|{spec}{payload}", spec.len())
}

/// A snapshot kept for `begin`, with what its check needs.
pub(crate) struct Kept {
    pub snapshot: Snapshot,
    /// The guard token read before the fetch.
    pub guard: Arc<str>,
    /// The stream key and the id of the entry it came in.
    pub stream: String,
    pub entry: String,
}

/// Most snapshots kept for `begin` (at most about 1 KiB each: 17 MiB at worst). Each is taken
/// by the `begin` of its task, and a lane buffers at most `batch_size` deliveries; the few
/// left behind (deliveries given back or dropped before a `begin`) are cleared when this is
/// reached, and their tasks then read as before.
pub(crate) const SNAPSHOTS_MAX: usize = 16_384;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tests::{record, task};
    use crate::codec::{task_fields, BEGIN_FIELDS};

    #[test]
    fn a_snapshot_reads_as_the_record_begin_would_read() {
        let mut t = task();
        t.last_error = None;
        t.result = None;
        t.task_type = "odd|type\nwith ünïcode".into();
        let stored = record(&t);
        let snapshot = Snapshot::decode(snapshot_value(&t, &task_fields(&t))).expect("a snapshot");
        let values = snapshot.into_begin_values();
        for (field, value) in BEGIN_FIELDS.iter().zip(values) {
            let read = match value {
                redis::Value::BulkString(b) => Some(String::from_utf8(b).unwrap()),
                redis::Value::Nil => None,
                other => panic!("{other:?}"),
            };
            assert_eq!(read.as_ref(), stored.get(*field), "field {field}");
        }
    }

    #[test]
    fn a_task_with_more_than_a_snapshot_carries_none() {
        let base = Task {
            last_error: None,
            ..task()
        };
        assert!(!snapshot_value(&base, &task_fields(&base)).is_empty());
        for t in [
            Task {
                attempts: 1,
                ..base.clone()
            },
            Task {
                run_at: Some(1),
                ..base.clone()
            },
            Task {
                last_error: Some("boom".into()),
                ..base.clone()
            },
            Task {
                status: TaskStatus::Scheduled,
                ..base.clone()
            },
            Task {
                payload: serde_json::json!("x".repeat(SNAPSHOT_PAYLOAD_MAX)),
                ..base.clone()
            },
        ] {
            assert_eq!(snapshot_value(&t, &task_fields(&t)), "", "{t:?}");
        }
    }

    #[test]
    fn malformed_snapshots_are_none() {
        for bad in ["", "x|abc", "3|ab", "3|abc", "99|abc{}", "1|é{}", "-1|a{}"] {
            assert_eq!(Snapshot::decode(bad.to_owned()), None, "{bad:?}");
        }
        let ok = Snapshot::decode("3|abc{}".to_owned()).unwrap();
        assert_eq!((ok.spec.as_str(), ok.payload.as_str()), ("abc", "{}"));
    }
}
