//! A profile's settings as NetworkManager's D-Bus API hands them out
//! (`Settings.Connection.GetSettings`, `a{sa{sv}}`), read as the [`Profile`] nmcli's terse
//! property mode prints, so that one comparison serves both readers.
//!
//! Only the properties the kvmnet modules read are translated ([`KNOWN`]); the others are
//! left out. D-Bus leaves out a property at its default, which nmcli prints: the defaults
//! of the known properties are filled in as nmcli prints them (one, `ipv6.addr-gen-mode`,
//! depends on the NetworkManager version). A value this reader cannot put exactly as nmcli
//! would (a route with attributes, routing rules) makes the whole profile unreadable here
//! ([`Unreadable`]): the caller then reads it with nmcli, never with a guess.

use kvmnet_nmcli::Profile;
use serde_json::{Map, Value};
use std::net::{Ipv4Addr, Ipv6Addr};

/// How a property's D-Bus value becomes nmcli's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fmt {
    Str,
    Bool,
    Int,
    /// `as`, joined with `,`.
    List,
    /// `ay` as `AA:BB:CC:DD:EE:FF`.
    Mac,
    /// `u`: `auto` for 0.
    Mtu,
    /// `u` flags as hex (`0x0`).
    Hex,
    /// `ipv6.addr-gen-mode` (`i`): nmcli prints its name.
    AddrGenMode,
}

/// `(nmcli property, format, what nmcli prints when D-Bus leaves it out)`. A default of
/// `None`: the property has none nmcli prints the same on every version (filled in by
/// [`fill_defaults`] where it depends on the version, else left out).
const KNOWN: &[(&str, Fmt, Option<&str>)] = &[
    ("connection.id", Fmt::Str, None),
    ("connection.uuid", Fmt::Str, None),
    ("connection.type", Fmt::Str, None),
    ("connection.interface-name", Fmt::Str, Some("")),
    ("connection.autoconnect", Fmt::Bool, Some("yes")),
    ("connection.master", Fmt::Str, Some("")),
    ("connection.slave-type", Fmt::Str, Some("")),
    ("connection.controller", Fmt::Str, None),
    ("connection.port-type", Fmt::Str, None),
    ("bridge.stp", Fmt::Bool, Some("yes")),
    ("bridge.priority", Fmt::Int, Some("32768")),
    ("bridge.forward-delay", Fmt::Int, Some("15")),
    ("bridge.hello-time", Fmt::Int, Some("2")),
    ("bridge.max-age", Fmt::Int, Some("20")),
    ("bridge.mac-address", Fmt::Mac, Some("")),
    ("802-3-ethernet.mac-address", Fmt::Mac, Some("")),
    ("802-3-ethernet.cloned-mac-address", Fmt::Str, Some("")),
    ("802-3-ethernet.mtu", Fmt::Mtu, Some("auto")),
    ("macvlan.parent", Fmt::Str, Some("")),
    ("macvlan.mode", Fmt::Int, Some("0")),
    ("macvlan.tap", Fmt::Bool, Some("no")),
    ("macvlan.promiscuous", Fmt::Bool, Some("yes")),
    ("ipv4.method", Fmt::Str, Some("auto")),
    ("ipv4.addresses", Fmt::Str, Some("")),
    ("ipv4.gateway", Fmt::Str, Some("")),
    ("ipv4.routes", Fmt::Str, Some("")),
    ("ipv4.route-metric", Fmt::Int, Some("-1")),
    ("ipv4.route-table", Fmt::Int, Some("0")),
    ("ipv4.routing-rules", Fmt::Str, Some("")),
    ("ipv4.dns", Fmt::Str, Some("")),
    ("ipv4.dns-search", Fmt::List, Some("")),
    ("ipv4.dns-options", Fmt::List, Some("")),
    ("ipv4.dns-priority", Fmt::Int, Some("0")),
    ("ipv4.ignore-auto-routes", Fmt::Bool, Some("no")),
    ("ipv4.ignore-auto-dns", Fmt::Bool, Some("no")),
    ("ipv4.never-default", Fmt::Bool, Some("no")),
    ("ipv4.may-fail", Fmt::Bool, Some("yes")),
    ("ipv4.required-timeout", Fmt::Int, Some("-1")),
    ("ipv4.dad-timeout", Fmt::Int, Some("-1")),
    ("ipv4.link-local", Fmt::Int, Some("0")),
    ("ipv4.dhcp-client-id", Fmt::Str, Some("")),
    ("ipv4.dhcp-iaid", Fmt::Str, Some("")),
    ("ipv4.dhcp-timeout", Fmt::Int, Some("0")),
    ("ipv4.dhcp-send-hostname", Fmt::Bool, None),
    ("ipv4.dhcp-hostname", Fmt::Str, Some("")),
    ("ipv4.dhcp-fqdn", Fmt::Str, Some("")),
    ("ipv4.dhcp-hostname-flags", Fmt::Hex, Some("0x0")),
    ("ipv4.dhcp-vendor-class-identifier", Fmt::Str, Some("")),
    ("ipv4.dhcp-reject-servers", Fmt::List, Some("")),
    ("ipv6.method", Fmt::Str, Some("auto")),
    ("ipv6.addresses", Fmt::Str, Some("")),
    ("ipv6.gateway", Fmt::Str, Some("")),
    ("ipv6.routes", Fmt::Str, Some("")),
    ("ipv6.route-metric", Fmt::Int, Some("-1")),
    ("ipv6.route-table", Fmt::Int, Some("0")),
    ("ipv6.routing-rules", Fmt::Str, Some("")),
    ("ipv6.dns", Fmt::Str, Some("")),
    ("ipv6.dns-search", Fmt::List, Some("")),
    ("ipv6.dns-options", Fmt::List, Some("")),
    ("ipv6.dns-priority", Fmt::Int, Some("0")),
    ("ipv6.ignore-auto-routes", Fmt::Bool, Some("no")),
    ("ipv6.ignore-auto-dns", Fmt::Bool, Some("no")),
    ("ipv6.never-default", Fmt::Bool, Some("no")),
    ("ipv6.may-fail", Fmt::Bool, Some("yes")),
    ("ipv6.required-timeout", Fmt::Int, Some("-1")),
    ("ipv6.addr-gen-mode", Fmt::AddrGenMode, None),
    ("ipv6.ip6-privacy", Fmt::Int, Some("-1")),
    ("ipv6.token", Fmt::Str, Some("")),
    ("ipv6.ra-timeout", Fmt::Int, Some("0")),
    ("ipv6.mtu", Fmt::Mtu, Some("auto")),
    ("ipv6.dhcp-duid", Fmt::Str, Some("")),
    ("ipv6.dhcp-iaid", Fmt::Str, Some("")),
    ("ipv6.dhcp-timeout", Fmt::Int, Some("0")),
    ("ipv6.dhcp-send-hostname", Fmt::Bool, None),
    ("ipv6.dhcp-hostname", Fmt::Str, Some("")),
    ("ipv6.dhcp-hostname-flags", Fmt::Hex, Some("0x0")),
];

/// Properties older NetworkManagers do not have (nmcli prints nothing for them there).
const SINCE: &[(&str, NmVersion)] = &[
    ("ipv4.link-local", NmVersion(1, 40)),
    ("ipv4.required-timeout", NmVersion(1, 34)),
    ("ipv6.required-timeout", NmVersion(1, 34)),
    ("ipv6.mtu", NmVersion(1, 40)),
];

/// Whether this reader gives property `prop` (nmcli's name) as nmcli prints it.
pub fn known(prop: &str) -> bool {
    KNOWN.iter().any(|(k, _, _)| *k == prop)
}

/// A property's value as the two readers are compared on it: absent, empty and nmcli's
/// `--` are alike, surrounding blanks do not count.
pub fn comparable(v: Option<&str>) -> String {
    let t = v.unwrap_or("").trim();
    if t == "--" {
        String::new()
    } else {
        t.to_string()
    }
}

/// A profile this reader cannot put exactly as nmcli would: the property, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

/// NetworkManager's version as far as what nmcli prints depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NmVersion(pub u32, pub u32);

impl NmVersion {
    /// From the `Version` property ("1.42.4").
    pub fn parse(text: &str) -> Option<NmVersion> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(NmVersion(major, minor))
    }
    /// NetworkManager 1.46 and later name a port's controller `connection.controller` and
    /// `connection.port-type` (nmcli prints both spellings then).
    pub fn newer_names(self) -> bool {
        self >= NmVersion(1, 46)
    }
}

/// The settings of one profile (the reply of `GetSettings`, as JSON) as nmcli prints them.
pub fn profile(settings: &Value, nm: NmVersion) -> Result<Profile, Unreadable> {
    let mut p = Profile::default();
    let Some(all) = settings.as_object() else {
        return Err(Unreadable(format!(
            "settings are not a dictionary: {settings}"
        )));
    };
    for (setting, props) in all {
        let Some(props) = props.as_object() else {
            continue;
        };
        for (name, v) in props {
            if let Some((key, text)) = property(setting, name, v, props)? {
                p.props.insert(key, text);
            }
        }
    }
    fill_defaults(&mut p, nm);
    Ok(p)
}

/// One D-Bus property as `(nmcli property, text)`; `None` for those not translated
/// (unknown to kvmnet, or the deprecated twin of another).
fn property(
    setting: &str,
    name: &str,
    v: &Value,
    props: &Map<String, Value>,
) -> Result<Option<(String, String)>, Unreadable> {
    let key = format!("{setting}.{name}");
    let bad = |why: &str| Unreadable(format!("{key}: {why}: {v}"));
    let ip = setting == "ipv4" || setting == "ipv6";
    let text = match (ip, name) {
        // the deprecated twins of address-data, route-data and dns-data / assigned-mac-address
        (true, "addresses" | "routes") => return Ok(None),
        (true, "dns") if props.contains_key("dns-data") => return Ok(None),
        _ if key == "802-3-ethernet.cloned-mac-address"
            && props.contains_key("assigned-mac-address") =>
        {
            return Ok(None);
        }
        (true, "address-data") => {
            return addresses(v)
                .map(|t| Some((format!("{setting}.addresses"), t)))
                .ok_or_else(|| bad("not a list of addresses"))
        }
        (true, "route-data") => {
            return routes(v)
                .map(|t| Some((format!("{setting}.routes"), t)))
                .ok_or_else(|| bad("a route nmcli would print with attributes"))
        }
        (true, "routing-rules") => match v.as_array() {
            Some(a) if a.is_empty() => String::new(),
            _ => return Err(bad("routing rules")),
        },
        (true, "dns") => dns(v, setting == "ipv6").ok_or_else(|| bad("not a list of addresses"))?,
        (true, "dns-data") => {
            return list(v)
                .map(|t| Some((format!("{setting}.dns"), t)))
                .ok_or_else(|| bad("not a list of strings"))
        }
        _ if key == "802-3-ethernet.assigned-mac-address" => {
            let t = v.as_str().ok_or_else(|| bad("not a string"))?;
            return Ok(Some((
                "802-3-ethernet.cloned-mac-address".into(),
                t.to_string(),
            )));
        }
        _ => {
            let Some((_, fmt, _)) = KNOWN.iter().find(|(k, _, _)| *k == key) else {
                return Ok(None);
            };
            format(*fmt, v).ok_or_else(|| bad("unexpected type"))?
        }
    };
    Ok(Some((key, text)))
}

fn format(fmt: Fmt, v: &Value) -> Option<String> {
    Some(match fmt {
        Fmt::Str => match v {
            Value::String(s) => s.clone(),
            Value::Array(_) => mac(v)?, // cloned-mac-address as bytes (no assigned-mac-address)
            _ => return None,
        },
        Fmt::Bool => match v {
            Value::Bool(b) => yes_no(*b).into(),
            // NetworkManager 1.52 made some of them ternaries: -1 default, 0 no, 1 yes
            Value::Number(n) => n.as_i64()?.to_string(),
            _ => return None,
        },
        Fmt::Int => v.as_i64()?.to_string(),
        Fmt::List => list(v)?,
        Fmt::Mac => mac(v)?,
        Fmt::Mtu => match v.as_u64()? {
            0 => "auto".into(),
            n => n.to_string(),
        },
        Fmt::Hex => format!("0x{:x}", v.as_u64()?),
        Fmt::AddrGenMode => addr_gen_mode(v.as_i64()?)?.into(),
    })
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn addr_gen_mode(n: i64) -> Option<&'static str> {
    Some(match n {
        0 => "eui64",
        1 => "stable-privacy",
        2 => "default-or-eui64",
        3 => "default",
        _ => return None,
    })
}

fn list(v: &Value) -> Option<String> {
    let items: Option<Vec<&str>> = v.as_array()?.iter().map(Value::as_str).collect();
    Some(items?.join(","))
}

fn mac(v: &Value) -> Option<String> {
    let bytes: Option<Vec<u64>> = v.as_array()?.iter().map(Value::as_u64).collect();
    let bytes = bytes?;
    if bytes.iter().any(|b| *b > 255) {
        return None;
    }
    Some(
        bytes
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// `address-data` (`aa{sv}`: address, prefix) as nmcli's `ADDR/PREFIX,...`.
fn addresses(v: &Value) -> Option<String> {
    let mut out = Vec::new();
    for a in v.as_array()? {
        let addr = a.get("address")?.as_str()?;
        let prefix = a.get("prefix")?.as_u64()?;
        out.push(format!("{addr}/{prefix}"));
    }
    Some(out.join(", "))
}

/// `route-data` as nmcli's `DEST/PREFIX [NEXT-HOP] [METRIC], ...`; a route with any other
/// attribute (table, type, mtu, ...) is not read here.
fn routes(v: &Value) -> Option<String> {
    let mut out = Vec::new();
    for r in v.as_array()? {
        let m = r.as_object()?;
        if m.keys()
            .any(|k| !matches!(k.as_str(), "dest" | "prefix" | "next-hop" | "metric"))
        {
            return None;
        }
        let mut t = format!(
            "{}/{}",
            m.get("dest")?.as_str()?,
            m.get("prefix")?.as_u64()?
        );
        if let Some(nh) = m.get("next-hop") {
            t.push(' ');
            t.push_str(nh.as_str()?);
        }
        if let Some(metric) = m.get("metric") {
            t.push(' ');
            t.push_str(&metric.as_u64()?.to_string());
        }
        out.push(t);
    }
    Some(out.join(", "))
}

/// The deprecated `dns` of NetworkManager before `dns-data`: IPv4 addresses as `u32` in
/// network byte order, IPv6 ones as 16 bytes.
fn dns(v: &Value, v6: bool) -> Option<String> {
    let mut out = Vec::new();
    for a in v.as_array()? {
        if v6 {
            let bytes: Option<Vec<u8>> = a
                .as_array()?
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            let b: [u8; 16] = bytes?.try_into().ok()?;
            out.push(Ipv6Addr::from(b).to_string());
        } else {
            let n = u32::try_from(a.as_u64()?).ok()?;
            out.push(Ipv4Addr::from(n.to_le_bytes()).to_string());
        }
    }
    Some(out.join(","))
}

/// nmcli prints every property of the settings it shows; D-Bus leaves out those at their
/// default. Only the settings the profile has get their defaults (a bridge profile has no
/// `macvlan` setting, and nmcli prints none).
fn fill_defaults(p: &mut Profile, nm: NmVersion) {
    let has = |p: &Profile, setting: &str| {
        let prefix = format!("{setting}.");
        p.props.keys().any(|k| k.starts_with(&prefix))
    };
    let kind = p.kind().to_string();
    let port = p.port_type().is_some();
    let settings: Vec<&str> = [
        "connection",
        "bridge",
        "802-3-ethernet",
        "macvlan",
        "ipv4",
        "ipv6",
    ]
    .into_iter()
    .filter(|s| {
        has(p, s)
                || *s == "connection"
                || (*s == "bridge" && kind == "bridge")
                || (*s == "macvlan" && kind == "macvlan")
                || (*s == "802-3-ethernet" && matches!(kind.as_str(), "802-3-ethernet" | "macvlan"))
                || (*s == "802-3-ethernet" && kind == "bridge" && nm >= NmVersion(1, 40))
                // a port (of a bridge, a bond) has no IP configuration of its own
                || ((*s == "ipv4" || *s == "ipv6") && !port)
    })
    .collect();
    if nm.newer_names() {
        // nmcli prints both spellings, with the same value
        for (old, new) in [
            ("connection.master", "connection.controller"),
            ("connection.slave-type", "connection.port-type"),
        ] {
            let v = [p.get(old), p.get(new)]
                .into_iter()
                .flatten()
                .find(|v| !v.is_empty())
                .unwrap_or("")
                .to_string();
            p.props.insert(old.into(), v.clone());
            p.props.insert(new.into(), v);
        }
    }
    for (k, _, default) in KNOWN {
        let Some(d) = default else { continue };
        let setting = k.split('.').next().unwrap_or_default();
        let this_nm_has_it = SINCE.iter().all(|(x, v)| x != k || nm >= *v);
        if settings.contains(&setting) && this_nm_has_it && !p.props.contains_key(*k) {
            p.props.insert(k.to_string(), d.to_string());
        }
    }
    for fam in ["ipv4", "ipv6"] {
        if !settings.contains(&fam) {
            continue;
        }
        let k = format!("{fam}.dhcp-send-hostname");
        // a boolean until 1.52 made it a ternary, whose default nmcli prints as -1
        let d = if nm >= NmVersion(1, 52) { "-1" } else { "yes" };
        p.props.entry(k).or_insert_with(|| d.to_string());
    }
    if settings.contains(&"ipv6") {
        // NetworkManager before 1.40 had no "default" mode: stable-privacy was the default
        let d = if nm >= NmVersion(1, 40) {
            "default"
        } else {
            "stable-privacy"
        };
        p.props
            .entry("ipv6.addr-gen-mode".into())
            .or_insert_with(|| d.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bridge(extra_ipv4: Value) -> Value {
        let mut ipv4 = json!({"method": "manual",
            "address-data": [{"address": "192.0.2.10", "prefix": 24}]});
        if let (Some(m), Some(e)) = (ipv4.as_object_mut(), extra_ipv4.as_object()) {
            m.extend(e.clone());
        }
        json!({"connection": {"id": "bridge-br0", "uuid": "u1", "type": "bridge",
                              "interface-name": "br0"},
               "bridge": {"stp": false}, "ipv4": ipv4, "ipv6": {"method": "disabled"}})
    }

    #[test]
    fn defaults_are_filled_as_nmcli_prints_them_on_each_version() {
        let p = profile(&bridge(json!({})), NmVersion(1, 42)).unwrap();
        assert_eq!(p.get("bridge.stp"), Some("no"));
        assert_eq!(p.get("bridge.forward-delay"), Some("15"));
        assert_eq!(p.get("connection.autoconnect"), Some("yes"));
        assert_eq!(p.get("ipv4.addresses"), Some("192.0.2.10/24"));
        assert_eq!(p.get("ipv6.addr-gen-mode"), Some("default"));
        assert_eq!(p.get("ipv4.dhcp-send-hostname"), Some("yes"));
        assert_eq!(p.get("802-3-ethernet.mtu"), Some("auto"));
        assert_eq!(p.get("connection.controller"), None);
        let old = profile(&bridge(json!({})), NmVersion(1, 30)).unwrap();
        assert_eq!(old.get("ipv6.addr-gen-mode"), Some("stable-privacy"));
        assert_eq!(
            old.get("ipv4.link-local"),
            None,
            "1.30 has no ipv4.link-local"
        );
        assert_eq!(old.get("802-3-ethernet.mtu"), None);
        let new = profile(&bridge(json!({})), NmVersion(1, 52)).unwrap();
        assert_eq!(new.get("ipv4.dhcp-send-hostname"), Some("-1"));
        assert_eq!(new.get("connection.controller"), Some(""));
        assert_eq!(new.get("connection.master"), Some(""));
    }

    #[test]
    fn what_nmcli_would_print_otherwise_is_not_read() {
        let with_table =
            json!({"route-data": [{"dest": "198.51.100.0", "prefix": 24, "table": 100}]});
        assert!(profile(&bridge(with_table), NmVersion(1, 42)).is_err());
        let rules = json!({"routing-rules": [{"priority": 5, "table": 100}]});
        assert!(profile(&bridge(rules), NmVersion(1, 42)).is_err());
        let none = json!({"route-data": [], "routing-rules": []});
        let p = profile(&bridge(none), NmVersion(1, 42)).unwrap();
        assert_eq!(p.get("ipv4.routes"), Some(""));
        assert!(profile(&json!("not settings"), NmVersion(1, 42)).is_err());
    }

    #[test]
    fn old_spellings_of_dns_and_mac_addresses() {
        // NetworkManager before dns-data: IPv4 servers as u32 in network byte order, IPv6 as bytes
        let s = json!({"connection": {"id": "x", "uuid": "u", "type": "802-3-ethernet"},
                       "802-3-ethernet": {"cloned-mac-address": [82, 84, 0, 170, 187, 204]},
                       "ipv4": {"method": "manual", "dns": [16843009u32, 134744072u32]},
                       "ipv6": {"method": "manual", "dns": [[32, 1, 13, 184, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 83]]}});
        let p = profile(&s, NmVersion(1, 30)).unwrap();
        assert_eq!(p.get("ipv4.dns"), Some("1.1.1.1,8.8.8.8"));
        assert_eq!(p.get("ipv6.dns"), Some("2001:db8::53"));
        assert_eq!(
            p.get("802-3-ethernet.cloned-mac-address"),
            Some("52:54:00:AA:BB:CC")
        );
        assert_eq!(NmVersion::parse("1.52.1"), Some(NmVersion(1, 52)));
        assert_eq!(NmVersion::parse("x"), None);
    }

    #[test]
    fn the_properties_the_modules_compare_are_known() {
        for k in [
            "connection.autoconnect",
            "bridge.stp",
            "ipv4.method",
            "ipv6.addresses",
            "802-3-ethernet.cloned-mac-address",
            "macvlan.mode",
            "macvlan.parent",
        ] {
            assert!(known(k), "{k}");
        }
        assert!(!known("connection.timestamp"));
    }
}
