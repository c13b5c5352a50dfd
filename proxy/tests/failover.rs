//! Replica failure through the real binary: a replica killed with SIGKILL is replaced, and no
//! request that arrives after the kill is noticed fails (it goes to the next replica on the ring).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Ringlb;

#[test]
fn killed_replica_is_replaced_and_requests_keep_succeeding() {
    let lb = Ringlb::start(&[]);
    let details = lb.details();
    let victim = &details[1];
    let (name, pid) = (
        victim["name"].as_str().unwrap().to_string(),
        victim["pid"]
            .as_u64()
            .expect("process runtime reports pids"),
    );
    let victim_id = victim["id"].as_u64().unwrap() as u32;
    // A rid the victim owns, so the failover path is exercised.
    let rid = (100_000..200_000)
        .find(|&r| lb.home(r).unwrap() == victim_id)
        .expect("the victim owns some rid");

    let killed = Instant::now();
    assert!(Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());

    // Marked down (or already respawning/replaced).
    let mut marked_down = None;
    let mut replaced = None;
    let mut failures_after_down = 0;
    let mut served_by_victim_again = None;
    while killed.elapsed() < Duration::from_secs(5) {
        let d = lb.details();
        let v = d.iter().find(|r| r["name"] == name.as_str()).unwrap();
        // A respawn this fast may never be seen as "down": a respawn count means it was noticed.
        if marked_down.is_none() && (v["state"] != "up" || v["respawns"].as_u64() >= Some(1)) {
            marked_down = Some(killed.elapsed());
        }
        if replaced.is_none() && v["respawns"].as_u64() == Some(1) && v["state"] == "up" {
            replaced = Some(killed.elapsed());
        }
        match lb.home(rid) {
            Ok(id) if id == victim_id && replaced.is_some() => {
                served_by_victim_again.get_or_insert(killed.elapsed());
            }
            Ok(_) => {}
            Err(e) => {
                if marked_down.is_some() {
                    failures_after_down += 1;
                    eprintln!("failure after the replica was marked down: {e}");
                }
            }
        }
        if served_by_victim_again.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "marked down after {marked_down:?}, replaced after {replaced:?}, its keys back after {served_by_victim_again:?}"
    );
    assert!(marked_down.is_some(), "the kill was noticed");
    let replaced = replaced.expect("the replica was respawned");
    assert!(
        replaced <= Duration::from_secs(3),
        "respawn took {replaced:?}"
    );
    assert!(served_by_victim_again.unwrap() <= Duration::from_secs(3));
    assert_eq!(
        failures_after_down, 0,
        "requests after the replica was marked down all succeed"
    );
    // Same name, same id, a new process.
    let d = lb.details();
    let v = d.iter().find(|r| r["name"] == name.as_str()).unwrap();
    assert_eq!(v["id"].as_u64().unwrap() as u32, victim_id);
    assert_ne!(v["pid"].as_u64().unwrap(), pid);
    assert_eq!(lb.replicas().len(), 3);
}

#[test]
fn random_respawn_names_follow_the_assignment() {
    let lb = Ringlb::start(&["--respawn-name", "random", "--replicas", "2"]);
    let pid = lb.details()[0]["pid"].as_u64().unwrap();
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    loop {
        let names = lb.replicas();
        if !names.contains(&"Server-1".to_string()) && names.len() == 2 {
            assert!(
                names
                    .iter()
                    .any(|n| n.starts_with("Server-") && n != "Server-2"),
                "{names:?}"
            );
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no replacement: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(lb.get("/home").unwrap().0, 200);
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut lb = Ringlb::start(&["--replicas", "1", "--drain-timeout", "2s"]);
    assert_eq!(lb.get("/home").unwrap().0, 200);
    let status = lb.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        std::net::TcpStream::connect(lb.data).is_err(),
        "the listener is closed"
    );
}
