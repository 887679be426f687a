//! Reading raw replies ([`redis::Value`]) of XQueue's commands and scripts.

use std::collections::HashMap;

use redis::Value;
use xqueue_core::Result;

use crate::error::unexpected;

/// The elements of an array reply (`Nil` is an empty array).
pub(crate) fn array(v: Value, what: &str) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(unexpected(what, other)),
    }
}

/// A string reply; integers are written in decimal.
pub(crate) fn string(v: &Value, what: &str) -> Result<String> {
    match v {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Okay => Ok("OK".into()),
        other => Err(unexpected(what, other)),
    }
}

/// An integer reply (or a string holding one).
pub(crate) fn int(v: &Value, what: &str) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::BulkString(_) | Value::SimpleString(_) => {
            string(v, what)?.parse().map_err(|_| unexpected(what, v))
        }
        Value::Nil => Ok(0),
        other => Err(unexpected(what, other)),
    }
}

/// A flat `[field, value, field, value, …]` reply as a map.
pub(crate) fn field_map(v: Value, what: &str) -> Result<HashMap<String, String>> {
    let items = array(v, what)?;
    let mut map = HashMap::with_capacity(items.len() / 2);
    for pair in items.chunks(2) {
        if let [k, v] = pair {
            map.insert(string(k, what)?, string(v, what)?);
        }
    }
    Ok(map)
}
