//! Property tests: the `ip -j` reader returns a result (never panics) on any text, on any
//! JSON, and on link objects whose fields have unexpected types.

use kvmnet_iproute::{check_ifname, normalize_mac, parse_links};
use proptest::prelude::*;
use serde_json::{json, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("ifname".to_string()),
                    Just("ifindex".to_string()),
                    Just("master".to_string()),
                    Just("linkinfo".to_string()),
                    Just("info_kind".to_string()),
                    Just("info_data".to_string()),
                    Just("addr_info".to_string()),
                    Just("flags".to_string()),
                    Just("mtu".to_string()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_text_is_read_or_refused(text in ".{0,300}") {
        let _ = parse_links(&text);
    }

    #[test]
    fn any_json_is_read_or_refused(v in any_json()) {
        if let Ok(links) = parse_links(&v.to_string()) {
            for l in links {
                let _ = (l.kind(), l.slave_kind(), l.info_data_str("mode"), l.is_up());
                let _ = l.global_addresses();
            }
        }
    }

    #[test]
    fn macs_and_names_never_panic(s in ".{0,40}") {
        if let Some(m) = normalize_mac(&s) {
            prop_assert_eq!(normalize_mac(&m), Some(m.clone()));
        }
        let _ = check_ifname("name", &s);
    }
}
