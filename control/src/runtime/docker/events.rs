//! The `docker events` watcher behind [`Runtime::exits`](crate::runtime::Runtime::exits): a
//! replica that is killed or crashes is reported at once instead of after `--fall` failed health
//! checks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Pause before the stream is started again after it ended: long enough not to spin while the
/// engine restarts, short enough that the health checker is rarely first.
const RETRY: Duration = Duration::from_secs(1);
/// How far back the first stream starts (`--since`), so that a replica dying while the stream is
/// still being set up is not missed. Replaying older deaths is harmless: only the death of a
/// container that is still current is passed on.
const LOOKBACK: Duration = Duration::from_secs(2);
const NANOS: u128 = 1_000_000_000;

/// Container id of each current replica, by name, shared with the runtime.
pub(super) type Current = Arc<Mutex<HashMap<String, String>>>;

/// The part of a `docker events --format '{{json .}}'` line that is needed.
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "Actor")]
    actor: Actor,
    #[serde(rename = "timeNano", default)]
    time_nano: u128,
}

#[derive(Debug, Deserialize)]
struct Actor {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Attributes", default)]
    attributes: HashMap<String, String>,
}

/// Streams the `die` events of one instance's containers.
pub(super) struct Watch {
    /// The docker CLI.
    pub(super) docker: PathBuf,
    /// `--filter=label=ringlb.instance=<instance>`.
    pub(super) filter: String,
    /// Which container is current for each name: the death of any other is no news.
    pub(super) current: Current,
    /// Where the names go.
    pub(super) tx: mpsc::UnboundedSender<String>,
    /// Cancelled at shutdown.
    pub(super) stop: CancellationToken,
}

impl Watch {
    /// Streams events until shutdown or until nobody listens, restarting the stream when it ends
    /// (engine restart, CLI crash) from the last event seen, so deaths in the gap are replayed.
    /// The child is killed when this future stops.
    pub(super) async fn run(self) {
        let mut since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(LOOKBACK)
            .as_nanos();
        while !self.tx.is_closed() {
            let from = format!("--since={}.{:09}", since / NANOS, since % NANOS);
            let child = Command::new(&self.docker)
                .args(["events", &from, &self.filter, "--filter=event=die"])
                .arg("--format={{json .}}")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn();
            match child {
                Ok(mut child) => {
                    let out = child.stdout.take().expect("stdout is piped");
                    let mut lines = BufReader::new(out).lines();
                    loop {
                        tokio::select! {
                            _ = self.stop.cancelled() => return,
                            line = lines.next_line() => match line {
                                Ok(Some(line)) => since = since.max(self.forward(&line)),
                                _ => break,
                            },
                        }
                    }
                    tracing::debug!("docker events stream ended; restarting it");
                }
                Err(e) => tracing::warn!(error = %e, "cannot run `docker events`"),
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    }

    /// Passes on the name of a replica whose current container died, once: the entry is taken out
    /// of `current`, so a replayed event finds nothing. Returns the event's time (0 if unreadable).
    fn forward(&self, line: &str) -> u128 {
        let Ok(ev) = serde_json::from_str::<Event>(line) else {
            return 0;
        };
        let Some(name) = ev.actor.attributes.get("name") else {
            return ev.time_nano;
        };
        let mut current = self.current.lock().expect("current lock");
        let is_current = current
            .get(name)
            .is_some_and(|id| !id.is_empty() && ev.actor.id.starts_with(id));
        if is_current {
            current.remove(name);
            tracing::info!(replica = %name, "container died");
            let _ = self.tx.send(name.clone());
        }
        ev.time_nano
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_container_of_a_name_counts_and_only_once() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let current: Current = Arc::default();
        current.lock().unwrap().insert("S1".into(), "abc".into());
        let w = Watch {
            docker: "docker".into(),
            filter: String::new(),
            current,
            tx,
            stop: CancellationToken::new(),
        };
        let line = |id: &str, name: &str| {
            format!(r#"{{"Actor":{{"ID":"{id}","Attributes":{{"name":"{name}"}}}},"timeNano":7}}"#)
        };
        assert_eq!(w.forward(&line("old", "S1")), 7);
        assert_eq!(w.forward(&line("abcdef", "S2")), 7);
        assert!(rx.try_recv().is_err());
        w.forward(&line("abcdef", "S1"));
        w.forward(&line("abcdef", "S1"));
        assert_eq!(rx.try_recv().ok().as_deref(), Some("S1"));
        assert!(rx.try_recv().is_err());
        assert_eq!(w.forward("not json"), 0);
    }
}
