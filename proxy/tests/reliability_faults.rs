//! Reliability suite, faults (F1–F6 of `docs/reliability.md`): a replica killed under load, how
//! many keys a membership change moves, a black-holed replica, every replica down, a
//! crash-looping replica, and a replica that accepts and closes at once.
//!
//! Settings unless a test says otherwise: heartbeat every 500 ms, fall 2, rise 2, connect timeout
//! 1 s (ringlb's defaults). Load comes from tokio threads in the test process ([`load::Load`]).
//! Every test ends with [`load::Baseline::settle`]: ringlb still runs, logged no panic, and its
//! descriptors, open-connection gauge, active connections and RSS are back within 5 s.
//!
//! The long ones are `#[ignore]`d and run by `.ci/run`:
//! `cargo test -p ringlb-proxy --test reliability_faults -- --ignored`.

mod common;
#[path = "common/load.rs"]
mod load;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{raw, status_of};
use load::{Baseline, Launch, Load, Paused, RSS_SLACK_KIB};
use ringlb_core::{Family, Key, Member, Ring, RingConfig};

/// Polls `f` every 10 ms until it is true or `within` passes; the time it took.
fn until(within: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < within {
        if f() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn state_of(lb: &common::Ringlb, name: &str) -> serde_json::Value {
    lb.details()
        .into_iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("{name} is listed"))
}

/// A request id owned by server `id`, and one owned by each other server.
fn rid_owned_by(lb: &common::Ringlb, id: u32) -> u32 {
    (0..2_000)
        .map(load::rid)
        .find(|&r| lb.home(r).ok() == Some(id))
        .expect("the replica owns some rid")
}

// ---------------------------------------------------------------------------------------------
// F1

/// F1: SIGKILL one of 3 replicas under 500 new connections a second. Connections arriving
/// ≥ 50 ms after the kill all succeed (a refused connect goes to the next replica on the ring);
/// total failures ≤ connections in flight at the kill; marked down ≤ 1.5 s; its replacement
/// (same name, new process) serves its keys again ≤ 3 s.
#[test]
#[ignore = "load test (10 s); run by .ci/run"]
fn f1_replica_sigkilled_under_load() {
    let _serial = load::serial();
    common::wait_for_conntrack_room(10_000);
    let mut lb = Launch::new(&["--replicas", "3"]).start();
    let victim = state_of(&lb, "Server-2");
    let victim_pid = victim["pid"].as_u64().expect("process runtime pid") as u32;
    let victim_id = victim["id"].as_u64().unwrap() as u32;
    let victim_rid = rid_owned_by(&lb, victim_id);
    let base = Baseline::take(&lb);

    let load = Load::rate(lb.data, 500.0, Duration::from_secs(12), |k| {
        format!("/home?rid={}", load::rid(k))
    });
    std::thread::sleep(Duration::from_secs(3));
    let kill_at = load.elapsed();
    let killed = Instant::now();
    assert!(load::signal(victim_pid, "KILL"));
    let mut marked_down = None;
    let mut serving_again = None;
    while killed.elapsed() < Duration::from_secs(6) && serving_again.is_none() {
        let v = state_of(&lb, "Server-2");
        let replaced = v["respawns"].as_u64() >= Some(1);
        if marked_down.is_none() && (v["state"] != "up" || replaced) {
            marked_down = Some(killed.elapsed());
        }
        if replaced && v["state"] == "up" && lb.home(victim_rid).ok() == Some(victim_id) {
            serving_again = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The load goes on for 5 s after the kill.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(killed.elapsed()));
    let out = load.stop();

    let in_flight = out
        .iter()
        .filter(|o| o.start <= kill_at && o.end >= kill_at)
        .count();
    let failed = out.iter().filter(|o| !o.ok()).count();
    let late = kill_at + Duration::from_millis(50);
    let failed_late: Vec<_> = out.iter().filter(|o| !o.ok() && o.start >= late).collect();
    let after = out.iter().filter(|o| o.start >= late).count();
    println!(
        "F1: {} connections at {:.0}/s; kill at {:?}; in flight at the kill {in_flight}; \
         failures {failed} (arriving >= 50 ms after the kill: {} of {after}); \
         marked down after {marked_down:?}; replacement serving after {serving_again:?}; \
         p99 {:.1} ms",
        out.len(),
        load::achieved_rate(&out),
        kill_at,
        failed_late.len(),
        load::latency_ms(&out, 0.99),
    );
    assert!(failed_late.is_empty(), "{:?}", load::sample_failures(&out));
    assert!(
        failed <= in_flight,
        "{failed} failures, {in_flight} in flight"
    );
    assert!(marked_down.expect("noticed") <= Duration::from_millis(1500));
    assert!(serving_again.expect("replaced") <= Duration::from_secs(3));
    let v = state_of(&lb, "Server-2");
    assert_ne!(v["pid"].as_u64(), Some(victim_pid as u64), "a new process");
    base.settle(&mut lb, RSS_SLACK_KIB);
}

// ---------------------------------------------------------------------------------------------
// F2

/// Keys whose owner differs between two rings.
fn owner_names(ring: &Ring, keys: &[String]) -> Vec<String> {
    keys.iter()
        .map(|k| {
            ring.members()[ring.owner(Key::new(k.as_bytes())).unwrap()]
                .name
                .clone()
        })
        .collect()
}

struct Moved {
    moved: usize,
    minimum: usize,
}

impl Moved {
    fn needless(&self) -> usize {
        self.moved - self.minimum
    }
}

fn compare(before: &[String], after: &[String], must_move: impl Fn(&str, &str) -> bool) -> Moved {
    let mut moved = 0;
    let mut minimum = 0;
    for (a, b) in before.iter().zip(after) {
        if a != b {
            moved += 1;
        }
        if must_move(a, b) {
            minimum += 1;
        }
    }
    Moved { moved, minimum }
}

/// F2: for every family and N = 3, 5, 10, over 100 000 request ids: remove the last replica,
/// remove the first, add one. The minimum is what consistency requires (the removed replica's
/// keys; the keys the new replica takes); anything more moved needlessly. Maglev: needless
/// moves ≤ 0.5 % of the keys; `ring` and `rendezvous`: none; `jump` and `assignment`: none when
/// the member with the largest id comes or goes (their documented promise; other removals are
/// reported).
#[test]
fn f2_ring_moves_only_what_it_must() {
    let _serial = load::serial();
    let keys: Vec<String> = (0..100_000u64).map(|k| load::rid(k).to_string()).collect();
    let n_keys = keys.len() as f64;
    let mut rows = Vec::new();
    for family in Family::ALL {
        for n in [3u32, 5, 10] {
            let cfg = RingConfig::new(family);
            let members: Vec<Member> = (1..=n)
                .map(|i| Member::new(format!("Server-{i}"), i))
                .collect();
            let base = owner_names(&Ring::build(&cfg, members.clone()).unwrap(), &keys);
            let mut cases = Vec::new();
            for (what, gone) in [("remove last", n as usize - 1), ("remove first", 0)] {
                let mut rest = members.clone();
                let removed = rest.remove(gone).name;
                let after = owner_names(&Ring::build(&cfg, rest).unwrap(), &keys);
                let m = compare(&base, &after, |a, _| a == removed);
                cases.push((what, m, gone == n as usize - 1));
            }
            let mut more = members.clone();
            let added = format!("Server-{}", n + 1);
            more.push(Member::new(added.clone(), n + 1));
            let after = owner_names(&Ring::build(&cfg, more).unwrap(), &keys);
            let m = compare(&base, &after, |_, b| b == added);
            cases.push(("add", m, true));
            for (what, m, at_largest_id) in cases {
                let needless = m.needless() as f64 / n_keys;
                println!(
                    "F2 {family:>10} N={n:>2} {what:<12}: moved {:>6} ({:>6.3} %), minimum {:>6} \
                     ({:>6.3} %), needless {:>5} ({:.3} %)",
                    m.moved,
                    m.moved as f64 / n_keys * 100.0,
                    m.minimum,
                    m.minimum as f64 / n_keys * 100.0,
                    m.needless(),
                    needless * 100.0
                );
                rows.push((family, n, what, needless));
                match family {
                    Family::Maglev => assert!(needless <= 0.005, "{family} N={n} {what}"),
                    Family::Ring | Family::Rendezvous => {
                        assert_eq!(m.needless(), 0, "{family} N={n} {what}")
                    }
                    Family::Jump | Family::Assignment if at_largest_id => {
                        assert_eq!(m.needless(), 0, "{family} N={n} {what}")
                    }
                    _ => {}
                }
            }
        }
    }
    let worst = rows
        .iter()
        .filter(|r| r.0 == Family::Maglev)
        .map(|r| r.3)
        .fold(0.0, f64::max);
    println!("F2: maglev worst needless share {:.3} %", worst * 100.0);
}

// ---------------------------------------------------------------------------------------------
// F3

/// F3: SIGSTOP one replica (a black hole: the kernel still completes handshakes, nothing
/// answers) under 100 new connections a second plus 10 keep-alive streams to the other
/// replicas; `--health-timeout 500ms`, `--idle-timeout 3s`. Marked down ≤ 2 s; from then on its keys are served by others; no connection lasts
/// past the idle timeout (3 s here) + 1 s; the streams see no failure; SIGCONT brings the same
/// process back into service ≤ 2 s (within `--respawn-after`, 10 s, so it is not replaced).
#[test]
#[ignore = "load test (12 s); run by .ci/run"]
fn f3_black_hole_replica() {
    let _serial = load::serial();
    common::wait_for_conntrack_room(3_000);
    let idle = Duration::from_secs(3);
    // The check timeout of the suite's conventions (500 ms): with the default 1 s, detection
    // takes 2 intervals + 1 timeout = 1.5..2.0 s, the very edge of the 2 s criterion.
    let mut lb = Launch::new(&[
        "--replicas",
        "3",
        "--idle-timeout",
        "3s",
        "--health-timeout",
        "500ms",
    ])
    .start();
    let victim = state_of(&lb, "Server-2");
    let victim_pid = victim["pid"].as_u64().unwrap() as u32;
    let victim_id = victim["id"].as_u64().unwrap() as u32;
    let victim_rid = rid_owned_by(&lb, victim_id);
    let others: Vec<u32> = load::owners(&lb, (0..200).map(load::rid))
        .into_iter()
        .filter(|&(_, id)| id != victim_id)
        .map(|(r, _)| r)
        .collect();
    let base = Baseline::take(&lb);

    let streams = Load::streams(
        lb.data,
        10,
        Duration::from_millis(200),
        Duration::from_secs(30),
        move |k| format!("/home?rid={}", others[(k / 1_000_000) as usize]),
    );
    let load = Load::rate(lb.data, 100.0, Duration::from_secs(30), |k| {
        format!("/home?rid={}", load::rid(k))
    });
    std::thread::sleep(Duration::from_secs(2));
    let paused = Paused::stop(&[victim_pid]);
    // Read after the signal is sent: `kill` is a process of its own and takes milliseconds to
    // start, and a clock read before it would put "marked down" that much too early, counting
    // connections routed just before the mark as routed after it.
    let stop_at = load.elapsed();
    let down = until(Duration::from_secs(5), || {
        state_of(&lb, "Server-2")["state"] == "down"
    });
    let down_at = stop_at + down.unwrap_or_default();
    // Its keys are served elsewhere meanwhile.
    let (status, body) = lb.get(&format!("/home?rid={victim_rid}")).unwrap();
    let elsewhere = common::server_id(status, &body).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let cont = Instant::now();
    paused.resume();
    let back = until(Duration::from_secs(5), || {
        state_of(&lb, "Server-2")["state"] == "up" && lb.home(victim_rid).ok() == Some(victim_id)
    });
    std::thread::sleep(Duration::from_secs(1));
    let _ = cont;
    let out = load.stop();
    let streamed = streams.stop();

    let after_down: Vec<_> = out.iter().filter(|o| o.start >= down_at).collect();
    let failed_after_down = after_down.iter().filter(|o| !o.ok()).count();
    let hung: Vec<_> = out
        .iter()
        .filter(|o| !o.ok() && o.start < down_at)
        .map(|o| o.end - o.start)
        .collect();
    let longest = out
        .iter()
        .map(|o| o.end - o.start)
        .max()
        .unwrap_or_default();
    let stream_failures = streamed.iter().filter(|o| !o.ok()).count();
    println!(
        "F3: marked down {down:?} after SIGSTOP; its rid {victim_rid} served by server \
         {elsewhere} meanwhile; {} connections, {} failed before it was marked down (longest \
         {:?}), {failed_after_down} of {} failed after; longest connection {longest:?} \
         (idle timeout {idle:?}); streams {} requests, {stream_failures} failed; back in service \
         {back:?} after SIGCONT",
        out.len(),
        hung.len(),
        hung.iter().max(),
        after_down.len(),
        streamed.len(),
    );
    assert!(down.expect("marked down") <= Duration::from_secs(2));
    assert_ne!(elsewhere, victim_id);
    assert_eq!(
        failed_after_down,
        0,
        "{:?}",
        load::sample_failures(&after_down.into_iter().cloned().collect::<Vec<_>>())
    );
    assert!(
        longest <= idle + Duration::from_secs(1),
        "a connection hung for {longest:?}"
    );
    assert_eq!(stream_failures, 0, "{:?}", load::sample_failures(&streamed));
    assert!(back.expect("back in service") <= Duration::from_secs(2));
    let v = state_of(&lb, "Server-2");
    assert_eq!(
        v["pid"].as_u64(),
        Some(victim_pid as u64),
        "the same process came back"
    );
    assert_eq!(v["respawns"].as_u64(), Some(0));
    base.settle(&mut lb, RSS_SLACK_KIB);
}

// ---------------------------------------------------------------------------------------------
// F4

/// F4: every replica stopped (SIGSTOP; `--respawn-after 60s` so none is replaced). Once they are
/// marked down, every new client gets a 503 within 100 ms, counted as `no_replica`; service is
/// back ≤ 3 s after SIGCONT.
#[test]
fn f4_all_replicas_down() {
    let _serial = load::serial();
    let mut lb = Launch::new(&["--replicas", "3", "--respawn-after", "60s"]).start();
    let pids: Vec<u32> = lb.replica_pids().into_iter().map(|(_, p)| p).collect();
    assert_eq!(pids.len(), 3);
    let base = Baseline::take(&lb);
    let rejected = |lb: &common::Ringlb| {
        load::metric(
            &load::scrape(lb),
            "ringlb_requests_rejected_total",
            &[("reason", "no_replica")],
        )
    };
    let before = rejected(&lb);

    let paused = Paused::stop(&pids);
    let all_down = until(Duration::from_secs(5), || {
        common::try_call(lb.control, "GET", "/readyz", None)
            .map(|r| r.0)
            .ok()
            == Some(503)
    });
    let mut slowest = Duration::ZERO;
    let clients = 50;
    for k in 0..clients {
        let t = Instant::now();
        let answer = raw(
            lb.data,
            &load::request(&format!("/home?rid={}", load::rid(k)), true),
            Duration::from_secs(3),
        )
        .unwrap();
        slowest = slowest.max(t.elapsed());
        assert_eq!(
            status_of(&answer),
            503,
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    let counted = rejected(&lb) - before;
    let cont = Instant::now();
    paused.resume();
    let back = until(Duration::from_secs(5), || {
        lb.get("/home").map(|r| r.0).unwrap_or(0) == 200
    });
    let _ = cont;
    println!(
        "F4: all marked down {all_down:?} after SIGSTOP; {clients} clients got 503, slowest \
         {slowest:?}; no_replica counter +{counted}; first 200 {back:?} after SIGCONT"
    );
    assert!(all_down.is_some());
    assert!(slowest <= Duration::from_millis(100), "{slowest:?}");
    assert_eq!(counted, clients as f64);
    assert!(back.expect("service returns") <= Duration::from_secs(3));
    base.settle(&mut lb, RSS_SLACK_KIB);
}

// ---------------------------------------------------------------------------------------------
// F5

/// F5: Server-2 crash-loops (the test SIGKILLs every new process of it as soon as `/replicas`
/// shows its pid) for 25 s, with `--respawn-backoff-max 4s`. The waits between its respawns grow
/// (0.5 s doubling) to the cap and stay there; ringlb never has more than N + 1 replica
/// processes; 100 connections a second to the other replicas' keys see no failure.
#[test]
#[ignore = "crash loop (25 s); run by .ci/run"]
fn f5_crash_looping_replica() {
    let _serial = load::serial();
    common::wait_for_conntrack_room(8_000);
    let cap = Duration::from_secs(4);
    let mut lb = Launch::new(&["--replicas", "3", "--respawn-backoff-max", "4s"]).start();
    let victim_id = state_of(&lb, "Server-2")["id"].as_u64().unwrap() as u32;
    let healthy: Vec<u32> = load::owners(&lb, (0..300).map(load::rid))
        .into_iter()
        .filter(|&(_, id)| id != victim_id)
        .map(|(r, _)| r)
        .collect();
    let base = Baseline::take(&lb);
    let pid = lb.pid();

    let picks = healthy.clone();
    let load = Load::rate(lb.data, 100.0, Duration::from_secs(40), move |k| {
        format!("/home?rid={}", picks[k as usize % picks.len()])
    });
    let t = Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    let mut kills: Vec<Duration> = Vec::new();
    let mut most_children = 0;
    while t.elapsed() < Duration::from_secs(25) {
        most_children = most_children.max(load::children(pid).len());
        let v = state_of(&lb, "Server-2");
        if let Some(p) = v["pid"].as_u64() {
            if seen.insert(p) {
                load::signal(p as u32, "KILL");
                kills.push(t.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let respawns = state_of(&lb, "Server-2")["respawns"].as_u64().unwrap_or(0);
    // Let it come back for good before the load stops.
    let recovered = until(Duration::from_secs(10), || {
        state_of(&lb, "Server-2")["state"] == "up"
    });
    let out = load.stop();
    let gaps: Vec<f64> = kills
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let failed = out.iter().filter(|o| !o.ok()).count();
    println!(
        "F5: {} processes of Server-2 killed in 25 s at {:?}; gaps between them (s) {:?}; \
         respawns counted {respawns}; most replica processes at once {most_children} (N = 3); \
         {} requests to healthy replicas, {failed} failed; back up {recovered:?} after the loop",
        kills.len(),
        kills
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>(),
        gaps.iter().map(|g| format!("{g:.2}")).collect::<Vec<_>>(),
        out.len(),
    );
    assert!(
        most_children <= 4,
        "{most_children} replica processes at once"
    );
    assert_eq!(failed, 0, "{:?}", load::sample_failures(&out));
    assert!(gaps.len() >= 4, "the loop went round: {gaps:?}");
    // Each gap is the back-off plus a start; the back-off doubles up to the cap.
    let capped = cap.as_secs_f64();
    for w in gaps.windows(2) {
        assert!(
            w[1] >= w[0].min(capped) * 0.8,
            "the wait shrank while crashing: {gaps:?}"
        );
    }
    // A gap of about cap + 5 s + cap means one respawned process did not announce its address
    // within the runtime's start timeout; ringlb's log says why.
    assert!(
        gaps.iter().all(|&g| g <= capped + 1.5),
        "over the cap: {gaps:?}\nringlb's log:\n{}",
        load::tail(&lb.log_text(), 30)
    );
    assert!(
        *gaps.last().unwrap() >= capped * 0.9,
        "reached the cap: {gaps:?}"
    );
    assert!(recovered.is_some());
    base.settle(&mut lb, RSS_SLACK_KIB);
}

/// F5, the default cap: `--help` documents a respawn back-off cap of at least 30 s.
#[test]
fn f5_default_backoff_cap_is_30s() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_ringlb"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    let line = text
        .split("--respawn-backoff-max")
        .nth(1)
        .and_then(|rest| rest.split("[default: ").nth(1))
        .and_then(|d| d.split(']').next())
        .expect("a default");
    let secs: u64 = line.trim_end_matches('s').parse().unwrap();
    assert!(secs >= 30, "default cap {line}");
}

// ---------------------------------------------------------------------------------------------
// F6

/// F6: a backend that accepts and closes at once (`--runtime static`, next to a real replica).
/// Its `/heartbeat` check fails, so it is not counted healthy: it is marked down after `fall`
/// (2) checks and stays down while traffic flows; from then on every request is served by the
/// real replica.
#[test]
fn f6_accept_and_close_backend() {
    let _serial = load::serial();
    let good = load::OwnReplica::start(1, "good");
    let bad = load::RawServer::start(drop);
    let mut lb = Launch::new(&[
        "--runtime",
        "static",
        "--backend",
        &format!("good={}", good.addr),
        "--backend",
        &format!("bad={}", bad.addr),
    ])
    .start();
    let started = Instant::now();
    let down = until(Duration::from_secs(5), || {
        state_of(&lb, "bad")["state"] == "down"
    });
    let base = Baseline::take(&lb);
    let mut ids = BTreeMap::new();
    for k in 0..200 {
        let id = lb.home(load::rid(k)).expect("served");
        *ids.entry(id).or_insert(0) += 1;
    }
    let still_down = until(Duration::from_secs(2), || {
        state_of(&lb, "bad")["state"] != "down"
    });
    let transitions = load::metric(
        &load::scrape(&lb),
        "ringlb_replica_transitions_total",
        &[("replica", "bad"), ("to", "down")],
    );
    println!(
        "F6: accept-and-close backend marked down {down:?} after start (fall 2 × 500 ms); \
         200 requests answered by {ids:?}; transitions to down {transitions}; start at {:?}",
        started.elapsed()
    );
    assert!(down.expect("marked down") <= Duration::from_secs(2));
    assert_eq!(
        ids.keys().copied().collect::<Vec<_>>(),
        vec![1],
        "only the real replica"
    );
    assert!(still_down.is_none(), "it flapped back up");
    assert_eq!(transitions, 1.0);
    base.settle(&mut lb, RSS_SLACK_KIB);
}
