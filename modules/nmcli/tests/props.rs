//! Property tests: nmcli's terse escaping round-trips, and no reader panics on any input,
//! multi-line input shaped like what they read (property lines, list rows, keyfile groups
//! and keys, continuation lines) included.

use kvmnet_nmcli::conn::{added_uuid, parse_rows, parse_version};
use kvmnet_nmcli::{escape_terse, parse_keyfile, parse_list, parse_profiles, split_terse};
use proptest::prelude::*;

/// One line of what the readers see, or of garbage: a `setting.property:value` line (a new
/// profile at `connection.id`), a terse list row, a keyfile group or `key=value`, a
/// comment, an empty line (nmcli's separator between profiles), or any text.
fn reader_line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => ("(connection|bridge|ipv4|ipv6|802-3-ethernet)\\.[a-z-]{1,12}", ".{0,30}")
            .prop_map(|(k, v)| format!("{k}:{v}")),
        1 => ".{0,30}".prop_map(|v| format!("connection.id:{v}")),
        2 => prop::collection::vec("[^:\n\r]{0,10}", 1..6).prop_map(|f| f.join(":")),
        1 => "[a-z-]{0,12}".prop_map(|g| format!("[{g}]")),
        2 => ("[a-z-]{0,12}", ".{0,30}").prop_map(|(k, v)| format!("{k}={v}")),
        1 => ".{0,20}".prop_map(|c| format!("# {c}")),
        1 => Just(String::new()),
        3 => ".{0,60}",
    ]
}

/// Several lines, each ended by `\n` or `\r\n` (the last one perhaps not at all).
fn reader_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((reader_line(), prop::bool::weighted(0.1)), 0..24),
        any::<bool>(),
    )
        .prop_map(|(lines, end)| {
            let mut t = String::new();
            for (i, (l, crlf)) in lines.iter().enumerate() {
                t.push_str(l);
                if i + 1 < lines.len() || end {
                    t.push_str(if *crlf { "\r\n" } else { "\n" });
                }
            }
            t
        })
}

/// Every reader of nmcli output and keyfiles on one text.
fn read_all(text: &str) {
    let profiles = parse_profiles(text);
    for p in &profiles {
        let _ = (p.uuid(), p.id(), p.kind(), p.interface_name());
        let _ = (p.controller(), p.port_type());
    }
    let _ = parse_list(text);
    let k = parse_keyfile(text);
    let _ = (k.uuid(), k.id(), k.kind(), k.controller());
    let _ = parse_rows(text);
    let _ = (added_uuid(text), parse_version(text));
    for line in text.lines() {
        let _ = split_terse(line);
    }
}

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
    fn readers_never_panic_on_any_text(text in "(.|\n|\r){0,400}") {
        read_all(&text);
    }

    #[test]
    fn readers_never_panic_on_text_shaped_like_theirs(text in reader_text()) {
        read_all(&text);
        // Each property line that names connection.id starts a profile of its own.
        let ids = text
            .lines()
            .filter(|l| l.starts_with("connection.id:"))
            .count();
        let profiles = parse_profiles(&text);
        prop_assert!(profiles.len() >= ids && profiles.len() <= ids + 1, "{} profiles for {} ids", profiles.len(), ids);
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
