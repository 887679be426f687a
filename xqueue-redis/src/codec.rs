//! How messages are written as stream entries and tasks as hashes.

use std::collections::HashMap;
use std::str::FromStr;

use serde_json::Value;
use xqueue_core::{Completion, Error, Message, Result, Task, TaskId, TaskStatus};

/// Stream entry field: the message, packed as `{task_id}|{priority}|{enqueued_at}|{task_type}`
/// (one field: an entry costs Redis and the client a quarter of the values four fields did).
pub(crate) const F_MESSAGE: &str = "msg";
/// Stream entry field: deliveries before this entry (set on copies made by `nack`).
pub(crate) const F_DELIVERIES: &str = "deliveries";
/// Fields of entries written before the packed [`F_MESSAGE`]; still read.
const F_TASK_ID: &str = "task_id";
const F_TASK_TYPE: &str = "task_type";
const F_PRIORITY: &str = "priority";
const F_ENQUEUED_AT: &str = "enqueued_at";

/// How many field/value pairs [`message_fields`] writes.
pub(crate) const MESSAGE_PAIRS: usize = 1;

/// The field/value pairs of a message's stream entry.
pub(crate) fn message_fields(m: &Message) -> [String; 2 * MESSAGE_PAIRS] {
    [
        F_MESSAGE.into(),
        format!(
            "{}|{}|{}|{}",
            m.task_id, m.priority, m.enqueued_at, m.task_type
        ),
    ]
}

/// A message and the deliveries its entry carries over from `nack`, from `get`, which answers
/// a field's value by name. Reads the packed [`F_MESSAGE`] and the four fields of entries
/// written before it.
pub(crate) fn decode_message<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<(Message, u32)> {
    let bad = |name: &str, v: &str| Error::Codec {
        what: "stream entry".into(),
        message: format!("field {name:?} has invalid value {v:?}"),
    };
    let message = match get(F_MESSAGE) {
        Some(packed) => {
            let mut parts = packed.splitn(4, '|');
            let mut next = || parts.next().ok_or_else(|| bad(F_MESSAGE, packed));
            let (task_id, priority, enqueued_at, task_type) = (next()?, next()?, next()?, next()?);
            Message {
                task_id: TaskId::from_str(task_id)?,
                priority: priority.parse().map_err(|_| bad(F_MESSAGE, packed))?,
                enqueued_at: enqueued_at.parse().map_err(|_| bad(F_MESSAGE, packed))?,
                task_type: task_type.to_owned(),
            }
        }
        None => {
            let req = |name: &str| {
                get(name).ok_or_else(|| Error::Codec {
                    what: "stream entry".into(),
                    message: format!("missing field {name:?}"),
                })
            };
            let priority = req(F_PRIORITY)?;
            let enqueued_at = req(F_ENQUEUED_AT)?;
            Message {
                task_id: TaskId::from_str(req(F_TASK_ID)?)?,
                task_type: req(F_TASK_TYPE)?.to_owned(),
                priority: priority.parse().map_err(|_| bad(F_PRIORITY, priority))?,
                enqueued_at: enqueued_at
                    .parse()
                    .map_err(|_| bad(F_ENQUEUED_AT, enqueued_at))?,
            }
        }
    };
    let carried = match get(F_DELIVERIES) {
        Some(v) => v.parse().map_err(|_| bad(F_DELIVERIES, v))?,
        None => 0,
    };
    Ok((message, carried))
}

/// Record field: what a task never changes but its payload, packed as
/// `{created_at}|{priority}|{max_retries}|{timeout_ms}|{type}` (`timeout_ms` empty for none; the
/// type last, so any character survives). One field instead of five: `begin` reads 6 values
/// per task, not 10.
pub(crate) const F_SPEC: &str = "spec";
/// The fields a record written before [`F_SPEC`] holds instead of it, in its order; still read.
pub(crate) const SPEC_FIELDS: [&str; 5] = [
    "created_at",
    "priority",
    "max_retries",
    "timeout_ms",
    "type",
];

/// Record field of a task that succeeded: how its last attempt ran, packed as
/// `{finished_at}|{attempts}|{started_at}|{worker}` (the worker last, so any character
/// survives). `complete` writes it with the status, two fields instead of six (BENCHMARKS.md,
/// fix 18); when present it stands for the four fields apart, which a record of any other
/// status (or a success recorded by an earlier version) holds instead.
pub(crate) const F_RUN: &str = "run";

/// The [`F_RUN`] value of an attempt as it ended.
pub(crate) fn packed_run(c: &Completion) -> String {
    let started = c.started_at.map(|t| t.to_string()).unwrap_or_default();
    let worker = c.worker.as_deref().unwrap_or_default();
    format!("{}|{}|{started}|{worker}", c.at, c.attempts)
}

/// The hash fields of a new task record: `id`, [`F_SPEC`], `payload`, `status` and
/// `attempts` always, each optional field only when it has a value (a missing field, like
/// an empty one, stands for `None`). A new task has none but perhaps `run_at`, so its record
/// has 5 or 6 fields, not 11: a fifth less Redis memory per task, and a smaller submit.
pub(crate) fn task_fields(t: &Task) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("id", t.id.to_string()),
        (
            F_SPEC,
            format!(
                "{}|{}|{}|{}|{}",
                t.created_at,
                t.priority,
                t.max_retries,
                t.timeout_ms.map(|v| v.to_string()).unwrap_or_default(),
                t.task_type
            ),
        ),
        ("payload", t.payload.to_string()),
        ("status", t.status.as_str().to_string()),
        ("attempts", t.attempts.to_string()),
    ];
    let optional = [
        ("run_at", t.run_at.map(|v| v.to_string())),
        ("started_at", t.started_at.map(|v| v.to_string())),
        ("finished_at", t.finished_at.map(|v| v.to_string())),
        ("last_error", t.last_error.clone()),
        ("result", t.result.as_ref().map(Value::to_string)),
        ("worker", t.worker.clone()),
    ];
    fields.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.filter(|v| !v.is_empty())?))),
    );
    fields
}

/// Reads a task record written by [`task_fields`] and updated by the state scripts.
pub(crate) fn decode_task(fields: &HashMap<String, String>) -> Result<Task> {
    decode_with(|name| fields.get(name).map(String::as_str))
}

/// The fields `begin` reads of a record it marked running (with `HMGET`, in this order): the
/// status and attempts it decides on, and the task. It knows the others: `id`, and the
/// `started_at` and `worker` of the attempt it starts; a task that can start has no
/// `finished_at` or `result`. A record written before [`F_SPEC`] has none; `begin` then reads
/// [`SPEC_FIELDS`] too.
pub(crate) const BEGIN_FIELDS: [&str; 6] = [
    "status",
    "attempts",
    F_SPEC,
    "payload",
    "run_at",
    "last_error",
];

/// Where `name` is in [`BEGIN_FIELDS`] (a `match`, not a search: `begin` asks for every field of
/// every task it starts).
pub(crate) fn begin_field(name: &str) -> Option<usize> {
    Some(match name {
        "status" => 0,
        "attempts" => 1,
        F_SPEC => 2,
        "payload" => 3,
        "run_at" => 4,
        "last_error" => 5,
        _ => return None,
    })
}

/// A record's fixed scalars and type, read from [`F_SPEC`] or, in a record written before it,
/// from [`SPEC_FIELDS`].
struct Spec<'a> {
    created_at: &'a str,
    priority: &'a str,
    max_retries: &'a str,
    timeout_ms: &'a str,
    task_type: &'a str,
}

impl<'a> Spec<'a> {
    fn read(get: &impl Fn(&str) -> Option<&'a str>) -> std::result::Result<Self, String> {
        // Split in place (no allocation): `begin` reads a spec for every task it starts.
        let parts: [&'a str; SPEC_FIELDS.len()] = match get(F_SPEC) {
            Some(packed) => {
                let mut split = packed.splitn(SPEC_FIELDS.len(), '|');
                let parts = SPEC_FIELDS.map(|_| split.next());
                if parts.iter().any(Option::is_none) {
                    return Err(format!("field {F_SPEC:?} has invalid value {packed:?}"));
                }
                parts.map(Option::unwrap_or_default)
            }
            None => SPEC_FIELDS.map(|name| get(name).unwrap_or_default()),
        };
        let missing = |i: usize| -> std::result::Result<&'a str, String> {
            Some(parts[i])
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("missing field {:?}", SPEC_FIELDS[i]))
        };
        Ok(Spec {
            created_at: missing(0)?,
            priority: missing(1)?,
            max_retries: missing(2)?,
            timeout_ms: parts[3],
            task_type: missing(4)?,
        })
    }
}

/// Reads a task record from `get`, which answers a field's value by name.
pub(crate) fn decode_with<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Task> {
    let id_hint = get("id").unwrap_or_default().to_owned();
    let codec = |message: String| Error::Codec {
        what: format!("task {id_hint}"),
        message,
    };
    let req = |name: &str| {
        get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| codec(format!("missing field {name:?}")))
    };
    let opt = |name: &str| get(name).filter(|v| !v.is_empty());
    fn num<T: FromStr>(name: &str, v: &str) -> std::result::Result<T, String> {
        v.parse()
            .map_err(|_| format!("field {name:?} has invalid value {v:?}"))
    }
    let json = |name: &str, v: &str| -> Result<Value> {
        serde_json::from_str(v).map_err(|e| codec(format!("field {name:?}: {e}")))
    };
    let opt_num = |name: &str| -> Result<Option<u64>> {
        opt(name).map(|v| num(name, v).map_err(codec)).transpose()
    };
    let spec = Spec::read(&get).map_err(codec)?;
    let run = match opt(F_RUN) {
        Some(packed) => {
            let mut split = packed.splitn(4, '|');
            let parts = [(); 4].map(|_| split.next());
            match parts {
                [Some(finished), Some(attempts), Some(started), Some(worker)] => {
                    Some((finished, attempts, started, worker))
                }
                _ => {
                    return Err(codec(format!(
                        "field {F_RUN:?} has invalid value {packed:?}"
                    )))
                }
            }
        }
        None => None,
    };
    let (finished_at, attempts, started_at, worker) = match run {
        Some((finished, attempts, started, worker)) => (
            Some(finished).filter(|v| !v.is_empty()),
            attempts,
            Some(started).filter(|v| !v.is_empty()),
            Some(worker).filter(|v| !v.is_empty()),
        ),
        None => (
            opt("finished_at"),
            req("attempts")?,
            opt("started_at"),
            opt("worker"),
        ),
    };
    let opt_time = |name: &str, v: Option<&str>| -> Result<Option<u64>> {
        v.map(|v| num(name, v).map_err(codec)).transpose()
    };
    let timeout_ms = Some(spec.timeout_ms).filter(|v| !v.is_empty());
    Ok(Task {
        id: TaskId::from_str(req("id")?)?,
        task_type: spec.task_type.to_owned(),
        payload: json("payload", req("payload")?)?,
        priority: num("priority", spec.priority).map_err(codec)?,
        status: TaskStatus::from_str(req("status")?)?,
        attempts: num("attempts", attempts).map_err(codec)?,
        max_retries: num("max_retries", spec.max_retries).map_err(codec)?,
        timeout_ms: timeout_ms
            .map(|v| num("timeout_ms", v))
            .transpose()
            .map_err(codec)?,
        created_at: num("created_at", spec.created_at).map_err(codec)?,
        run_at: opt_num("run_at")?,
        started_at: opt_time("started_at", started_at)?,
        finished_at: opt_time("finished_at", finished_at)?,
        last_error: opt("last_error").map(str::to_owned),
        result: opt("result").map(|v| json("result", v)).transpose()?,
        worker: worker.map(str::to_owned),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use xqueue_core::now_millis;

    pub(crate) fn task() -> Task {
        Task {
            id: TaskId::generate(),
            task_type: "email".into(),
            payload: serde_json::json!({"to": "a@b.c", "list": [], "n": 18446744073709551615u64}),
            priority: 7,
            status: TaskStatus::Pending,
            attempts: 0,
            max_retries: 3,
            timeout_ms: Some(1000),
            created_at: now_millis(),
            run_at: None,
            started_at: None,
            finished_at: None,
            last_error: Some(String::new()),
            result: Some(Value::Null),
            worker: None,
        }
    }

    /// The record [`task_fields`] writes for `t`, as `HGETALL` reads it back.
    pub(crate) fn record(t: &Task) -> HashMap<String, String> {
        task_fields(t)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    #[test]
    fn tasks_round_trip() {
        let t = task();
        let back = decode_task(&record(&t)).unwrap();
        // An empty error string reads back as none; everything else is exact.
        assert_eq!(back.last_error, None);
        assert_eq!(
            back,
            Task {
                last_error: None,
                ..t
            }
        );
    }

    #[test]
    fn records_keep_a_type_with_any_characters_and_older_records_still_decode() {
        let mut t = task();
        t.task_type = "a|b c".into();
        t.timeout_ms = None;
        let back = decode_task(&record(&t)).unwrap();
        assert_eq!((back.task_type.as_str(), back.timeout_ms), ("a|b c", None));
        // A record written before the packed spec: the same task, its fields apart.
        let t = task();
        let mut map = record(&t);
        map.remove(F_SPEC);
        for (name, value) in SPEC_FIELDS.iter().zip([
            t.created_at.to_string(),
            t.priority.to_string(),
            t.max_retries.to_string(),
            t.timeout_ms.unwrap().to_string(),
            t.task_type.clone(),
        ]) {
            map.insert(name.to_string(), value);
        }
        assert_eq!(
            decode_task(&map).unwrap(),
            Task {
                last_error: None,
                ..t
            }
        );
    }

    #[test]
    fn a_record_with_a_broken_spec_is_refused() {
        let t = task();
        for bad in [
            "1|2|3",
            "x|7|3||t",
            "1|7|x||t",
            "1|7|3|x|t",
            "1|7|3||",
            "|7|3||t",
        ] {
            let mut map = record(&t);
            map.insert(F_SPEC.into(), bad.into());
            assert!(decode_task(&map).is_err(), "{bad:?} must not decode");
        }
    }

    #[test]
    fn a_success_reads_its_packed_run_over_the_fields_apart() {
        // A new task has no result; a success with none writes none.
        let t = Task {
            result: None,
            ..task()
        };
        let done = Completion {
            id: t.id.clone(),
            outcome: xqueue_core::Outcome::Success {
                result: Value::Null,
            },
            at: 1_700_000_000_500,
            attempts: 2,
            started_at: Some(1_700_000_000_100),
            worker: Some("host|7:w3".into()),
        };
        // As `complete` leaves it: the fields apart keep what `insert` wrote.
        let mut map = record(&t);
        map.insert("status".into(), "success".into());
        map.insert(F_RUN.into(), packed_run(&done));
        let back = decode_task(&map).unwrap();
        assert_eq!(back.status, TaskStatus::Success);
        assert_eq!(back.finished_at, Some(1_700_000_000_500));
        assert_eq!(back.attempts, 2);
        assert_eq!(back.started_at, Some(1_700_000_000_100));
        assert_eq!(back.worker.as_deref(), Some("host|7:w3"));
        assert_eq!(back.result, None);

        // An attempt with no start time or worker (a completion built by hand).
        let bare = Completion {
            started_at: None,
            worker: None,
            ..done
        };
        map.insert(F_RUN.into(), packed_run(&bare));
        let back = decode_task(&map).unwrap();
        assert_eq!((back.started_at, back.worker), (None, None));

        for bad in ["1|2|3", "x|2|3|w", "1|x|3|w", "1|2|x|w", "1||3|w"] {
            map.insert(F_RUN.into(), bad.into());
            assert!(decode_task(&map).is_err(), "{bad:?} must not decode");
        }
    }

    #[test]
    fn messages_round_trip() {
        let t = task();
        let m = t.message();
        let f = message_fields(&m);
        let map: HashMap<String, String> =
            f.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
        let get = |name: &str| map.get(name).map(String::as_str);
        assert_eq!(decode_message(get).unwrap(), (m, 0));
    }

    fn decode_pairs(pairs: &[(&str, &str)]) -> Result<(Message, u32)> {
        decode_message(|name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v))
    }

    #[test]
    fn entries_of_the_four_field_format_still_decode() {
        let m = task().message();
        let (id, priority, at) = (
            m.task_id.to_string(),
            m.priority.to_string(),
            m.enqueued_at.to_string(),
        );
        let old = [
            ("task_id", id.as_str()),
            ("task_type", m.task_type.as_str()),
            ("priority", priority.as_str()),
            ("enqueued_at", at.as_str()),
            ("deliveries", "2"),
        ];
        assert_eq!(decode_pairs(&old).unwrap(), (m, 2));
    }

    #[test]
    fn a_packed_message_keeps_a_type_with_any_characters_and_rejects_garbage() {
        let mut m = task().message();
        m.task_type = "a|b c".into();
        let f = message_fields(&m);
        let decoded = decode_pairs(&[(&f[0], &f[1]), ("deliveries", "1")]).unwrap();
        assert_eq!(decoded, (m.clone(), 1));
        let id = m.task_id.to_string();
        for bad in [
            format!("{id}|7|1"),
            format!("{id}|x|1|t"),
            format!("{id}|7|-1|t"),
            "not-an-id|7|1|t".to_string(),
        ] {
            assert!(
                decode_pairs(&[("msg", bad.as_str())]).is_err(),
                "{bad:?} must not decode"
            );
        }
        assert!(decode_pairs(&[]).is_err(), "an empty entry must not decode");
    }

    #[test]
    fn begin_field_finds_each_field_where_begin_reads_it() {
        for (i, name) in BEGIN_FIELDS.iter().enumerate() {
            assert_eq!(begin_field(name), Some(i), "{name}");
        }
        assert_eq!(begin_field("id"), None);
        assert_eq!(begin_field("worker"), None);
    }

    #[test]
    fn begin_reads_every_field_it_does_not_write() {
        // `begin` knows these, and a task that can start has no outcome yet.
        let known = ["id", "started_at", "worker"];
        let unset = ["finished_at", "result"];
        for (name, _) in task_fields(&task()) {
            let read = BEGIN_FIELDS.contains(&name);
            assert!(
                read ^ (known.contains(&name) || unset.contains(&name)),
                "field {name:?}: begin must read it exactly when it does not know it"
            );
        }
    }
}
