//! Golden cases (tests/cases/, outputs captured in a lab: iproute2 6.1, NetworkManager
//! 1.42) and the unit tests that do not fit a case folder.

use super::MacvtapLink;

/// Every folder under tests/cases/ (see modules/README.md, "Golden cases").
#[test]
fn golden_cases() {
    kvmnet_protocol::testing::run_cases::<MacvtapLink>(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/cases"
    ));
}

/// Options refused before anything is read or run: one table, no host involved.
#[test]
fn bad_input_fails_before_reading_anything() {
    use kvmnet_protocol::testing::{run_module, FakeRunner};
    use serde_json::json;
    let base = json!({"name": "macvtap0", "link": "ens32", "mode": "private"});
    let with = |k: &str, v: serde_json::Value| {
        let mut a = base.clone();
        a[k] = v;
        a
    };
    let cases = [
        (
            with("name", json!("a-name-that-is-too-long")),
            "option 'name'",
        ),
        (with("name", json!("mac/vtap")), "option 'name'"),
        (
            with("mode", json!("bogus")),
            "option 'mode': value 'bogus' is not one of",
        ),
        (
            json!({"name": "macvtap0", "mode": "private"}),
            "missing: link",
        ),
        (
            json!({"name": "macvtap0", "link": "ens32"}),
            "missing: mode",
        ),
        (with("mac", json!("52:54:00:12:34")), "option 'mac'"),
        (with("mac", json!("01:00:5e:00:00:01")), "multicast"),
        (
            json!({"name": "macvtap0", "link": "ens32", "mode": "passthru", "mac": "52:54:00:12:34:56"}),
            "option 'mac' does not fit mode passthrough",
        ),
        (
            json!({"name": "macvtap0", "link": "ens32", "mode": "private", "persistent": true, "up": false}),
            "option 'up'",
        ),
        (with("conn_name", json!("x")), "option 'conn_name'"),
        (
            json!({"name": "macvtap0", "link": "ens32", "mode": "private", "persistent": true, "conn_name": " "}),
            "option 'conn_name' is empty",
        ),
        (with("link", json!("macvtap0")), "option 'link'"),
        (with("persistent", json!("maybe")), "option 'persistent'"),
        (with("bogus", json!(1)), "bogus"),
    ];
    for (args, want) in cases {
        let r = run_module::<MacvtapLink>(args.clone(), FakeRunner::new());
        assert_eq!(r.rc, 1, "{args}");
        assert_eq!(r.json["failed"], json!(true));
        assert_eq!(r.json["changed"], json!(false));
        let msg = r.json["msg"].as_str().unwrap();
        assert!(msg.contains(want), "{args}: {msg}");
        assert!(r.calls.is_empty(), "{args}: nothing is read or run");
    }
}

/// Any args file, any shape: one well-formed result (kvmnet_protocol::testing::props).
mod props {
    use kvmnet_protocol::testing::props::{any_args, one_result, option_names};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_args_give_one_result(args in any_args(option_names::<crate::MacvtapLink>())) {
            one_result::<crate::MacvtapLink>(args)?;
        }
    }
}
