//! The docker runtime against the real engine and the real `ringlb-replica` image, plus one test
//! with a recording stand-in for the CLI that pins the exact argv of `run` and `rm`.

mod common_docker;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use common_docker::{containers_of, docker_ok, engine_or_skip, ensure_replica_image, Scratch};
use ringlb_control::runtime::docker::{DockerConfig, DockerRuntime};
use ringlb_control::runtime::{Found, ReplicaSpec, Runtime, RuntimeError};

fn spec(name: &str, id: u32) -> ReplicaSpec {
    ReplicaSpec {
        name: name.into(),
        id,
    }
}

fn config(s: &Scratch) -> DockerConfig {
    DockerConfig {
        network: s.network.clone(),
        instance: s.instance.clone(),
        ..DockerConfig::default()
    }
}

/// `GET /home` over a plain TCP connection, retried while the replica is still coming up.
fn get_home(addr: SocketAddr) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /home HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match attempt {
            Ok(body) => return Ok(body),
            Err(e) if Instant::now() > deadline => {
                return Err(e).context(format!("GET {addr}/home"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn names(found: &[Found]) -> Vec<&str> {
    let mut n: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_start_serve_are_adopted_and_removed() -> anyhow::Result<()> {
    if !engine_or_skip("replicas_start_serve_are_adopted_and_removed") {
        return Ok(());
    }
    ensure_replica_image();
    let mut scratch = Scratch::new("life");
    let rt = DockerRuntime::connect(config(&scratch)).await?;
    ensure!(
        docker_ok(&["network", "inspect", &scratch.network]),
        "connect creates the network"
    );

    let t0 = Instant::now();
    let (s1, s2) = (spec("S1", 1), spec("S2", 2));
    let (a, b) = tokio::join!(rt.start(&s1), rt.start(&s2));
    let (a, b) = (a?, b?);
    eprintln!("started 2 containers in {:?}", t0.elapsed());
    for (addr, id) in [(a, 1), (b, 2)] {
        let answer = tokio::task::spawn_blocking(move || get_home(addr)).await??;
        ensure!(
            answer.contains(&format!("Hello from Server: {id}")),
            "{addr}: {answer}"
        );
    }

    // A second ringlb with the same instance adopts both, with their ids and addresses.
    let again = DockerRuntime::connect(config(&scratch)).await?;
    let mut found = again.existing().await?;
    found.sort_by(|x, y| x.name.cmp(&y.name));
    ensure!(
        found
            == vec![
                Found {
                    name: "S1".into(),
                    id: 1,
                    addr: a
                },
                Found {
                    name: "S2".into(),
                    id: 2,
                    addr: b
                }
            ]
    );
    ensure!(
        containers_of(&scratch.instance) == ["S1", "S2"],
        "adoption starts nothing"
    );

    // Another instance sees none of them and touches none.
    let other = format!("{}-other", scratch.instance);
    scratch.also.push(other.clone());
    let foreign = DockerRuntime::connect(DockerConfig {
        instance: other,
        ..config(&scratch)
    })
    .await?;
    ensure!(foreign.existing().await?.is_empty());
    foreign.shutdown(false).await;
    ensure!(containers_of(&scratch.instance) == ["S1", "S2"]);

    // A dead container of ours is removed on adoption, not adopted.
    rt.start(&spec("S3", 3)).await?;
    ensure!(docker_ok(&["kill", "S3"]));
    ensure!(names(&again.existing().await?) == ["S1", "S2"]);
    ensure!(
        containers_of(&scratch.instance) == ["S1", "S2"],
        "the dead S3 is gone"
    );

    // Starting over a stale container of the same name replaces it.
    ensure!(docker_ok(&["kill", "S2"]));
    let b2 = rt.start(&spec("S2", 2)).await?;
    let answer = tokio::task::spawn_blocking(move || get_home(b2)).await??;
    ensure!(answer.contains("Hello from Server: 2"), "{answer}");

    rt.stop("S2").await?;
    rt.stop("S2").await.context("stopping twice is fine")?;
    ensure!(containers_of(&scratch.instance) == ["S1"]);

    again.shutdown(false).await;
    ensure!(
        containers_of(&scratch.instance).is_empty(),
        "shutdown leaves nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_is_reported_and_a_removed_one_is_not() -> anyhow::Result<()> {
    if !engine_or_skip("a_killed_replica_is_reported_and_a_removed_one_is_not") {
        return Ok(());
    }
    ensure_replica_image();
    let scratch = Scratch::new("exits");
    let rt = DockerRuntime::connect(config(&scratch)).await?;
    let mut exits = rt.exits().context("the docker runtime reports exits")?;
    ensure!(rt.exits().is_none(), "taken once");
    rt.start(&spec("E1", 1)).await?;
    rt.start(&spec("E2", 2)).await?;

    rt.stop("E2").await?;
    ensure!(docker_ok(&["kill", "E1"]));
    let name = tokio::time::timeout(Duration::from_secs(20), exits.recv()).await?;
    ensure!(
        name.as_deref() == Some("E1"),
        "got {name:?}; E2 was removed by ringlb, not a crash"
    );

    rt.shutdown(false).await;
    ensure!(containers_of(&scratch.instance).is_empty());
    Ok(())
}

#[tokio::test]
async fn operator_errors_say_what_to_do() -> anyhow::Result<()> {
    let cfg = DockerConfig {
        docker: "/nonexistent/docker".into(),
        ..DockerConfig::default()
    };
    match DockerRuntime::connect(cfg).await {
        Err(RuntimeError::Unavailable(m)) => ensure!(m.contains("Docker engine running"), "{m}"),
        other => anyhow::bail!("expected Unavailable, got {:?}", other.err()),
    }

    let dir = tempfile::tempdir()?;
    let down = shim(dir.path(), "echo 'Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?' >&2; exit 1")?;
    match DockerRuntime::connect(DockerConfig {
        docker: down,
        ..DockerConfig::default()
    })
    .await
    {
        Err(RuntimeError::Unavailable(m)) => ensure!(m.contains("Docker engine running"), "{m}"),
        other => anyhow::bail!("expected Unavailable, got {:?}", other.err()),
    }

    if engine_or_skip("operator_errors_say_what_to_do (image part)") {
        let cfg = DockerConfig {
            image: "ringlb-no-such-image:latest".into(),
            ..DockerConfig::default()
        };
        match DockerRuntime::connect(cfg).await {
            Err(e @ RuntimeError::ImageMissing { .. }) => {
                ensure!(e.to_string().contains("make images"))
            }
            other => anyhow::bail!("expected ImageMissing, got {:?}", other.err()),
        }
    }
    Ok(())
}

/// Writes an executable stand-in for the docker CLI whose body is `script`.
fn shim(dir: &Path, script: &str) -> anyhow::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("docker");
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    // A child forked by another test thread while the file was open for writing holds that
    // descriptor until it execs, and exec of the shim fails with ETXTBSY meanwhile: wait it out.
    for _ in 0..100 {
        match std::process::Command::new(&path).arg("version").output() {
            Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(Duration::from_millis(20)),
            _ => break,
        }
    }
    Ok(path)
}

/// The CLI stand-in: records each call's argv (fields split by \x1f, one call per line) and
/// prints what the real CLI would. Nothing is contacted; the address it reports is loopback.
const RECORDER: &str = r#"
for a in "$@"; do printf '%s\037' "$a" >> "$LOG"; done; echo >> "$LOG"
case "$1" in
  version) echo 20.10.24 ;;
  image|network) echo sha256:0 ;;
  run) echo c0ffee5 ;;
  inspect) echo '{"id":"c0ffee5","networks":{"shimnet":{"IPAddress":"127.0.0.9"}},"labels":{"ringlb.instance":"shim"}}' ;;
  ps) if [ "$3" = "-q" ] || [ "$2" = "-q" ]; then echo aaa1; echo bbb2; else
        echo '{"ID":"aaa1","Names":"S1","State":"running","Labels":"ringlb.id=1,ringlb.instance=shim"}'
        echo '{"ID":"bbb2","Names":"S9","State":"exited","Labels":"ringlb.id=9,ringlb.instance=shim"}'
      fi ;;
  rm) ;;
esac
"#;

#[tokio::test]
async fn argv_of_run_and_rm_is_exact() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("calls");
    let docker = shim(dir.path(), &format!("LOG='{}'\n{RECORDER}", log.display()))?;
    let calls = || -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        text.lines()
            .map(|l| {
                l.split('\x1f')
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    };
    let cfg = DockerConfig {
        docker,
        image: "ringlb-replica:test".into(),
        network: "shimnet".into(),
        instance: "shim".into(),
        port: 5000,
        call_timeout: Duration::from_secs(10),
    };
    let rt = DockerRuntime::connect(cfg).await?;
    calls();

    let addr = rt.start(&spec("S5", 5)).await?;
    ensure!(addr == "127.0.0.9:5000".parse::<SocketAddr>()?);
    let c = calls();
    let run: Vec<&str> = c[0].iter().map(String::as_str).collect();
    ensure!(
        run == [
            "run",
            "-d",
            "--pull=never",
            "--name=S5",
            "--network=shimnet",
            "--network-alias=S5",
            "--env=SERVER_ID=5",
            "--env=SERVER_NAME=S5",
            "--env=PORT=5000",
            "--label=ringlb.instance=shim",
            "--label=ringlb.id=5",
            "--",
            "ringlb-replica:test",
        ],
        "{run:?}"
    );
    ensure!(
        c[1].first().map(String::as_str) == Some("inspect")
            && c[1].last().map(String::as_str) == Some("S5")
    );

    rt.stop("S5").await?;
    ensure!(calls() == [["rm", "-f", "--", "S5"]]);

    // A name that looks like an option never reaches the CLI.
    for evil in ["--privileged", "-v/:/host"] {
        ensure!(rt.start(&spec(evil, 6)).await.is_err());
    }
    ensure!(calls().is_empty());

    // Adoption: the running S1 is found, the exited S9 removed.
    let found = rt.existing().await?;
    ensure!(
        found
            == [Found {
                name: "S1".into(),
                id: 1,
                addr: "127.0.0.9:5000".parse()?
            }]
    );
    let c = calls();
    ensure!(
        c.last() == Some(&vec!["rm".into(), "-f".into(), "--".into(), "S9".into()]),
        "{c:?}"
    );

    rt.shutdown(false).await;
    let c = calls();
    ensure!(
        c.last()
            == Some(&vec![
                "rm".into(),
                "-f".into(),
                "--".into(),
                "aaa1".into(),
                "bbb2".into()
            ]),
        "{c:?}"
    );
    Ok(())
}
