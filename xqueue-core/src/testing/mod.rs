//! The backend conformance suite: one list of cases every backend's harness runs.
//!
//! A backend crate's test calls [`run_conformance`] with a [`Fixture`] that hands out fresh
//! [`Backends`] in a namespace of their own (unique key or topic prefix), so cases never see
//! each other and reruns against the same broker pass. Cases a backend's [`Capabilities`]
//! exclude are reported as skipped, never silently dropped.
//!
//! [`Capabilities`]: crate::Capabilities

mod handlers;
mod lifecycle_cases;
mod manager_cases;
mod manager_support;
mod queue_cases;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::queue::Capabilities;
use crate::Backends;

pub use handlers::{Recorder, RecordingHandler};
pub use manager_support::test_config;

/// Hands out backends for conformance cases.
#[async_trait]
pub trait Fixture: Send + Sync + 'static {
    /// Fresh backends in a namespace no other call has used.
    async fn backends(&self) -> Backends;
}

/// A boxed case body.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One conformance case: panics (assertions) mean failure.
pub struct Case {
    /// Name shown in the report.
    pub name: &'static str,
    /// Which backends it applies to.
    pub applies: fn(&Capabilities) -> bool,
    /// The body.
    pub run: fn(Arc<dyn Fixture>) -> CaseFuture,
}

fn always(_: &Capabilities) -> bool {
    true
}

/// Every case, in one list.
pub fn cases() -> Vec<Case> {
    let mut all = queue_cases::cases();
    all.extend(manager_cases::cases());
    all
}

pub(crate) fn case(
    name: &'static str,
    applies: Option<fn(&Capabilities) -> bool>,
    run: fn(Arc<dyn Fixture>) -> CaseFuture,
) -> Case {
    Case {
        name,
        applies: applies.unwrap_or(always),
        run,
    }
}

/// Longest time one case may take.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs every case that applies to the fixture's backends; panics naming each failed case.
///
/// Set `XQUEUE_CASES=name1,name2` to run only some cases (while debugging a backend).
pub async fn run_conformance(fixture: Arc<dyn Fixture>) {
    let caps = fixture.backends().await.queue.capabilities();
    let only: Option<Vec<String>> = std::env::var("XQUEUE_CASES")
        .ok()
        .map(|s| s.split(',').map(|x| x.trim().to_owned()).collect());
    let mut failed = Vec::new();
    let mut passed = 0;
    let mut skipped = Vec::new();
    for c in cases() {
        if let Some(only) = &only {
            if !only.iter().any(|o| o == c.name) {
                continue;
            }
        }
        if !(c.applies)(&caps) {
            skipped.push(c.name);
            eprintln!("conformance: {:<44} skipped (capabilities)", c.name);
            continue;
        }
        let start = Instant::now();
        let fut = (c.run)(fixture.clone());
        let result = tokio::time::timeout(CASE_TIMEOUT, tokio::spawn(fut)).await;
        let took = start.elapsed();
        match result {
            Ok(Ok(())) => {
                passed += 1;
                eprintln!("conformance: {:<44} ok ({took:.2?})", c.name);
            }
            Ok(Err(e)) => {
                let msg = e
                    .try_into_panic()
                    .ok()
                    .and_then(|p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    })
                    .unwrap_or_else(|| "cancelled".into());
                eprintln!("conformance: {:<44} FAILED ({took:.2?}): {msg}", c.name);
                failed.push(format!("{}: {msg}", c.name));
            }
            Err(_) => {
                eprintln!(
                    "conformance: {:<44} FAILED: timed out after {CASE_TIMEOUT:?}",
                    c.name
                );
                failed.push(format!("{}: timed out", c.name));
            }
        }
    }
    eprintln!(
        "conformance: {passed} passed, {} failed, {} skipped",
        failed.len(),
        skipped.len()
    );
    assert!(
        failed.is_empty(),
        "conformance cases failed:\n{}",
        failed.join("\n")
    );
    assert!(passed > 0, "no conformance case ran");
}

/// Polls `check` every 20 ms until it is true or `within` passes; returns whether it held.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod memory_conformance {
    use super::*;

    struct MemoryFixture;

    #[async_trait]
    impl Fixture for MemoryFixture {
        async fn backends(&self) -> Backends {
            crate::memory::backends()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_backend_passes_the_conformance_suite() {
        run_conformance(Arc::new(MemoryFixture)).await;
    }
}
