//! The `ringlb` binary with `--runtime docker` against the real engine: /rep against `docker ps`,
//! /add and /rm creating and removing containers, refused requests changing nothing, a killed
//! replica replaced, a paused one out of the ring and back, adoption after a restart, and the
//! compose deployment (`make up`, `make down`) leaving nothing behind.
//!
//! Each test skips (with a message) when no Docker engine runs. They take turns (one lock), so
//! the timing each one checks is not disturbed by the others on a small machine.

mod common;
#[path = "../../control/tests/common_docker/mod.rs"]
mod common_docker;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{free_port, raw_get, server_id, Ringlb};
use common_docker::{containers_of, docker_ok, docker_out, engine_or_skip, Scratch};

/// One docker test at a time.
static TURN: Mutex<()> = Mutex::new(());

/// Health flags for quick detection: a replica is down after 2 failed checks 200 ms apart.
const FAST_HEALTH: [&str; 6] = ["--health-interval", "200ms", "--fall", "2", "--rise", "2"];

/// ringlb with the docker runtime on the scratch network and instance label.
fn start(s: &Scratch, replicas: u32, extra: &[&str]) -> Ringlb {
    let n = replicas.to_string();
    let mut args = vec!["--runtime", "docker", "--replicas", &n];
    args.extend(["--network", &s.network, "--instance", &s.instance]);
    args.extend(FAST_HEALTH);
    args.extend(extra);
    Ringlb::start(&args)
}

fn sorted(v: Vec<String>) -> Vec<String> {
    let mut v = v;
    v.sort();
    v
}

/// Container ids by name, for telling a replaced container from the old one.
fn container_id(name: &str) -> String {
    docker_out(&["inspect", "--format={{.Id}}", name])
        .trim()
        .to_owned()
}

/// A request ID that the replica with server id `id` owns, found by asking the proxy.
fn rid_owned_by(lb: &Ringlb, id: u32) -> u32 {
    (100_000..102_000)
        .find(|&rid| lb.home(rid).ok() == Some(id))
        .unwrap_or_else(|| panic!("no rid among 2000 routes to server {id}"))
}

/// Polls `check` every 50 ms until it holds or `within` passes; returns the time it took.
fn until(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !check() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

/// The `state` /replicas gives for `name`.
fn state_of(lb: &Ringlb, name: &str) -> String {
    lb.details()
        .iter()
        .find(|d| d["name"] == name)
        .and_then(|d| d["state"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn setup(test: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Scratch)> {
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    if !engine_or_skip(test) {
        return None;
    }
    common_docker::ensure_replica_image();
    Some((turn, Scratch::new(test)))
}

#[test]
fn rep_add_and_rm_drive_containers() {
    let Some((_turn, scratch)) = setup("rep-add-rm") else {
        return;
    };
    let lb = start(&scratch, 3, &[]);
    assert_eq!(lb.replicas(), ["Server-1", "Server-2", "Server-3"]);
    assert_eq!(containers_of(&scratch.instance), lb.replicas());

    let (status, body) = lb.call("POST", "/add", Some(r#"{"n":2,"hostnames":["S5"]}"#));
    assert_eq!(status, 200, "{body}");
    let reps = sorted(lb.replicas());
    assert_eq!(reps.len(), 5);
    assert!(reps.contains(&"S5".to_owned()));
    assert_eq!(containers_of(&scratch.instance), reps);

    // Every replica, S5 included, answers /home through the proxy.
    let s5 = lb
        .details()
        .iter()
        .find(|d| d["name"] == "S5")
        .map(|d| d["id"].as_u64().unwrap());
    let s5 = s5.expect("S5 listed") as u32;
    until(Duration::from_secs(10), "S5 is up", || {
        state_of(&lb, "S5") == "up"
    });
    let mut seen = BTreeSet::new();
    for rid in 100_000..102_000 {
        seen.insert(lb.home(rid).expect("answered"));
        if seen.len() == 5 {
            break;
        }
    }
    assert_eq!(seen.len(), 5, "answers came from {seen:?}");
    assert!(seen.contains(&s5));

    let (status, body) = lb.call("DELETE", "/rm", Some(r#"{"n":1,"hostnames":["S5"]}"#));
    assert_eq!(status, 200, "{body}");
    let reps = sorted(lb.replicas());
    assert!(!reps.contains(&"S5".to_owned()));
    assert_eq!(containers_of(&scratch.instance), reps);

    // Refused requests change neither the ring nor the containers.
    let before = (reps.clone(), containers_of(&scratch.instance));
    let refused = [
        ("POST", "/add", r#"{"n":1,"hostnames":["A1","A2"]}"#),
        ("POST", "/add", r#"{"n":1,"hostnames":["Server-1"]}"#),
        ("POST", "/add", r#"{"n":1,"hostnames":["--privileged"]}"#),
        ("POST", "/add", r#"{"n":2,"hostnames":["ok1","-v/:/host"]}"#),
        ("POST", "/add", r#"{"n":0}"#),
        ("POST", "/add", r#"{"n":"#),
        ("DELETE", "/rm", r#"{"n":1,"hostnames":["nobody"]}"#),
        (
            "DELETE",
            "/rm",
            r#"{"n":1,"hostnames":["Server-1","Server-2"]}"#,
        ),
        ("DELETE", "/rm", r#"{"n":99}"#),
    ];
    for (method, path, body) in refused {
        let (status, answer) = lb.call(method, path, Some(body));
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        assert!(answer.contains("<Error>"), "{answer}");
        let after = (sorted(lb.replicas()), containers_of(&scratch.instance));
        assert_eq!(after, before, "after {method} {path} {body}");
    }
}

#[test]
fn killed_replica_is_replaced_and_paused_one_leaves_the_ring() {
    let Some((_turn, scratch)) = setup("kill-pause") else {
        return;
    };
    // Long enough that a paused replica is waited for, not replaced, during the test.
    let lb = start(&scratch, 2, &["--respawn-after", "120s"]);
    let rid1 = rid_owned_by(&lb, 1);
    let rid2 = rid_owned_by(&lb, 2);

    let old = container_id("Server-1");
    assert!(docker_ok(&["kill", "Server-1"]));
    let took = until(
        Duration::from_secs(3),
        "Server-1 replaced and serving",
        || {
            let new = container_id("Server-1");
            !new.is_empty() && new != old && lb.home(rid1).ok() == Some(1)
        },
    );
    println!("killed replica replaced and serving after {took:?}");
    assert_eq!(containers_of(&scratch.instance), ["Server-1", "Server-2"]);

    assert!(docker_ok(&["pause", "Server-2"]));
    until(Duration::from_secs(10), "paused Server-2 down", || {
        state_of(&lb, "Server-2") == "down"
    });
    // Its keys go elsewhere, answered at once (the proxy does not wait on the frozen replica).
    let t = Instant::now();
    assert_eq!(lb.home(rid2).expect("answered"), 1);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "routed around in {:?}",
        t.elapsed()
    );

    assert!(docker_ok(&["unpause", "Server-2"]));
    until(Duration::from_secs(10), "Server-2 back", || {
        lb.home(rid2).ok() == Some(2)
    });
    assert_eq!(state_of(&lb, "Server-2"), "up");
    assert_eq!(lb.replicas(), ["Server-1", "Server-2"]);
}

#[test]
fn a_restarted_ringlb_adopts_its_replicas() {
    let Some((_turn, scratch)) = setup("adopt") else {
        return;
    };
    let mut first = start(&scratch, 2, &["--keep-replicas"]);
    let ids: Vec<String> = ["Server-1", "Server-2"].map(container_id).to_vec();
    assert!(first.terminate().success());
    assert_eq!(
        containers_of(&scratch.instance),
        ["Server-1", "Server-2"],
        "kept"
    );

    let mut second = start(&scratch, 2, &[]);
    assert_eq!(second.replicas(), ["Server-1", "Server-2"]);
    assert_eq!(
        ["Server-1", "Server-2"].map(container_id).to_vec(),
        ids,
        "adopted, not replaced"
    );
    let answer = raw_get(second.data, "/home?rid=123456").expect("answered");
    assert!(server_id(answer.0, &answer.1).is_ok(), "{answer:?}");

    assert!(second.terminate().success());
    assert!(
        containers_of(&scratch.instance).is_empty(),
        "a normal exit removes its replicas"
    );
}

/// Runs `make <target>` at the workspace root with the given variables.
fn make(target: &str, vars: &[String]) -> bool {
    let root = common_docker::repo_root();
    Command::new("make")
        .arg("-C")
        .arg(&root)
        .arg(target)
        .args(vars)
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `make down` when dropped, so a failing compose test leaves nothing either.
struct Down(Vec<String>);

impl Drop for Down {
    fn drop(&mut self) {
        make("down", &self.0);
    }
}

#[test]
fn make_up_serves_and_make_down_leaves_nothing() {
    let Some((_turn, _scratch)) = setup("compose") else {
        return;
    };
    let compose = Command::new("docker").args(["compose", "version"]).output();
    let v1 = Command::new("docker-compose").arg("version").output();
    if !compose.is_ok_and(|o| o.status.success()) && !v1.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP make_up_serves_and_make_down_leaves_nothing: no docker compose");
        return;
    }
    // The deployment's names are fixed (net1, instance `compose`): never disturb a running one.
    if docker_ok(&["network", "inspect", "net1"]) || !containers_of("compose").is_empty() {
        eprintln!("SKIP make_up_serves_and_make_down_leaves_nothing: a deployment on net1 runs");
        return;
    }
    if !docker_ok(&["image", "inspect", "ringlb:latest"]) {
        let script = common_docker::repo_root().join("compose/build-images.sh");
        let built = Command::new("bash").arg(script).arg("ringlb").status();
        assert!(
            built.is_ok_and(|s| s.success()),
            "ringlb:latest missing; run `make images`"
        );
    }
    let (data, control) = (free_port(), free_port());
    let project = format!("ringlbt{}", std::process::id());
    let vars = vec![
        format!("HOST_DATA_PORT={data}"),
        format!("HOST_CONTROL_PORT={control}"),
        format!("PROJECT={project}"),
    ];
    let down = Down(vars.clone());
    assert!(make("up", &vars), "make up");
    let addr = format!("127.0.0.1:{data}").parse().unwrap();
    let (status, body) = raw_get(addr, "/home?rid=4242").expect("answered");
    assert!(server_id(status, &body).is_ok(), "{status} {body}");
    let (status, body) = raw_get(addr, "/rep").expect("answered");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        containers_of("compose"),
        ["Server-1", "Server-2", "Server-3"]
    );

    drop(down);
    assert!(containers_of("compose").is_empty(), "replicas left behind");
    let label = format!("--filter=label=com.docker.compose.project={project}");
    assert_eq!(
        docker_out(&["ps", "-aq", &label]).trim(),
        "",
        "ringlb left behind"
    );
    assert!(
        !docker_ok(&["network", "inspect", "net1"]),
        "net1 left behind"
    );
}
