//! Readers of what `nmcli` prints in terse mode.
//!
//! Two shapes, with different escaping rules (see lab notes):
//! * list mode (`nmcli -t -f NAME,UUID,TYPE,DEVICE con show`): fields separated by `:`,
//!   with `:` inside a value escaped as `\:` and `\` as `\\` → [`split_terse`].
//! * property mode (`nmcli -t -f connection,bridge con show UUID ...`): one
//!   `setting.property:value` line per property, value NOT escaped → [`parse_profiles`].
//!   Newlines are never escaped, so a value holding one continues on the next line.

use std::collections::BTreeMap;

pub mod conn;
pub mod keyfile;
pub use conn::{is_port_of, Conn, Connections, Device, Props, Row};
pub use keyfile::{generated, parse_keyfile};

/// Split one terse list-mode line into its fields, unescaping `\:` and `\\`.
pub fn split_terse(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => cur.push(n),
                None => cur.push('\\'),
            },
            ':' => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// Escape a value for comparison with list-mode output (the inverse of [`split_terse`]).
pub fn escape_terse(value: &str) -> String {
    value.replace('\\', "\\\\").replace(':', "\\:")
}

/// One profile's properties as printed by `nmcli -t -f <settings> con show <UUID>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub props: BTreeMap<String, String>,
}

impl Profile {
    /// A property's value; `None` when nmcli did not print it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.props.get(key).map(String::as_str)
    }
    /// The first of several spellings that is present (NM renamed `connection.master` to
    /// `connection.controller` and `slave-type` to `port-type`).
    pub fn get_any(&self, keys: &[&str]) -> Option<&str> {
        keys.iter().find_map(|k| self.get(k))
    }
    pub fn uuid(&self) -> &str {
        self.get("connection.uuid").unwrap_or("")
    }
    pub fn id(&self) -> &str {
        self.get("connection.id").unwrap_or("")
    }
    pub fn kind(&self) -> &str {
        self.get("connection.type").unwrap_or("")
    }
    pub fn interface_name(&self) -> Option<&str> {
        self.get("connection.interface-name")
            .filter(|s| !s.is_empty())
    }
    /// The controller (bridge) this profile is a port of, as stored: a UUID, an interface
    /// name, or (written by buggy tools) a profile name.
    pub fn controller(&self) -> Option<&str> {
        self.get_any(&["connection.controller", "connection.master"])
            .filter(|s| !s.is_empty() && *s != "--")
    }
    pub fn port_type(&self) -> Option<&str> {
        self.get_any(&["connection.port-type", "connection.slave-type"])
            .filter(|s| !s.is_empty() && *s != "--")
    }
}

/// Whether a line starts a `setting.property:` entry (rather than continuing a value).
fn property_key(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once(':')?;
    let (setting, prop) = key.split_once('.')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    (ok(setting) && ok(prop) || key.starts_with("GENERAL.")).then_some((key, value))
}

/// Parse property-mode output for one or more profiles (`con show UUID1 UUID2`): a new
/// profile starts at each `connection.id` line. Split on the first colon only; a line
/// that is not a `setting.property:` line continues the previous value (newlines in
/// values are not escaped). nmcli separates profiles with an empty line (NM 1.42): that
/// line ends the previous value rather than continuing it.
pub fn parse_profiles(text: &str) -> Vec<Profile> {
    let mut out: Vec<Profile> = Vec::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.is_empty() {
            last = None;
            continue;
        }
        match property_key(line) {
            Some((key, value)) => {
                if key == "connection.id" || out.is_empty() {
                    out.push(Profile::default());
                }
                if let Some(p) = out.last_mut() {
                    p.props.insert(key.to_string(), value.to_string());
                }
                last = Some(key.to_string());
            }
            None => {
                if let (Some(p), Some(k)) = (out.last_mut(), &last) {
                    if let Some(v) = p.props.get_mut(k) {
                        v.push('\n');
                        v.push_str(line);
                    }
                }
            }
        }
    }
    out
}

/// A row of `nmcli -t -f NAME,UUID,TYPE,DEVICE,ACTIVE con show` (fields as asked).
pub fn parse_list(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(split_terse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_mode_unescapes_colons_and_backslashes() {
        assert_eq!(
            split_terse(r"my\:br\\0:5d1e-uuid:bridge:br0"),
            vec![r"my:br\0", "5d1e-uuid", "bridge", "br0"]
        );
        assert_eq!(split_terse("a::c"), vec!["a", "", "c"]);
        assert_eq!(escape_terse(r"a:b\c"), r"a\:b\\c");
        assert_eq!(split_terse(&escape_terse(r"x:\:y")), vec![r"x:\:y"]);
    }

    #[test]
    fn property_mode_splits_on_first_colon_and_separates_profiles() {
        let text = "connection.id:my:br\\0\nconnection.uuid:11111111-aaaa\nconnection.type:bridge\nconnection.master:\nbridge.stp:no\nconnection.id:bridge-slave-ens32\nconnection.uuid:22222222-bbbb\nconnection.type:802-3-ethernet\nconnection.master:11111111-aaaa\nconnection.slave-type:bridge\n";
        let p = parse_profiles(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].id(), "my:br\\0");
        assert_eq!(p[0].get("bridge.stp"), Some("no"));
        assert_eq!(p[0].controller(), None);
        assert_eq!(p[1].controller(), Some("11111111-aaaa"));
        assert_eq!(p[1].port_type(), Some("bridge"));
        assert_eq!(p[1].kind(), "802-3-ethernet");
    }

    #[test]
    fn newer_nm_spellings_are_read_too() {
        let p = parse_profiles(
            "connection.id:p\nconnection.controller:br0\nconnection.port-type:bridge\n",
        );
        assert_eq!(p[0].controller(), Some("br0"));
        assert_eq!(p[0].port_type(), Some("bridge"));
    }

    #[test]
    fn empty_line_between_profiles_is_a_separator() {
        // nmcli 1.42 prints an empty line after each profile of `con show UUID UUID`.
        let p = parse_profiles("connection.id:a\nipv6.token:\n\nconnection.id:b\nipv6.token:x\n\n");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].get("ipv6.token"), Some(""));
        assert_eq!(p[1].get("ipv6.token"), Some("x"));
    }

    #[test]
    fn unescaped_newline_continues_a_value() {
        let p = parse_profiles("connection.id:a\nipv4.dns-search:x\ny\nipv4.method:manual\n");
        assert_eq!(p[0].get("ipv4.dns-search"), Some("x\ny"));
        assert_eq!(p[0].get("ipv4.method"), Some("manual"));
    }
}
