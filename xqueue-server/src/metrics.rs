//! Prometheus metrics in the text exposition format (0.0.4), rendered from
//! [`TaskManager::stats`](xqueue_core::TaskManager::stats).

use std::fmt::Write;

use xqueue_core::{Stats, TaskStatus};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `stats` as Prometheus text.
///
/// # Behavior
/// - `xqueue_tasks{status}` counts tasks per status across the deployment (every status,
///   zeros included); worker, counter and throughput metrics are this instance's.
/// - `xqueue_queue_*{queue}` describe each queue; `xqueue_stream_length` sums them.
pub fn render(stats: &Stats) -> String {
    let mut out = String::with_capacity(4096);
    let w = &stats.workers;
    family(
        &mut out,
        "xqueue_info",
        "gauge",
        "This instance: always 1, with its id and backend as labels.",
    );
    let _ = writeln!(
        out,
        "xqueue_info{{instance_id=\"{}\",backend=\"{}\"}} 1",
        escape(&stats.instance_id),
        escape(stats.backend)
    );
    family(
        &mut out,
        "xqueue_running",
        "gauge",
        "1 while the worker pool runs.",
    );
    let _ = writeln!(out, "xqueue_running {}", u8::from(stats.is_running));
    family(
        &mut out,
        "xqueue_tasks",
        "gauge",
        "Tasks per status across the deployment (finished ones within their retention).",
    );
    for status in TaskStatus::ALL {
        let _ = writeln!(
            out,
            "xqueue_tasks{{status=\"{}\"}} {}",
            status.as_str(),
            stats.counts.get(status)
        );
    }
    for (name, kind, help, value) in [
        (
            "xqueue_workers_total",
            "gauge",
            "Worker slots of this instance.",
            w.total_workers as f64,
        ),
        (
            "xqueue_workers_active",
            "gauge",
            "Worker slots running a task now.",
            w.active_workers as f64,
        ),
        (
            "xqueue_tasks_processed_total",
            "counter",
            "Attempts that succeeded on this instance.",
            w.processed_tasks as f64,
        ),
        (
            "xqueue_tasks_failed_total",
            "counter",
            "Attempts that failed on this instance.",
            w.failed_tasks as f64,
        ),
        (
            "xqueue_tasks_retried_total",
            "counter",
            "Failed attempts scheduled for a retry on this instance.",
            w.retried_tasks as f64,
        ),
        (
            "xqueue_tasks_dead_lettered_total",
            "counter",
            "Tasks dead-lettered by this instance.",
            w.dead_lettered_tasks as f64,
        ),
        (
            "xqueue_tasks_started_on_submit_total",
            "counter",
            "Tasks a submit to this instance handed straight to one of its idle workers.",
            w.started_on_submit as f64,
        ),
        (
            "xqueue_throughput_tasks_per_second",
            "gauge",
            "Finished attempts per second over the last ten seconds.",
            w.throughput,
        ),
        (
            "xqueue_uptime_seconds",
            "gauge",
            "Seconds since this instance started.",
            w.uptime.as_secs_f64(),
        ),
        (
            "xqueue_stream_length",
            "gauge",
            "Messages stored over every queue.",
            stats.queues.length as f64,
        ),
        (
            "xqueue_stream_waiting",
            "gauge",
            "Messages not yet delivered, over every queue.",
            stats.queues.waiting as f64,
        ),
        (
            "xqueue_stream_pending",
            "gauge",
            "Messages delivered and not yet acked, over every queue.",
            stats.queues.pending as f64,
        ),
    ] {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    for (name, help, pick) in [
        (
            "xqueue_queue_length",
            "Messages stored in the queue.",
            (|q| q.length) as fn(&xqueue_core::QueueInfo) -> u64,
        ),
        ("xqueue_queue_waiting", "Messages not yet delivered.", |q| {
            q.waiting
        }),
        (
            "xqueue_queue_pending",
            "Messages delivered, not yet acked.",
            |q| q.pending,
        ),
    ] {
        family(&mut out, name, "gauge", help);
        for q in &stats.queues.queues {
            let _ = writeln!(out, "{name}{{queue=\"{}\"}} {}", escape(&q.queue), pick(q));
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (`\`, `"` and newlines).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
