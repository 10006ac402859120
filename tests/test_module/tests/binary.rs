//! The test module's binary as Ansible runs it: one JSON object on stdout whatever
//! happens, a panic included, and the exit status Ansible expects.

use serde_json::Value;
use std::process::Command;

fn run(args: &str) -> (Value, i32) {
    let dir = std::env::temp_dir().join(format!("kvmnet-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("args-{}.json", args.len()));
    std::fs::write(&path, args).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kvmnet_test"))
        .arg(&path)
        .env("KVMNET_LOCK", dir.join("lock"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut objects = serde_json::Deserializer::from_str(&stdout).into_iter::<Value>();
    let first = objects
        .next()
        .expect("no JSON on stdout")
        .expect("stdout is not JSON");
    assert!(
        objects.next().is_none(),
        "more than one JSON object: {stdout}"
    );
    (first, out.status.code().unwrap_or(-1))
}

#[test]
fn panic_still_yields_one_failure_object() {
    let (j, rc) = run(r#"{"path": "/tmp/kvmnet-x", "content": "a", "crash": "yes"}"#);
    assert_eq!(rc, 1);
    assert_eq!(j["failed"], true);
    assert_eq!(j["error_kind"], "bug");
    let msg = j["msg"].as_str().unwrap();
    assert!(
        msg.contains("crashed") && msg.contains("crash requested by the test"),
        "{msg}"
    );
    assert_eq!(j["invocation"]["module_args"]["crash"], true);
}

#[test]
fn missing_or_broken_args_file_fails_cleanly() {
    let out = Command::new(env!("CARGO_BIN_EXE_kvmnet_test"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(j["msg"]
        .as_str()
        .unwrap()
        .starts_with("usage: kvmnet_test ARGS_FILE"));
    let (j, rc) = run("{not json");
    assert_eq!(rc, 1);
    assert!(j["msg"].as_str().unwrap().contains("not valid JSON"));
}

#[test]
fn success_exits_zero() {
    let p = std::env::temp_dir().join(format!("kvmnet-bin-ok-{}", std::process::id()));
    let (j, rc) = run(&format!(
        r#"{{"path": "{}", "content": "x", "_ansible_check_mode": true}}"#,
        p.display()
    ));
    assert_eq!(rc, 0, "{j}");
    assert_eq!(j["changed"], true);
    assert!(!p.exists(), "check mode wrote the file");
}
