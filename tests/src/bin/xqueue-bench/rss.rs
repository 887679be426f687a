//! Memory: the server binary's RSS, idle and with tasks queued.

use crate::cli::Args;
use crate::report::{Report, Value};
use crate::Ctx;

/// The row name of the RSS with tasks queued.
pub fn queued_name(args: &Args) -> String {
    format!("RSS with {} tasks queued", args.rss_tasks)
}

/// Runs the RSS measurements.
pub async fn run(_ctx: &Ctx, report: &mut Report) {
    report.add(
        "server rss",
        "all",
        Value::Skipped {
            why: "xqueue-server has no binary yet".into(),
        },
        "",
    );
}
