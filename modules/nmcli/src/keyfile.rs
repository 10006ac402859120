//! NetworkManager keyfiles (`*.nmconnection`, nm-settings-keyfile(5)) read as a [`Profile`]
//! with the property names and value spellings of `nmcli -t` property mode, so one
//! comparison serves both sources. Reading the file a list call names (its `FILENAME`
//! column) saves a second nmcli process where a module needs few properties.

use crate::Profile;

/// Keyfile group names that differ from the setting names nmcli prints.
const GROUP_ALIASES: &[(&str, &str)] = &[
    ("ethernet", "802-3-ethernet"),
    ("wifi", "802-11-wireless"),
    ("wifi-security", "802-11-wireless-security"),
];

/// Defaults a keyfile leaves out that nmcli prints (only those kvmnet reads).
const DEFAULTS: &[(&str, &str)] = &[
    ("connection.autoconnect", "yes"),
    ("ipv4.method", "auto"),
    ("ipv6.method", "auto"),
];

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

/// Whether a keyfile says NetworkManager generated its profile for a device someone else
/// configured (a guest's tap that libvirt put on a bridge, a bridge made with `ip link`):
/// `[.nmmeta] external=true` or `nm-generated=true`.
pub fn generated(k: &Profile) -> bool {
    k.get(".nmmeta.external") == Some("yes") || k.get(".nmmeta.nm-generated") == Some("yes")
}

/// Parse a keyfile. Booleans come out as nmcli prints them (`yes`/`no`).
pub fn parse_keyfile(text: &str) -> Profile {
    let mut p = Profile::default();
    let mut group = String::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(g) = l.strip_prefix('[').and_then(|g| g.strip_suffix(']')) {
            group = GROUP_ALIASES
                .iter()
                .find(|(k, _)| *k == g)
                .map(|(_, v)| v.to_string())
                .unwrap_or_else(|| g.to_string());
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            let v = match unescape(v.trim()).as_str() {
                "true" => "yes".to_string(),
                "false" => "no".to_string(),
                other => other.to_string(),
            };
            p.props.insert(format!("{group}.{}", k.trim()), v);
        }
    }
    for (k, v) in DEFAULTS {
        if !p.props.contains_key(*k) {
            p.props.insert(k.to_string(), v.to_string());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    // As NetworkManager 1.42 wrote it for `nmcli con add type macvlan ... tap yes` and then
    // `con mod ... 802-3-ethernet.cloned-mac-address 52:54:00:12:34:56 connection.autoconnect no`.
    const MACVTAP: &str = "[connection]\nid=macvlan-macvtap0\nuuid=a6236c8e-7dd3-4fcc-a235-f0c619dc447f\ntype=macvlan\nautoconnect=false\ninterface-name=macvtap0\ntimestamp=1795832846\n\n[ethernet]\ncloned-mac-address=52:54:00:12:34:56\n\n[macvlan]\nmode=3\nparent=ens32\ntap=true\n\n[ipv4]\nmethod=disabled\n\n[ipv6]\naddr-gen-mode=default\nmethod=disabled\n\n[proxy]\n";

    #[test]
    fn reads_a_keyfile_as_nmcli_prints_it() {
        let p = parse_keyfile(MACVTAP);
        assert_eq!(p.uuid(), "a6236c8e-7dd3-4fcc-a235-f0c619dc447f");
        assert_eq!(p.id(), "macvlan-macvtap0");
        assert_eq!(p.kind(), "macvlan");
        assert_eq!(p.interface_name(), Some("macvtap0"));
        assert_eq!(p.get("macvlan.mode"), Some("3"));
        assert_eq!(p.get("macvlan.tap"), Some("yes"));
        assert_eq!(p.get("connection.autoconnect"), Some("no"));
        assert_eq!(
            p.get("802-3-ethernet.cloned-mac-address"),
            Some("52:54:00:12:34:56")
        );
        assert_eq!(p.get("ipv4.method"), Some("disabled"));
    }

    #[test]
    fn fills_defaults_and_unescapes() {
        let p = parse_keyfile("[connection]\nid=my\\sprofile\\\\x\n# comment\n");
        assert_eq!(p.id(), "my profile\\x");
        assert_eq!(p.get("connection.autoconnect"), Some("yes"));
        assert_eq!(p.get("ipv4.method"), Some("auto"));
    }
}
