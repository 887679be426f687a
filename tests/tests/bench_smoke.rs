//! `xqueue-bench --quick` against a container Redis: the tool's library phases complete and
//! report non-zero rates, with the host's part in the tails (steal, idle mode, the raw loop's
//! own p99). No timing is asserted (numbers belong in BENCHMARKS.md).

use std::process::Command;

use serde_json::Value;
use xqueue_tests::docker::require_docker;

#[test]
fn quick_run_of_the_library_phases_reports_rates() {
    if !require_docker() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_xqueue-bench"))
        .args([
            "--quick",
            "--json",
            "--phases",
            "raw,redis,redis-queue,memory",
            "--tasks",
            "500",
            "--enqueue-tasks",
            "100",
            "--latency-secs",
            "1",
            "--idle-samples",
            "5",
        ])
        .output()
        .expect("running xqueue-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xqueue-bench failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)));
    let results = report["results"].as_array().expect("results");

    let skipped: Vec<&Value> = results.iter().filter(|r| r["kind"] == "skipped").collect();
    assert!(skipped.is_empty(), "skipped measurements: {skipped:#?}");
    let rate = |group: &str, name: &str| {
        results
            .iter()
            .find(|r| r["group"] == group && r["name"] == name)
            .and_then(|r| r["per_sec"].as_f64())
            .unwrap_or_else(|| panic!("no rate for {group} / {name}: {results:#?}"))
    };
    for group in ["redis (library)", "memory (library)"] {
        for name in [
            "enqueue one by one",
            "enqueue concurrent",
            "enqueue batched",
            "processing",
        ] {
            assert!(rate(group, name) > 0.0, "{group} / {name}");
        }
        let idle = results
            .iter()
            .find(|r| r["group"] == group && r["name"] == "idle worker submit→start")
            .expect("an idle-worker latency");
        assert!(idle["count"].as_u64() > Some(0), "{idle:#?}");
        // The host's share of the tails: each steady-rate row notes the hypervisor's steal.
        let steady = results
            .iter()
            .find(|r| {
                r["group"] == group
                    && r["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("submit→start @"))
            })
            .expect("a steady-rate latency");
        let note = steady["note"].as_str().unwrap_or_default();
        assert!(note.contains("host steal "), "{steady:#?}");
    }
    // How long the machine has been up (a VM fresh from boot runs slower for a while).
    assert!(
        report["machine"]["uptime_secs"].as_u64() > Some(0),
        "{report:#?}"
    );
    // The header says what idle CPUs do, and the targets set the raw loop's own p99 beside
    // XQueue's.
    let idle_mode = report["machine"]["idle"].as_str().unwrap_or_default();
    assert!(idle_mode.starts_with("cpuidle "), "{report:#?}");
    assert!(
        !idle_mode.contains("held"),
        "no --poll-idle, yet: {idle_mode}"
    );
    let checks = report["checks"].as_array().expect("checks");
    let idle_check = checks
        .iter()
        .find(|c| {
            c["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("idle worker"))
        })
        .expect("the idle-worker target");
    let measured = idle_check["measured"].as_str().unwrap_or_default();
    assert!(measured.contains("raw loop's own: "), "{idle_check:#?}");
    assert!(rate("raw baseline", "processing") > 0.0);
    // The diagnostic measures processing only.
    let diagnostic = "redis queue, memory state (library)";
    assert!(rate(diagnostic, "processing") > 0.0);
    let rows = results.iter().filter(|r| r["group"] == diagnostic).count();
    assert_eq!(rows, 1, "{results:#?}");
    // `--quick` runs one back-to-back pair, and the ratio checked is that pair's.
    let rounds = report["ratio_rounds"].as_array().expect("ratio_rounds");
    assert_eq!(rounds.len(), 1, "{report:#?}");
    let (raw, xqueue) = (rounds[0][0].as_f64(), rounds[0][1].as_f64());
    let (Some(raw), Some(xqueue)) = (raw, xqueue) else {
        panic!("a ratio round without rates: {report:#?}");
    };
    assert!(raw > 0.0 && xqueue > 0.0, "{report:#?}");
    let ratio = report["ratio"].as_f64().expect("a ratio");
    assert!((ratio - xqueue / raw).abs() < 1e-9, "{report:#?}");
}
