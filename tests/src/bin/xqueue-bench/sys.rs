//! The machine and processes, from /proc.

use serde::Serialize;

/// Where the benchmark ran.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// The CPU's model name.
    pub cpu_model: String,
    /// Total memory, bytes.
    pub memory_bytes: u64,
    /// The kernel release.
    pub kernel: String,
    /// The Redis server's version.
    pub redis_version: String,
    /// Whether Redis writes an append-only file.
    pub redis_aof: bool,
    /// Where Redis was reached.
    pub redis_address: String,
    /// Load average (1 minute) when the run started: others' work on the same cores.
    pub load_at_start: f64,
    /// Seconds since the machine booted, when the run started: a VM fresh from boot may run
    /// slower for its first minutes (BENCHMARKS.md, seventeenth pass).
    pub uptime_secs: u64,
    /// What an idle CPU does: the cpuidle driver, the guest's halt-polling window and whether
    /// this run holds a 0 µs CPU-latency request (`--poll-idle`).
    pub idle: String,
}

impl Machine {
    /// Reads the machine's description; `redis_version` from the server used.
    pub fn read(
        redis_version: String,
        redis_aof: bool,
        redis_address: String,
        poll_idle: Option<&PollIdle>,
    ) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        let load_at_start = first_number("/proc/loadavg").unwrap_or(0.0);
        let uptime_secs = first_number("/proc/uptime").map_or(0, |secs| secs as u64);
        Machine {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            memory_bytes,
            kernel,
            redis_version,
            redis_aof,
            redis_address,
            load_at_start,
            uptime_secs,
            idle: idle_mode(poll_idle),
        }
    }
}

/// The first number of a file like `/proc/loadavg` or `/proc/uptime`.
fn first_number(path: &str) -> Option<f64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// "cpuidle haltpoll, halt polling 0 ns" and, under `--poll-idle`, "; CPU-latency request
/// 0 µs held: idle CPUs poll".
fn idle_mode(poll_idle: Option<&PollIdle>) -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let driver = read("/sys/devices/system/cpu/cpuidle/current_driver")
        .map(|d| format!("cpuidle {d}"))
        .unwrap_or_else(|| "cpuidle unknown".into());
    let mut mode = match read("/sys/module/haltpoll/parameters/guest_halt_poll_ns") {
        Some(ns) => format!("{driver}, halt polling {ns} ns"),
        None => driver,
    };
    if poll_idle.is_some() {
        mode.push_str("; CPU-latency request 0 µs held: idle CPUs poll");
    }
    mode
}

/// A 0 µs CPU-latency request (PM QoS), held while the value lives: the kernel keeps idle
/// CPUs out of every state that takes time to leave, so they poll instead of halting.
pub struct PollIdle {
    _file: std::fs::File,
}

impl PollIdle {
    /// Opens `/dev/cpu_dma_latency` and writes 0 (needs root).
    pub fn hold() -> std::io::Result<PollIdle> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/cpu_dma_latency")?;
        file.write_all(&0i32.to_ne_bytes())?;
        Ok(PollIdle { _file: file })
    }
}

/// CPU seconds (user + system) a process has used, all its threads together.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on every Linux this runs on.
    (ticks(11) + ticks(12)) / 100.0
}

/// This process's CPU seconds.
pub fn own_cpu_secs() -> f64 {
    cpu_secs(std::process::id())
}

/// `VmRSS` and `VmHWM` (peak) of a process, in bytes.
pub fn rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((kb("VmRSS:")?, kb("VmHWM:")?))
}

/// The machine's CPU time stolen by its hypervisor, from the `cpu` line of /proc/stat: a
/// virtual CPU that waits for a real one runs nothing, so every latency measured while the
/// share is high carries the host's stalls (the raw loop's own rows show them too).
#[derive(Clone, Copy, Debug)]
pub struct Steal {
    steal: u64,
    total: u64,
}

impl Steal {
    /// Now; `None` where /proc/stat has no steal column.
    pub fn take() -> Option<Steal> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
        // already counted in user and nice.
        let steal = *ticks.get(7)?;
        Some(Steal {
            steal,
            total: ticks.iter().take(8).sum(),
        })
    }

    /// The share of all CPUs' time stolen since `self`; `None` when too little time passed
    /// to tell.
    pub fn share_since(self) -> Option<f64> {
        let now = Steal::take()?;
        let total = now.total.saturating_sub(self.total);
        (total >= 10).then(|| now.steal.saturating_sub(self.steal) as f64 / total as f64)
    }
}

/// `note` followed by "; host steal x.x %" since `mark`, when the machine reports it.
pub fn with_steal(note: String, mark: Option<Steal>) -> String {
    match mark.and_then(Steal::share_since) {
        Some(share) => format!("{note}; host steal {:.1} %", share * 100.0),
        None => note,
    }
}

/// CPU used by this process and by Redis over one measurement.
#[derive(Clone, Copy, Debug)]
pub struct CpuMark {
    own: f64,
    redis: f64,
    steal: Option<Steal>,
    at: std::time::Instant,
}

impl CpuMark {
    /// Now.
    pub fn take(redis_cpu: f64) -> CpuMark {
        CpuMark {
            own: own_cpu_secs(),
            redis: redis_cpu,
            steal: Steal::take(),
            at: std::time::Instant::now(),
        }
    }

    /// "cpu: this process x.x cores, redis y.y cores; host steal z.z %" since `self`.
    pub fn note_until(&self, redis_cpu_now: f64) -> String {
        let wall = self.at.elapsed().as_secs_f64();
        if wall < 0.1 {
            return "cpu: too short to tell".into();
        }
        let own = (own_cpu_secs() - self.own) / wall;
        let cores = if redis_cpu_now.is_nan() || self.redis.is_nan() {
            format!("cpu: this process {own:.2} cores")
        } else {
            let redis = (redis_cpu_now - self.redis) / wall;
            format!("cpu: this process {own:.2} cores, redis {redis:.2} cores")
        };
        with_steal(cores, self.steal)
    }
}
