//! Writing results: markdown tables next to every chart, and one machine-readable
//! `results.json` that each experiment updates under its own key.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

/// A markdown table.
#[derive(Clone, Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Table {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// GitHub-flavoured markdown; numeric-looking columns are right-aligned.
    pub fn markdown(&self) -> String {
        let numeric = |c: usize| {
            self.rows.iter().all(|r| {
                r.get(c).is_some_and(|v| {
                    v == "–"
                        || v.trim_end_matches(['%', 'x', ' '])
                            .trim_start_matches(['~', '≤', '+', '-'])
                            .replace([',', '.', '/', ' '], "")
                            .chars()
                            .all(|ch| ch.is_ascii_digit())
                })
            })
        };
        let mut s = format!("| {} |\n|", self.headers.join(" | "));
        for c in 0..self.headers.len() {
            s.push_str(if !self.rows.is_empty() && numeric(c) {
                "---:|"
            } else {
                "---|"
            });
        }
        s.push('\n');
        for r in &self.rows {
            s.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        s
    }
}

/// A float with `d` decimals.
pub fn f(x: f64, d: usize) -> String {
    format!("{x:.d$}")
}

/// A fraction as a percentage with one decimal.
pub fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

/// The output directory of a run.
#[derive(Clone, Debug)]
pub struct Out {
    pub dir: PathBuf,
}

impl Out {
    /// Creates the directory if needed.
    pub fn new(dir: &Path) -> Result<Out> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Out {
            dir: dir.to_path_buf(),
        })
    }

    /// The path of `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes a text file.
    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf> {
        let p = self.path(name);
        fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
        Ok(p)
    }

    /// Sets `key` in `results.json` to `value` (the other experiments' keys are kept, so running
    /// `a1` after `all` only refreshes A-1), together with the machine and the command.
    pub fn record(&self, key: &str, value: &impl Serialize) -> Result<()> {
        let p = self.path("results.json");
        let mut all: Value = fs::read_to_string(&p)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        all[key] = json!({
            "command": command_line(),
            "machine": machine(),
            "result": serde_json::to_value(value)?,
        });
        self.write("results.json", &serde_json::to_string_pretty(&all)?)?;
        Ok(())
    }
}

/// The command that is running, as typed (for "how it was run").
pub fn command_line() -> String {
    let mut args = std::env::args();
    let exe = args
        .next()
        .map(|a| {
            Path::new(&a)
                .file_name()
                .map_or(a.clone(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    std::iter::once(exe)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The machine the numbers come from: core count and CPU model.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    /// `/proc/loadavg` when the experiment was written: the machine may be shared.
    pub loadavg: String,
    /// The conntrack table when the experiment was written.
    pub conntrack: Option<crate::conntrack::Usage>,
}

/// Reads the core count and `/proc/cpuinfo`'s model name.
pub fn machine() -> Machine {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let loadavg = fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        kernel,
        loadavg,
        conntrack: crate::conntrack::usage(),
    }
}

/// The header every experiment's markdown starts with: what ran, where, and how.
pub fn preamble(title: &str, runtime: &str) -> String {
    let m = machine();
    format!(
        "# {title}\n\nProduced by `{}` (runtime: {runtime}; machine: {} cores, {}, Linux {}; \
         load average {} when written).\n\n",
        command_line(),
        m.nproc,
        m.cpu,
        m.kernel,
        m.loadavg
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_aligns_numbers_right() {
        let mut t = Table::new(["replica", "requests", "share"]);
        t.row(["Server-1", "8438", "84.4 %"]);
        let md = t.markdown();
        assert!(md.contains("|---|---:|---:|"), "{md}");
        assert!(md.contains("| Server-1 | 8438 | 84.4 % |"));
    }
}
