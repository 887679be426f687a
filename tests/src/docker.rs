//! Docker availability checks shared by every container test.
//!
//! A test that needs Docker starts with `if !require_docker() { return; }` (the container
//! helpers do it for it): without Docker it is skipped with a message on stderr, unless
//! `XQUEUE_REQUIRE_DOCKER=1` or `CI` is set, in which case it fails.

use std::io::{Read, Write};
use std::sync::OnceLock;
use std::time::Duration;

/// Whether Docker answers. When it does not: panics if Docker is required
/// (`XQUEUE_REQUIRE_DOCKER=1`, or `CI` set), otherwise prints why the test is skipped and
/// returns `false`.
pub fn require_docker() -> bool {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    match AVAILABLE.get_or_init(docker_answers) {
        Ok(()) => true,
        Err(why) => {
            if docker_required() {
                panic!(
                    "Docker is required (XQUEUE_REQUIRE_DOCKER=1 or CI is set) but not available: {why}"
                );
            }
            eprintln!(
                "skipping: Docker is not available ({why}) (set XQUEUE_REQUIRE_DOCKER=1 to fail instead)"
            );
            false
        }
    }
}

/// Whether a missing Docker must fail the tests instead of skipping them.
pub fn docker_required() -> bool {
    let set =
        |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("XQUEUE_REQUIRE_DOCKER") || set("CI")
}

/// A TCP port free on 127.0.0.1 right now (for a fixed host port mapping).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a free port on 127.0.0.1")
}

/// Pings the daemon the way testcontainers reaches it: `DOCKER_HOST` (unix:// or tcp://), or
/// the default socket. Falls back to `docker info` for other setups.
fn docker_answers() -> Result<(), String> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let pinged = if let Some(addr) = host.strip_prefix("tcp://") {
        std::net::TcpStream::connect(addr)
            .map_err(|e| e.to_string())
            .and_then(ping)
    } else {
        let path = host
            .strip_prefix("unix://")
            .unwrap_or("/var/run/docker.sock")
            .to_string();
        std::os::unix::net::UnixStream::connect(&path)
            .map_err(|e| format!("{path}: {e}"))
            .and_then(ping)
    };
    pinged.or_else(|socket_err| {
        let out = std::process::Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .map_err(|e| format!("{socket_err}; docker CLI: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{socket_err}; docker info: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    })
}

trait Stream: Read + Write {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()>;
}

impl Stream for std::net::TcpStream {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl Stream for std::os::unix::net::UnixStream {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

/// `GET /_ping` must answer `200 OK`.
fn ping(mut s: impl Stream) -> Result<(), String> {
    s.set_timeouts(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let status = answer.lines().next().unwrap_or_default();
    if status.contains(" 200 ") {
        Ok(())
    } else {
        Err(format!("the daemon answered {status:?} to a ping"))
    }
}
