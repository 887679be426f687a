//! Memory: the `xqueue-server` binary's RSS, idle and with tasks queued (on Redis).
//!
//! The server runs as a child process (`--backend redis`, its own key prefix). The tasks are
//! of its built-in type `example` limited to one at a time and asked to sleep 10 minutes:
//! one runs, the server buffers a fetch batch, every other task waits in Redis, as it does
//! behind a slow consumer. RSS is `VmRSS` from /proc (and `VmHWM`, the peak).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::Args;
use crate::report::{human_bytes, Report, Value};
use crate::sys::rss;
use crate::Ctx;

const GROUP: &str = "server rss";

/// The row name of the RSS with tasks queued.
pub fn queued_name(args: &Args) -> String {
    format!("RSS with {} tasks queued", args.rss_tasks)
}

/// Runs the RSS measurements.
pub async fn run(ctx: &Ctx, report: &mut Report) {
    if let Err(e) = measure(ctx, report).await {
        tracing::error!(error = %e, "RSS measurement failed");
        report.add(GROUP, "RSS", Value::Skipped { why: e.to_string() }, "");
    }
}

/// Kills the child when dropped (the bench may fail half-way).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server_bin(args: &Args) -> crate::Result<PathBuf> {
    let path = match &args.server_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("this binary has no directory")?
            .join("xqueue-server"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no server binary at {}: build it with `cargo build --release -p xqueue-server` (same target dir), or give --server-bin",
            path.display()
        )
        .into())
    }
}

async fn measure(ctx: &Ctx, report: &mut Report) -> crate::Result<()> {
    let bin = server_bin(&ctx.args)?;
    let redis = ctx.redis()?;
    let n = ctx.args.rss_tasks as u64;
    let prefix = ctx.prefix("rss");
    let port = xqueue_tests::docker::free_port();
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let child = Command::new(&bin)
        .args(["--backend", "redis", "--redis-url", redis.url()])
        .args(["--key-prefix", &prefix])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--max-stream-length", &(2 * n + 1000).to_string()])
        .args(["--limit", "example=1", "--shutdown-deadline", "1s"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let server = Server(child);
    let pid = server.0.id();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;

    let ready_by = Instant::now() + Duration::from_secs(30);
    loop {
        let up = client.get(format!("{base}/health")).send().await;
        if matches!(&up, Ok(r) if r.status().is_success()) {
            break;
        }
        if Instant::now() > ready_by {
            return Err(format!("xqueue-server on port {port} not healthy after 30 s").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = rss(pid).ok_or("cannot read the server's /proc status")?;
    report.add(
        GROUP,
        "RSS idle",
        Value::Bytes { bytes: idle as f64 },
        format!("xqueue-server --backend redis, 10 workers, healthy for 2 s; pid {pid}"),
    );

    let bar = ctx.progress.bar("server rss: queue tasks", n);
    let mut sent = 0u64;
    while sent < n {
        let k = (n - sent).min(1000);
        let body: Vec<_> = (sent..sent + k)
            .map(|i| {
                json!({
                    "type": "example",
                    "payload": { "duration_ms": 600_000, "seq": i, "pad": "x".repeat(64) },
                })
            })
            .collect();
        let r = client
            .post(format!("{base}/tasks/batch"))
            .json(&body)
            .send()
            .await?;
        if r.status() != reqwest::StatusCode::CREATED {
            let status = r.status();
            return Err(format!("batch submit answered {status}: {}", r.text().await?).into());
        }
        r.bytes().await?;
        sent += k;
        bar.set_position(sent);
    }
    bar.finish();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (queued, peak) = rss(pid).ok_or("cannot read the server's /proc status")?;
    let mut conn = redis.conn();
    let pending: u64 = redis::cmd("ZCARD")
        .arg(format!("{prefix}:status:pending"))
        .query_async(&mut conn)
        .await
        .unwrap_or(0);
    let processing: u64 = redis::cmd("ZCARD")
        .arg(format!("{prefix}:status:processing"))
        .query_async(&mut conn)
        .await
        .unwrap_or(0);
    report.add(
        GROUP,
        &queued_name(&ctx.args),
        Value::Bytes {
            bytes: queued as f64,
        },
        format!(
            "submitted over HTTP (batches of 1000); then {pending} pending, {processing} running; peak (VmHWM) {}",
            human_bytes(peak as f64)
        ),
    );
    drop(server);
    if let Err(e) = redis.delete_prefix(&prefix).await {
        tracing::warn!(error = %e, "could not delete the server's keys");
    }
    Ok(())
}
