//! Per-type concurrency limits held exactly across instances, with leased permits.
//!
//! Each operation is one Lua script (`scripts/limiter_*.lua`), so an `acquire` sees every
//! permit held by every instance and grants atomically. Lease times are the Redis server's
//! clock, so instances' clocks need not agree.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use xqueue_core::{ConcurrencyLimiter, Error, Result};

use crate::backend::RedisBackend;
use crate::error::{self, KIND};
use crate::reply;

#[async_trait]
impl ConcurrencyLimiter for RedisBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, task_type, limit))]
    async fn set_limit(&self, task_type: &str, limit: u32) -> Result<()> {
        if limit == 0 {
            return Err(Error::invalid("max_concurrency", "must be at least 1"));
        }
        let _: i64 = redis::cmd("HSET")
            .arg(self.inner.keys.limits())
            .arg(task_type)
            .arg(limit)
            .query_async(&mut self.inner.conn.shared())
            .await
            .map_err(error::map)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, task_type))]
    async fn clear_limit(&self, task_type: &str) -> Result<()> {
        let _: i64 = redis::cmd("HDEL")
            .arg(self.inner.keys.limits())
            .arg(task_type)
            .query_async(&mut self.inner.conn.shared())
            .await
            .map_err(error::map)?;
        Ok(())
    }

    async fn limits(&self) -> Result<BTreeMap<String, u32>> {
        let raw: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(self.inner.keys.limits())
            .query_async(&mut self.inner.conn.shared())
            .await
            .map_err(error::map)?;
        raw.into_iter()
            .map(|(t, v)| match v.parse() {
                Ok(n) => Ok((t, n)),
                Err(_) => Err(Error::Codec {
                    what: format!("limit of {t}"),
                    message: format!("{v:?} is not a number"),
                }),
            })
            .collect()
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, task_type, holder, want))]
    async fn acquire(&self, task_type: &str, holder: &str, want: u32) -> Result<u32> {
        if want == 0 {
            return Ok(0);
        }
        let mut inv = self.inner.scripts.acquire.prepare_invoke();
        inv.arg(self.inner.keys.prefix())
            .arg(task_type)
            .arg(holder)
            .arg(want)
            .arg(self.inner.config.limiter_lease.as_millis() as u64);
        let granted = reply::int(&self.run(&inv).await.map_err(error::map)?, "acquire")?;
        Ok(granted.clamp(0, want as i64) as u32)
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, task_type, holder, count))]
    async fn release(&self, task_type: &str, holder: &str, count: u32) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        let mut inv = self.inner.scripts.release.prepare_invoke();
        inv.arg(self.inner.keys.prefix())
            .arg(task_type)
            .arg(holder)
            .arg(count);
        self.run(&inv).await.map_err(error::map)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(backend = KIND, holder))]
    async fn refresh(&self, holder: &str, lease: Duration) -> Result<()> {
        let mut inv = self.inner.scripts.refresh.prepare_invoke();
        inv.arg(self.inner.keys.prefix())
            .arg(holder)
            .arg(lease.as_millis().max(1) as u64);
        self.run(&inv).await.map_err(error::map)?;
        Ok(())
    }

    async fn in_use(&self, task_type: &str) -> Result<u32> {
        let mut inv = self.inner.scripts.in_use.prepare_invoke();
        inv.arg(self.inner.keys.prefix()).arg(task_type);
        let n = reply::int(&self.run(&inv).await.map_err(error::map)?, "in_use")?;
        Ok(n.clamp(0, u32::MAX as i64) as u32)
    }
}
