//! Property test: an args file of any shape -- any JSON, any bytes -- gives exactly one
//! JSON object on stdout with `failed` and `changed` booleans and a `msg`, and the exit
//! status Ansible expects, from a real module binary.

use proptest::prelude::*;
use serde_json::{json, Value};
use std::process::Command;

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,16}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    // Objects with the module's own keys and Ansible's, as well as anything at all.
    let key = prop_oneof![
        Just("path".to_string()),
        Just("content".to_string()),
        Just("state".to_string()),
        Just("count".to_string()),
        Just("enabled".to_string()),
        Just("items".to_string()),
        Just("mode".to_string()),
        Just("mac_address".to_string()),
        Just("secret".to_string()),
        Just("_ansible_check_mode".to_string()),
        Just("_ansible_no_log".to_string()),
        Just("_ansible_diff".to_string()),
        Just("ANSIBLE_MODULE_ARGS".to_string()),
        ".{0,6}",
    ];
    prop_oneof![
        value.clone(),
        prop::collection::btree_map(key, value, 0..8)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
}

fn run(dir: &std::path::Path, content: &[u8]) -> (Value, i32) {
    let path = dir.join("args");
    std::fs::write(&path, content).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kvmnet_test"))
        .arg(&path)
        .env("KVMNET_LOCK", dir.join("lock"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let mut objects = serde_json::Deserializer::from_str(&stdout).into_iter::<Value>();
    let first = objects
        .next()
        .expect("no JSON on stdout")
        .expect("stdout is not JSON");
    assert!(objects.next().is_none(), "more than one object: {stdout}");
    (first, out.status.code().unwrap_or(-1))
}

fn check(j: &Value, rc: i32) -> Result<(), TestCaseError> {
    prop_assert!(j.is_object(), "{}", j);
    prop_assert!(j["failed"].is_boolean(), "{}", j);
    prop_assert!(j["changed"].is_boolean(), "{}", j);
    prop_assert!(j["msg"].is_string(), "{}", j);
    prop_assert_eq!(rc, if j["failed"] == true { 1 } else { 0 });
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_json_args_give_one_result(mut v in any_json()) {
        let dir = tempdir();
        // The module writes `path` (only under /tmp): keep any write in this test's dir.
        let file = json!(dir.join("file").display().to_string());
        if let Some(m) = v.as_object_mut() {
            if m.contains_key("path") {
                m.insert("path".into(), file.clone());
            }
            if let Some(inner) = m.get_mut("ANSIBLE_MODULE_ARGS").and_then(Value::as_object_mut) {
                if inner.contains_key("path") {
                    inner.insert("path".into(), file);
                }
            }
        }
        let (j, rc) = run(&dir, v.to_string().as_bytes());
        check(&j, rc)?;
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn any_bytes_give_one_result(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let dir = tempdir();
        let (j, rc) = run(&dir, &bytes);
        check(&j, rc)?;
        std::fs::remove_dir_all(&dir).ok();
    }
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "kvmnet-props-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
