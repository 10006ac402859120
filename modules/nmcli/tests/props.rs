//! Property tests: nmcli's terse escaping round-trips, and no reader panics on any input.

use kvmnet_nmcli::{escape_terse, parse_keyfile, parse_list, parse_profiles, split_terse};
use proptest::prelude::*;

/// Text as names can hold it: any printable character, with `:` and `\` often.
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => Just(':'),
            3 => Just('\\'),
            1 => Just('ü'),
            10 => any::<char>().prop_filter("no line breaks", |c| *c != '\n' && *c != '\r'),
        ],
        0..24,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn one_escaped_field_splits_back_to_itself(s in name()) {
        prop_assert_eq!(split_terse(&escape_terse(&s)), vec![s]);
    }

    #[test]
    fn a_row_of_escaped_fields_splits_back_into_them(fields in prop::collection::vec(name(), 1..6)) {
        let line: Vec<String> = fields.iter().map(|f| escape_terse(f)).collect();
        prop_assert_eq!(split_terse(&line.join(":")), fields);
    }

    #[test]
    fn list_rows_round_trip(rows in prop::collection::vec(prop::collection::vec(name(), 1..5), 0..5)) {
        // An all-empty row is an empty line, which list mode never prints.
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .filter(|r| !(r.len() == 1 && r[0].is_empty()))
            .collect();
        let text: String = rows
            .iter()
            .map(|r| r.iter().map(|f| escape_terse(f)).collect::<Vec<_>>().join(":") + "\n")
            .collect();
        prop_assert_eq!(parse_list(&text), rows);
    }

    #[test]
    fn readers_never_panic(text in ".{0,400}") {
        let _ = parse_profiles(&text);
        let _ = parse_list(&text);
        let _ = parse_keyfile(&text);
        let _ = split_terse(&text);
    }

    #[test]
    fn property_values_keep_their_colons(key in "[a-z]{1,8}\\.[a-z-]{1,12}", value in name()) {
        let p = parse_profiles(&format!("connection.id:x\n{key}:{value}\n"));
        prop_assert_eq!(p.len(), 1);
        if key != "connection.id" {
            prop_assert_eq!(p[0].get(&key), Some(value.as_str()));
        }
    }
}
