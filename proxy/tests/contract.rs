//! The shared API contract check (`../shared/tools/contract_check.py`, beside the repository in
//! CI) against a running ringlb. Skipped, with a message, where that file is not there.

mod common;

use std::path::Path;
use std::process::Command;

use common::Ringlb;

#[test]
fn shared_contract_check_holds() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/contract_check.py");
    if !script.exists() {
        eprintln!("skipped: {} is not there", script.display());
        return;
    }
    let lb = Ringlb::start(&[]);
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "--data",
            &lb.data.to_string(),
            "--control",
            &lb.control.to_string(),
        ])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("all contract checks hold"));
}
