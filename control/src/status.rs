//! `GET /status`: a small server-rendered HTML page for operators, and the pool's state gauges
//! for `GET /metrics`.
//!
//! The page is one table, a row per replica (state, ring share, connections, bytes, last check,
//! last transition, respawns), under a line naming the hash family, the runtime and the ring
//! generation. No JavaScript: a `<meta http-equiv="refresh">` reloads it every two seconds, like
//! HAProxy's `stats refresh`. Each row carries `data-replica` and `data-state` attributes, so a
//! script (or a test) can read the page as well as a person.

use std::collections::HashSet;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use ringlb_core::metrics as m;

use crate::api::state_word;
use crate::manager::Manager;

/// Seconds between two reloads of the page.
const REFRESH_SECONDS: u32 = 2;

/// Sets the gauges that describe the pool (`ringlb_replica_up` per replica, `ringlb_replicas`
/// per state) from the manager's current view, and returns the names in the pool.
///
/// `/metrics` calls it right before rendering, so a scrape never shows a state older than the
/// scrape itself, whatever path (active check, failed connect, exit, respawn) changed it.
pub(crate) fn refresh_gauges(manager: &Manager) -> HashSet<String> {
    let st = manager.state();
    let mut per_state = [0u32; 3];
    let mut names = HashSet::with_capacity(st.replicas.len());
    for r in &st.replicas {
        let state = state_word(r.phase, r.health.is_up());
        if let Some(k) = m::REPLICA_STATES.iter().position(|s| *s == state) {
            per_state[k] += 1;
        }
        let up = if state == "up" { 1.0 } else { 0.0 };
        ::metrics::gauge!(m::REPLICA_UP, "replica" => r.name.clone()).set(up);
        names.insert(r.name.clone());
    }
    for (state, n) in m::REPLICA_STATES.iter().zip(per_state) {
        ::metrics::gauge!(m::REPLICAS, "state" => *state).set(n);
    }
    names
}

/// Renders the page.
pub(crate) fn render(manager: &Manager, hash: &str) -> String {
    let routes = manager.inner.directory.load();
    let shares = routes.ring.shares();
    let st = manager.state();
    let up = st.replicas.iter().filter(|r| r.health.is_up()).count();
    let mut rows = String::new();
    for r in &st.replicas {
        let share = routes
            .ring
            .members()
            .iter()
            .position(|m| m.name == r.name)
            .and_then(|k| shares.get(k).copied())
            .unwrap_or(0.0);
        let state = state_word(r.phase, r.health.is_up());
        let h = &r.health;
        let name = esc(&r.name);
        let _ = writeln!(
            rows,
            "<tr class=\"{state}\" data-replica=\"{name}\" data-state=\"{state}\">\
             <td class=\"name\">{name}</td><td class=\"num\">{id}</td><td>{addr}</td>\
             <td class=\"state\">{state}</td>\
             <td class=\"share\"><span class=\"bar\" style=\"width:{bar:.0}px\"></span>{pct:.1} %</td>\
             <td class=\"num\">{active}</td><td class=\"num\">{total}</td>\
             <td class=\"num\">{to_replica}</td><td class=\"num\">{to_client}</td>\
             <td>{check}</td><td>{trans}</td><td class=\"num\">{resp}</td></tr>",
            id = r.id,
            addr = r.addr,
            bar = share * 80.0,
            pct = share * 100.0,
            active = h.active.load(Ordering::Relaxed),
            total = h.total.load(Ordering::Relaxed),
            to_replica = bytes(h.bytes_to_replica.load(Ordering::Relaxed)),
            to_client = bytes(h.bytes_to_client.load(Ordering::Relaxed)),
            check = match r.last_check {
                Some(t) => format!(
                    "{} ({})",
                    ago(t),
                    if r.last_check_ok { "ok" } else { "failed" }
                ),
                None => "–".into(),
            },
            trans = r.last_transition.map(ago).unwrap_or_else(|| "–".into()),
            resp = r.respawns,
        );
    }
    if st.replicas.is_empty() {
        rows.push_str("<tr><td colspan=\"12\">no replicas: add some with POST /add</td></tr>\n");
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ringlb status</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; background: #fff; }}
h1 {{ font-size: 1.4em; margin: 0 0 .3em; }} h1 small {{ color: #777; font-weight: normal; font-size: .6em; }}
table {{ border-collapse: collapse; font-size: .92em; }}
th, td {{ padding: .35em .75em; border-bottom: 1px solid #ddd; text-align: left; white-space: nowrap; }}
th {{ background: #f3f3f3; }} td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.state {{ font-weight: bold; }} tr.up td.state {{ color: #080; }} tr.down td.state {{ color: #b00; }}
tr.down {{ background: #fdecec; }} tr.respawning td.state {{ color: #a60; }} tr.respawning {{ background: #fff6e0; }}
.bar {{ display: inline-block; height: .7em; background: #6a9fd8; margin-right: .5em; vertical-align: middle; }}
.meta {{ color: #555; margin: 0 0 1em; }} .links {{ margin-top: 1em; }}
</style></head><body>
<h1>ringlb <small>{version}</small></h1>
<p class="meta">hash <b id="hash">{hash}</b> · runtime <b>{runtime}</b> · replicas <b id="count">{n}</b> · up <b id="up">{up}</b> · down <b id="down">{down}</b> · ring generation <b>{gen}</b> · updated {now} UTC, every {REFRESH_SECONDS} s</p>
<table id="replicas">
<thead><tr><th>replica</th><th>id</th><th>address</th><th>state</th><th>ring share</th><th>active</th><th>connections</th><th>bytes to replica</th><th>bytes to client</th><th>last check</th><th>last transition</th><th>respawns</th></tr></thead>
<tbody>
{rows}</tbody></table>
<p class="links"><a href="/rep">/rep</a> · <a href="/replicas">/replicas</a> · <a href="/metrics">/metrics</a></p>
</body></html>
"#,
        version = env!("CARGO_PKG_VERSION"),
        hash = esc(hash),
        runtime = manager.runtime_kind(),
        n = st.replicas.len(),
        down = st.replicas.len() - up,
        gen = routes.generation,
        now = clock(SystemTime::now()),
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ago(t: SystemTime) -> String {
    match t.elapsed() {
        Ok(d) if d.as_secs() >= 120 => format!("{} min ago", d.as_secs() / 60),
        Ok(d) => format!("{:.1} s ago", d.as_secs_f64()),
        Err(_) => "now".into(),
    }
}

/// `HH:MM:SS` of the day, in UTC.
fn clock(t: SystemTime) -> String {
    let s = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(esc("<a&\"b\">"), "&lt;a&amp;&quot;b&quot;&gt;");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400 * 3 + 3723);
        assert_eq!(clock(t), "01:02:03");
    }
}
