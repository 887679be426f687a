//! The real `xqueue-server` binary: start-up errors, SIGTERM (graceful, exit 0), and
//! `kill -9` on Redis (a second instance finishes every accepted task).

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xqueue_tests::docker::free_port;
use xqueue_tests::redis::{unique_prefix, RedisServer};

const BIN: &str = env!("CARGO_BIN_EXE_xqueue-server");

/// A running `xqueue-server`; killed (SIGKILL) if still running when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn spawn(args: &[&str]) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(BIN)
            .args(["--listen", &listen])
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("XQUEUE_BACKEND")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning xqueue-server");
        Server {
            child,
            base: format!("http://{listen}"),
        }
    }

    /// Waits until `/api/v1/health` answers 200.
    async fn ready(&mut self, c: &reqwest::Client) {
        let start = Instant::now();
        loop {
            if let Ok(r) = c.get(format!("{}/api/v1/health", self.base)).send().await {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("xqueue-server exited early: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "server not ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("running kill")
            .success();
        assert!(ok, "kill {sig} failed");
    }

    async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < within,
                "server did not exit within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn submit_many(c: &reqwest::Client, base: &str, n: usize, body: Value) -> Vec<String> {
    let batch: Vec<Value> = (0..n).map(|_| body.clone()).collect();
    let r = c
        .post(format!("{base}/api/v1/tasks/batch"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.unwrap();
    v["task_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

async fn stats(c: &reqwest::Client, base: &str) -> Value {
    c.get(format!("{base}/api/v1/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_processing(c: &reqwest::Client, base: &str) {
    let start = Instant::now();
    while stats(c, base).await["processing_tasks"].as_u64().unwrap() == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "nothing started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every task in `ids` succeeded; answers their attempts.
async fn wait_all_success(c: &reqwest::Client, base: &str, ids: &[String], within: Duration) {
    let start = Instant::now();
    for id in ids {
        loop {
            let t: Value = c
                .get(format!("{base}/api/v1/tasks/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if t["status"] == "success" {
                break;
            }
            assert!(start.elapsed() < within, "task not finished: {t}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[test]
fn help_lists_every_setting() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--backend",
        "--workers",
        "--batch-size",
        "--block-timeout",
        "--claim-idle",
        "--max-stream-length",
        "--redis-url",
        "--key-prefix",
        "--kafka-brokers",
        "--kafka-partitions",
        "--group",
        "--instance-id",
        "--limit",
        "--shutdown-deadline",
        "--retention",
        "--max-body-bytes",
        "XQUEUE_BACKEND",
        "XQUEUE_LIMITS",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn bad_settings_fail_at_start_up_with_a_message() {
    let out = Command::new(BIN)
        .args(["--backend", "sqs"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqs"));

    let out = Command::new(BIN)
        .args(["--limit", "example=0"])
        .output()
        .unwrap();
    assert!(!out.status.success());

    #[cfg(not(feature = "kafka"))]
    {
        let out = Command::new(BIN)
            .args(["--backend", "kafka", "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--features kafka"), "{err}");
    }

    let out = Command::new(BIN)
        .args([
            "--backend",
            "redis",
            "--redis-url",
            "redis://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("redis"));
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let c = client();
    let mut server = Server::spawn(&[
        "--backend",
        "memory",
        "--shutdown-deadline",
        "5s",
        "--block-timeout",
        "500ms",
    ]);
    server.ready(&c).await;
    let ids = submit_many(
        &c,
        &server.base,
        2,
        json!({"type": "email", "payload": {"duration_ms": 400}}),
    )
    .await;
    wait_processing(&c, &server.base).await;
    server.signal("-TERM");
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status}");
    assert_eq!(ids.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_task_on_redis() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let c = client();
    let args = |id: &'static str| {
        vec![
            "--backend".to_string(),
            "redis".into(),
            "--redis-url".into(),
            redis.url().to_string(),
            "--key-prefix".into(),
            prefix.clone(),
            "--instance-id".into(),
            id.into(),
            "--claim-idle".into(),
            "2s".into(),
            "--limiter-lease".into(),
            "2s".into(),
            "--block-timeout".into(),
            "500ms".into(),
            "--batch-size".into(),
            "5".into(),
        ]
    };
    let victim_args = args("victim");
    let victim_args: Vec<&str> = victim_args.iter().map(String::as_str).collect();
    let mut victim = Server::spawn(&victim_args);
    victim.ready(&c).await;
    let ids = submit_many(
        &c,
        &victim.base,
        12,
        json!({"type": "email", "payload": {"duration_ms": 1500}}),
    )
    .await;
    wait_processing(&c, &victim.base).await;
    victim.signal("-KILL");
    victim.wait_exit(Duration::from_secs(5)).await;

    let rescuer_args = args("rescuer");
    let rescuer_args: Vec<&str> = rescuer_args.iter().map(String::as_str).collect();
    let mut rescuer = Server::spawn(&rescuer_args);
    rescuer.ready(&c).await;
    wait_all_success(&c, &rescuer.base, &ids, Duration::from_secs(60)).await;
    let s = stats(&c, &rescuer.base).await;
    assert_eq!(s["success_tasks"], 12, "{s}");

    // Graceful stop of the second one: exit 0.
    rescuer.signal("-TERM");
    assert!(rescuer.wait_exit(Duration::from_secs(15)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_cut_off_by_the_shutdown_deadline_run_again_elsewhere() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix();
    let c = client();
    let common = [
        "--backend",
        "redis",
        "--redis-url",
        redis.url(),
        "--key-prefix",
        &prefix,
        "--block-timeout",
        "500ms",
        "--limiter-lease",
        "2s",
    ];
    let mut first = Server::spawn(&[&common[..], &["--shutdown-deadline", "300ms"]].concat());
    first.ready(&c).await;
    let ids = submit_many(
        &c,
        &first.base,
        5,
        json!({"type": "email", "payload": {"duration_ms": 3000}}),
    )
    .await;
    wait_processing(&c, &first.base).await;
    first.signal("-TERM");
    let status = first.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status}");

    let mut second = Server::spawn(&common);
    second.ready(&c).await;
    wait_all_success(&c, &second.base, &ids, Duration::from_secs(60)).await;
}
