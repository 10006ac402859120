//! Property tests: the XML reader returns a result (never panics) on any text; element
//! trees survive `to_xml` and `parse`; the network normaliser never panics and is
//! idempotent on whatever the reader accepts.

use kvmnet_virtxml::{network, Element};
use proptest::prelude::*;

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,7}"
}

/// Attribute values and text with what XML must escape, and non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('<'),
            Just('>'),
            Just('&'),
            Just('\''),
            Just('"'),
            Just('ü'),
            Just(' '),
            proptest::char::range('a', 'z'),
            proptest::char::range('0', '9'),
        ],
        0..12,
    )
    .prop_map(|v| v.into_iter().collect::<String>().trim().to_string())
}

fn element() -> impl Strategy<Value = Element> {
    let leaf = (
        ident(),
        prop::collection::btree_map(ident(), text(), 0..3),
        text(),
    )
        .prop_map(|(name, attrs, text)| Element {
            name,
            attrs: attrs.into_iter().collect(),
            children: Vec::new(),
            text,
        });
    leaf.prop_recursive(4, 40, 5, |inner| {
        (
            ident(),
            prop::collection::btree_map(ident(), text(), 0..3),
            prop::collection::vec(inner, 1..5),
        )
            .prop_map(|(name, attrs, children)| Element {
                name,
                attrs: attrs.into_iter().collect(),
                children,
                text: String::new(),
            })
    })
}

/// Strings that are nearly XML: tags, attributes, entities, garbage.
fn xmlish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("<network>".to_string()),
            Just("</network>".to_string()),
            Just("<forward mode='nat'/>".to_string()),
            Just("<ip address='10.0.0.1' netmask='255.255.0'>".to_string()),
            Just("</ip>".to_string()),
            Just("<bridge stp='on' name=\"x\"/>".to_string()),
            Just("&amp;".to_string()),
            Just("&bogus;".to_string()),
            Just("&#0;".to_string()),
            Just("<![CDATA[x]]>".to_string()),
            Just("<!-- c -->".to_string()),
            Just("<?xml version='1.0'?>".to_string()),
            ".{0,8}",
        ],
        0..12,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn any_text_is_read_or_refused(s in ".{0,300}") {
        let _ = Element::parse(&s);
    }

    #[test]
    fn nearly_xml_is_read_or_refused_and_normalised_without_panic(s in xmlish()) {
        if let Ok(el) = Element::parse(&s) {
            let c = network::canonical(&el);
            prop_assert_eq!(network::canonical(&c), c.clone());
            let _ = network::same_definition(&el, &el);
            let _ = network::carry_over(&el, Some(&el));
            let _ = network::referenced_devices(&el);
            prop_assert!(network::differences(&c, &c).is_empty());
        }
    }

    #[test]
    fn trees_survive_serialising_and_reading(el in element()) {
        let back = Element::parse(&el.to_xml()).unwrap();
        prop_assert_eq!(back, el);
    }
}
