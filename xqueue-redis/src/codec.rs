//! How messages are written as stream entries and tasks as hashes.

use std::collections::HashMap;
use std::str::FromStr;

use serde_json::Value;
use xqueue_core::{Error, Message, Result, Task, TaskId, TaskStatus};

/// Stream entry field: the task id.
pub(crate) const F_TASK_ID: &str = "task_id";
/// Stream entry field: the task type.
pub(crate) const F_TASK_TYPE: &str = "task_type";
/// Stream entry field: the priority.
pub(crate) const F_PRIORITY: &str = "priority";
/// Stream entry field: publish time (ms).
pub(crate) const F_ENQUEUED_AT: &str = "enqueued_at";
/// Stream entry field: deliveries before this entry (set on copies made by `nack`).
pub(crate) const F_DELIVERIES: &str = "deliveries";

/// The field/value pairs of a message's stream entry.
pub(crate) fn message_fields(m: &Message) -> [String; 8] {
    [
        F_TASK_ID.into(),
        m.task_id.to_string(),
        F_TASK_TYPE.into(),
        m.task_type.clone(),
        F_PRIORITY.into(),
        m.priority.to_string(),
        F_ENQUEUED_AT.into(),
        m.enqueued_at.to_string(),
    ]
}

/// A message and the deliveries its entry carries over from `nack`, from `get`, which answers
/// a field's value by name.
pub(crate) fn decode_message<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<(Message, u32)> {
    let req = |name: &str| {
        get(name).ok_or_else(|| Error::Codec {
            what: "stream entry".into(),
            message: format!("missing field {name:?}"),
        })
    };
    let bad = |name: &str, v: &str| Error::Codec {
        what: "stream entry".into(),
        message: format!("field {name:?} has invalid value {v:?}"),
    };
    let task_id = TaskId::from_str(req(F_TASK_ID)?)?;
    let task_type = req(F_TASK_TYPE)?.to_owned();
    let priority = req(F_PRIORITY)?;
    let priority = priority.parse().map_err(|_| bad(F_PRIORITY, priority))?;
    let enqueued_at = req(F_ENQUEUED_AT)?;
    let enqueued_at = enqueued_at
        .parse()
        .map_err(|_| bad(F_ENQUEUED_AT, enqueued_at))?;
    let carried = match get(F_DELIVERIES) {
        Some(v) => v.parse().map_err(|_| bad(F_DELIVERIES, v))?,
        None => 0,
    };
    Ok((
        Message {
            task_id,
            task_type,
            priority,
            enqueued_at,
        },
        carried,
    ))
}

/// The hash fields of a task record; `""` stands for `None`.
pub(crate) fn task_fields(t: &Task) -> Vec<(&'static str, String)> {
    fn opt<T: ToString>(v: &Option<T>) -> String {
        v.as_ref().map(ToString::to_string).unwrap_or_default()
    }
    vec![
        ("id", t.id.to_string()),
        ("type", t.task_type.clone()),
        ("payload", t.payload.to_string()),
        ("priority", t.priority.to_string()),
        ("max_retries", t.max_retries.to_string()),
        ("timeout_ms", opt(&t.timeout_ms)),
        ("created_at", t.created_at.to_string()),
        ("status", t.status.as_str().to_string()),
        ("attempts", t.attempts.to_string()),
        ("run_at", opt(&t.run_at)),
        ("started_at", opt(&t.started_at)),
        ("finished_at", opt(&t.finished_at)),
        ("last_error", opt(&t.last_error)),
        ("result", opt(&t.result)),
        ("worker", opt(&t.worker)),
    ]
}

/// Reads a task record written by [`task_fields`] and updated by the state scripts.
pub(crate) fn decode_task(fields: &HashMap<String, String>) -> Result<Task> {
    decode_with(|name| fields.get(name).map(String::as_str))
}

/// The fields `begin` reads of a record it marked running (with `HMGET`, in this order): the
/// status and attempts it decides on, and the task. It knows the others: `id`, and the
/// `started_at` and `worker` of the attempt it starts; a task that can start has no
/// `finished_at` or `result`.
pub(crate) const BEGIN_FIELDS: [&str; 10] = [
    "status",
    "attempts",
    "type",
    "payload",
    "priority",
    "max_retries",
    "timeout_ms",
    "created_at",
    "run_at",
    "last_error",
];

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
    Ok(Task {
        id: TaskId::from_str(req("id")?)?,
        task_type: req("type")?.to_owned(),
        payload: json("payload", req("payload")?)?,
        priority: num("priority", req("priority")?).map_err(codec)?,
        status: TaskStatus::from_str(req("status")?)?,
        attempts: num("attempts", req("attempts")?).map_err(codec)?,
        max_retries: num("max_retries", req("max_retries")?).map_err(codec)?,
        timeout_ms: opt_num("timeout_ms")?,
        created_at: num("created_at", req("created_at")?).map_err(codec)?,
        run_at: opt_num("run_at")?,
        started_at: opt_num("started_at")?,
        finished_at: opt_num("finished_at")?,
        last_error: opt("last_error").map(str::to_owned),
        result: opt("result").map(|v| json("result", v)).transpose()?,
        worker: opt("worker").map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xqueue_core::now_millis;

    fn task() -> Task {
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

    #[test]
    fn tasks_round_trip() {
        let t = task();
        let map: HashMap<String, String> = task_fields(&t)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let back = decode_task(&map).unwrap();
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
    fn messages_round_trip() {
        let t = task();
        let m = t.message();
        let f = message_fields(&m);
        let map: HashMap<String, String> =
            f.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
        let get = |name: &str| map.get(name).map(String::as_str);
        assert_eq!(decode_message(get).unwrap(), (m, 0));
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
