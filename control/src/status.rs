//! `GET /status`: a small server-rendered HTML page for operators. No JavaScript; it refreshes
//! itself every few seconds.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use crate::api::state_word;
use crate::manager::Manager;

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
        let _ = write!(
            rows,
            "<tr class=\"{state}\"><td>{name}</td><td>{id}</td><td>{addr}</td><td class=\"state\">{state}</td>\
             <td>{share:.1} %</td><td>{active}</td><td>{total}</td><td>{up_b}</td><td>{down_b}</td>\
             <td>{check}</td><td>{trans}</td><td>{resp}</td></tr>\n",
            name = esc(&r.name),
            id = r.id,
            addr = r.addr,
            share = share * 100.0,
            active = h.active.load(Ordering::Relaxed),
            total = h.total.load(Ordering::Relaxed),
            up_b = bytes(h.bytes_to_replica.load(Ordering::Relaxed)),
            down_b = bytes(h.bytes_to_client.load(Ordering::Relaxed)),
            check = match r.last_check {
                Some(t) => format!("{} ({})", ago(t), if r.last_check_ok { "ok" } else { "failed" }),
                None => "–".into(),
            },
            trans = r.last_transition.map(ago).unwrap_or_else(|| "–".into()),
            resp = r.respawns,
        );
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>ringlb status</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ padding: .35em .8em; border-bottom: 1px solid #ddd; text-align: left; }}
th {{ background: #f3f3f3; }} tr.down td.state {{ color: #b00; font-weight: bold; }}
tr.up td.state {{ color: #080; font-weight: bold; }} tr.respawning td.state {{ color: #a60; font-weight: bold; }}
.meta {{ color: #555; }}
</style></head><body>
<h1>ringlb</h1>
<p class="meta">hash <b>{hash}</b> · runtime <b>{runtime}</b> · replicas <b id="count">{n}</b> · up <b id="up">{up}</b> · ring generation {gen}</p>
<table id="replicas">
<thead><tr><th>replica</th><th>id</th><th>address</th><th>state</th><th>ring share</th><th>active</th><th>connections</th><th>bytes in</th><th>bytes out</th><th>last check</th><th>last transition</th><th>respawns</th></tr></thead>
<tbody>
{rows}</tbody></table>
<p><a href="/rep">/rep</a> · <a href="/replicas">/replicas</a> · <a href="/metrics">/metrics</a></p>
</body></html>
"#,
        hash = esc(hash),
        runtime = manager.runtime_kind(),
        n = st.replicas.len(),
        gen = routes.generation,
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

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
