//! `xqueue-server`: XQueue's REST API and worker pool. See `xqueue-server --help`.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use xqueue_server::config::{LogFormat, ServerConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let config = ServerConfig::parse();
    init_tracing(config.log_format);
    match xqueue_server::server::run(config).await {
        Ok(report) => {
            tracing::info!(?report, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "xqueue-server failed");
            eprintln!("xqueue-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
