//! XQueue through its REST API (xqueue-server's router served in process).

use crate::report::{Report, Value};
use crate::Ctx;

/// Runs the HTTP measurements.
pub async fn run(_ctx: &Ctx, report: &mut Report) {
    report.add(
        "redis (http)",
        "all",
        Value::Skipped {
            why: "xqueue-server has no router yet".into(),
        },
        "",
    );
}
