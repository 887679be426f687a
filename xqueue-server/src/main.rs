//! `xqueue-server`: XQueue's REST API and worker pool. See `xqueue-server --help`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use xqueue_server::config::{LogFormat, ServerConfig};

/// jemalloc instead of the system allocator: a task's trip through the pool and redis-rs is
/// dozens of small allocations, and glibc's malloc spent a fifth of the worker's CPU on them
/// (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let config = ServerConfig::parse();
    init_tracing(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xqueue-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(xqueue_server::server::run(config)) {
        Ok(report) => {
            tracing::info!(?report, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "xqueue-server failed");
            eprintln!("xqueue-server: {e}");
            ExitCode::FAILURE
        }
    };
    // Do not wait for blocking work a backend may still hold (a broker client closing).
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
