//! What a run measured: rows of results, the target checks, a table or JSON.

use serde::Serialize;

use crate::latency::LatencySummary;
use crate::sys::Machine;

/// One measured value.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Value {
    /// Tasks (or operations) per second.
    Rate {
        /// Per second.
        per_sec: f64,
        /// How many.
        count: u64,
        /// Over how long.
        secs: f64,
    },
    /// A latency distribution.
    Latency(LatencySummary),
    /// Bytes.
    Bytes {
        /// How many.
        bytes: f64,
    },
    /// A dimensionless ratio.
    Ratio {
        /// The ratio.
        ratio: f64,
    },
    /// A phase that could not run, and why.
    Skipped {
        /// Why.
        why: String,
    },
}

/// One line of the results table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The phase: `raw`, `redis (library)`, `redis (http)`, `memory (library)`, …
    pub group: String,
    /// What was measured.
    pub name: String,
    /// The value.
    #[serde(flatten)]
    pub value: Value,
    /// Context: CPU use, commands per task, the settings of the measurement.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// A target of issue 7, checked against this run.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// The target.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// Whether it is met.
    pub met: bool,
}

/// Everything a run produced.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Option<Machine>,
    /// The settings, as given on the command line (after `--quick`).
    pub settings: serde_json::Value,
    /// The measurements, in the order taken.
    pub results: Vec<Row>,
    /// XQueue-Redis processing rate / raw baseline rate: the median of `ratio_rounds`, or
    /// the two processing rows' ratio when no round ran.
    pub ratio: Option<f64>,
    /// The back-to-back pairs of `--rounds`: raw baseline and XQueue-Redis processing rates
    /// (tasks/s).
    pub ratio_rounds: Vec<[f64; 2]>,
    /// The targets of issue 7.
    pub checks: Vec<Check>,
}

impl Report {
    /// Adds a row.
    pub fn add(&mut self, group: &str, name: &str, value: Value, note: impl Into<String>) {
        let row = Row {
            group: group.into(),
            name: name.into(),
            value,
            note: note.into(),
        };
        if !matches!(row.value, Value::Skipped { .. }) {
            tracing::info!(group = %row.group, name = %row.name, result = %format_value(&row.value), note = %row.note, "measured");
        }
        self.results.push(row);
    }

    /// Adds a rate row.
    pub fn rate(
        &mut self,
        group: &str,
        name: &str,
        count: u64,
        secs: f64,
        note: impl Into<String>,
    ) {
        let per_sec = if secs > 0.0 { count as f64 / secs } else { 0.0 };
        self.add(
            group,
            name,
            Value::Rate {
                per_sec,
                count,
                secs,
            },
            note,
        );
    }

    /// The rate of the row `group`/`name`, if measured.
    pub fn rate_of(&self, group: &str, name: &str) -> Option<f64> {
        self.find(group, name).and_then(|v| match v {
            Value::Rate { per_sec, .. } => Some(*per_sec),
            _ => None,
        })
    }

    /// The latency of the row `group`/`name`, if measured.
    pub fn latency_of(&self, group: &str, name: &str) -> Option<&LatencySummary> {
        self.find(group, name).and_then(|v| match v {
            Value::Latency(l) => Some(l),
            _ => None,
        })
    }

    /// The bytes of the row `group`/`name`, if measured.
    pub fn bytes_of(&self, group: &str, name: &str) -> Option<f64> {
        self.find(group, name).and_then(|v| match v {
            Value::Bytes { bytes } => Some(*bytes),
            _ => None,
        })
    }

    fn find(&self, group: &str, name: &str) -> Option<&Value> {
        self.results
            .iter()
            .find(|r| r.group == group && r.name == name)
            .map(|r| &r.value)
    }

    /// The results as a plain-text table.
    pub fn table(&self) -> String {
        let mut rows: Vec<[String; 4]> = vec![[
            "phase".into(),
            "measurement".into(),
            "result".into(),
            "notes".into(),
        ]];
        for r in &self.results {
            rows.push([
                r.group.clone(),
                r.name.clone(),
                format_value(&r.value),
                r.note.clone(),
            ]);
        }
        let mut out = String::new();
        if let Some(m) = &self.machine {
            let redis = if m.redis_address.is_empty() {
                "Redis not used".to_string()
            } else {
                format!(
                    "Redis {} at {} (appendonly {})",
                    m.redis_version,
                    m.redis_address,
                    if m.redis_aof { "yes" } else { "no" },
                )
            };
            out.push_str(&format!(
                "machine: {} × {}, {:.1} GiB RAM, Linux {}, up {} min, load {:.2} at start; idle CPUs: {}; {redis}\n\n",
                m.cpus,
                m.cpu_model,
                m.memory_bytes as f64 / (1u64 << 30) as f64,
                m.kernel,
                m.uptime_secs / 60,
                m.load_at_start,
                m.idle,
            ));
        }
        out.push_str(&render(&rows));
        if let Some(ratio) = self.ratio {
            out.push_str(&format!(
                "\nXQueue-Redis processing / raw baseline: {:.1} % ({ratio:.3})\n",
                ratio * 100.0
            ));
        }
        if !self.checks.is_empty() {
            out.push('\n');
            let mut rows: Vec<[String; 4]> = vec![[
                "target".into(),
                "measured".into(),
                "met".into(),
                String::new(),
            ]];
            for c in &self.checks {
                rows.push([
                    c.target.clone(),
                    c.measured.clone(),
                    if c.met { "yes" } else { "NO" }.into(),
                    String::new(),
                ]);
            }
            out.push_str(&render(&rows));
        }
        out
    }
}

/// A value as the table shows it.
pub fn format_value(v: &Value) -> String {
    match v {
        Value::Rate {
            per_sec,
            count,
            secs,
        } => {
            format!("{} /s ({count} in {secs:.2} s)", thousands(*per_sec))
        }
        Value::Latency(l) => format!(
            "p50 {} p99 {} p99.9 {} max {} (n={})",
            ms(l.p50_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us),
            l.count
        ),
        Value::Bytes { bytes } => human_bytes(*bytes),
        Value::Ratio { ratio } => format!("{:.1} %", ratio * 100.0),
        Value::Skipped { why } => format!("skipped: {why}"),
    }
}

/// Microseconds as milliseconds with three decimals.
pub fn ms(us: f64) -> String {
    format!("{:.3} ms", us / 1000.0)
}

/// A number with thousands separators, no decimals.
pub fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in B, KiB or MiB.
pub fn human_bytes(b: f64) -> String {
    if b.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b.abs() >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

fn render(rows: &[[String; 4]]) -> String {
    let mut widths = [0usize; 4];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join(" | ").trim_end());
        out.push('\n');
        if i == 0 {
            let sep: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&sep.join("-+-"));
            out.push('\n');
        }
    }
    out
}
