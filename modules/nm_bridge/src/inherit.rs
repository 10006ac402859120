//! `inherit: true`: the bridge takes over what the port it takes carries, so that the host
//! keeps its identity on the LAN. Pure (plan.rs calls it): everything comes from what
//! current.rs read.
//!
//! From the profile active on the port: its IP configuration, the properties in
//! [`INHERITED`] (method, addresses, gateway, routes, DNS, DHCP client settings, IPv6
//! alike) that are not at NetworkManager's default; from the kernel: the port's MAC
//! address (so a DHCP server hands back the same lease, and switches' port security keeps
//! working). Only one port may carry addresses. The task's own `ipv4`/`ipv6` sub-options
//! and `mac` win, one by one; an explicit method that takes no addresses (`disabled`,
//! `link-local`, `ignore`) takes nothing of that family.

use crate::current::Current;
use crate::params::{norm_value, Params, MAC_PROP};
use kvmnet_nmcli::conn::Conn;
use kvmnet_protocol::{Error, Result};

/// The properties a bridge inherits, each with the values nmcli prints for "not set"
/// (NetworkManager 1.30, 1.42 and 1.52: a property only one of them knows is simply not
/// printed by the others). `method` is always taken.
pub const INHERITED: &[(&str, &[&str])] = &[
    ("ipv4.method", &[]),
    ("ipv4.addresses", &[""]),
    ("ipv4.gateway", &[""]),
    ("ipv4.routes", &[""]),
    ("ipv4.route-metric", &["-1"]),
    ("ipv4.route-table", &["0"]),
    ("ipv4.routing-rules", &[""]),
    ("ipv4.dns", &[""]),
    ("ipv4.dns-search", &[""]),
    ("ipv4.dns-options", &[""]),
    ("ipv4.dns-priority", &["0"]),
    ("ipv4.ignore-auto-routes", &["no"]),
    ("ipv4.ignore-auto-dns", &["no"]),
    ("ipv4.never-default", &["no"]),
    ("ipv4.may-fail", &["yes"]),
    ("ipv4.required-timeout", &["-1"]),
    ("ipv4.dad-timeout", &["-1"]),
    ("ipv4.link-local", &["0"]),
    ("ipv4.dhcp-client-id", &[""]),
    ("ipv4.dhcp-iaid", &[""]),
    ("ipv4.dhcp-timeout", &["0"]),
    ("ipv4.dhcp-send-hostname", &["yes", "-1"]),
    ("ipv4.dhcp-hostname", &[""]),
    ("ipv4.dhcp-fqdn", &[""]),
    ("ipv4.dhcp-hostname-flags", &["0x0"]),
    ("ipv4.dhcp-vendor-class-identifier", &[""]),
    ("ipv4.dhcp-reject-servers", &[""]),
    ("ipv6.method", &[]),
    ("ipv6.addresses", &[""]),
    ("ipv6.gateway", &[""]),
    ("ipv6.routes", &[""]),
    ("ipv6.route-metric", &["-1"]),
    ("ipv6.route-table", &["0"]),
    ("ipv6.routing-rules", &[""]),
    ("ipv6.dns", &[""]),
    ("ipv6.dns-search", &[""]),
    ("ipv6.dns-options", &[""]),
    ("ipv6.dns-priority", &["0"]),
    ("ipv6.ignore-auto-routes", &["no"]),
    ("ipv6.ignore-auto-dns", &["no"]),
    ("ipv6.never-default", &["no"]),
    ("ipv6.may-fail", &["yes"]),
    ("ipv6.required-timeout", &["-1"]),
    ("ipv6.addr-gen-mode", &["default"]),
    ("ipv6.ip6-privacy", &["-1"]),
    ("ipv6.token", &[""]),
    ("ipv6.ra-timeout", &["0"]),
    ("ipv6.mtu", &["auto"]),
    ("ipv6.dhcp-duid", &[""]),
    ("ipv6.dhcp-iaid", &[""]),
    ("ipv6.dhcp-timeout", &["0"]),
    ("ipv6.dhcp-send-hostname", &["yes", "-1"]),
    ("ipv6.dhcp-hostname", &[""]),
    ("ipv6.dhcp-hostname-flags", &["0x0"]),
];

/// The port the bridge inherits from.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    pub port: String,
    /// The profile active on it (`None`: addresses configured outside NetworkManager and
    /// no profile for them).
    pub conn: Option<&'a Conn>,
    /// The port's MAC address, as the kernel has it now.
    pub mac: Option<String>,
    /// Its global addresses now (the DHCP lease the bridge must get back).
    pub addresses: Vec<String>,
}

impl Source<'_> {
    /// The IP properties taken from its profile: (property, normalised value), in
    /// [`INHERITED`] order, those at their default left out.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let Some(c) = self.conn else {
            return Vec::new();
        };
        INHERITED
            .iter()
            .filter_map(|(k, defaults)| {
                let raw = c.p.get(k)?;
                let v = norm_value(k, raw);
                let unset = v.is_empty() || raw.trim() == "--" || defaults.contains(&v.as_str());
                (k.ends_with(".method") || !unset).then_some((*k, v))
            })
            .collect()
    }
}

/// The profile active on `port` that is not a bridge port itself (it holds an IP
/// configuration).
fn active_ip_profile<'a>(cur: &'a Current, port: &str) -> Option<&'a Conn> {
    cur.bound_to(port)
        .into_iter()
        .find(|c| c.active_on(port) && c.p.port_type().is_none())
}

/// The one port among those taken this run whose configuration the bridge inherits: the
/// one that carries global addresses, else the one with an IP profile active. Two that
/// carry addresses: refused, the bridge can have one identity only.
pub fn source<'a>(cur: &'a Current, name: &str, taken: &[String]) -> Result<Option<Source<'a>>> {
    let all: Vec<Source> = taken
        .iter()
        .map(|port| Source {
            port: port.clone(),
            conn: active_ip_profile(cur, port),
            mac: cur.link(port).and_then(|l| l.mac()),
            addresses: cur
                .link(port)
                .map(|l| l.global_addresses())
                .unwrap_or_default(),
        })
        .collect();
    let carrying: Vec<&Source> = all.iter().filter(|s| !s.addresses.is_empty()).collect();
    if carrying.len() > 1 {
        let what: Vec<String> = carrying
            .iter()
            .map(|s| format!("{} ({})", s.port, s.addresses.join(", ")))
            .collect();
        return Err(Error::invalid(format!(
            "option 'inherit': {} {} carry addresses; {name} can inherit the configuration of one port only: take the others into {name} in a later task, or remove their addresses first",
            what.join(" and "),
            if what.len() == 2 { "both" } else { "all" }
        )));
    }
    if let Some(s) = carrying.first() {
        return Ok(Some((*s).clone()));
    }
    let mut with_profile = all.into_iter().filter(|s| s.conn.is_some());
    match (with_profile.next(), with_profile.next()) {
        (Some(s), None) => Ok(Some(s)),
        _ => Ok(None),
    }
}

/// Methods that take no addresses, gateway, routes or DNS.
fn takes_nothing(method: Option<&str>) -> bool {
    matches!(method, Some("disabled" | "link-local" | "ignore"))
}

/// The bridge's settings: the task's own (`explicit`, from `desired_bridge`) and, under
/// them, what `source` hands over.
pub fn merge(
    p: &Params,
    explicit: Vec<(&'static str, String)>,
    source: &Source,
) -> Vec<(&'static str, String)> {
    let mut out = explicit;
    for (fam, ip) in [("ipv4.", &p.ipv4), ("ipv6.", &p.ipv6)] {
        let method = ip.as_ref().and_then(|i| i.method.as_deref());
        if takes_nothing(method) {
            continue;
        }
        for (k, v) in source.settings() {
            if k.starts_with(fam) && !out.iter().any(|(e, _)| *e == k) {
                out.push((k, v));
            }
        }
    }
    if p.mac.is_none() {
        if let Some(mac) = &source.mac {
            out.push((MAC_PROP, mac.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvmnet_nmcli::parse_profiles;

    fn conn(props: &str) -> Conn {
        let p = parse_profiles(props).remove(0);
        Conn {
            uuid: p.uuid().to_string(),
            device: "ens33".into(),
            state: "activated".into(),
            external: false,
            p,
        }
    }

    fn source(c: &Conn) -> Source<'_> {
        Source {
            port: "ens33".into(),
            conn: Some(c),
            mac: None,
            addresses: Vec::new(),
        }
    }

    #[test]
    fn nm_1_30_stable_privacy_is_inherited_and_is_what_its_bridges_get_anyway() {
        // `nmcli con add type ethernet ifname ens33 con-name side ipv4.method auto`, shown
        // with the settings nm_bridge reads: NetworkManager 1.30.6 (Debian 11) stores
        // ipv6.addr-gen-mode stable-privacy, 1.42.4 (Debian 12) `default`.
        let side = conn(include_str!("../tests/data/nm-1.30.side.props"));
        assert_eq!(
            source(&side).settings(),
            vec![
                ("ipv4.method", "auto".to_string()),
                ("ipv6.method", "auto".to_string()),
                ("ipv6.addr-gen-mode", "stable-privacy".to_string()),
            ]
        );
        // A value the profile holds is the port's choice (from 1.40 on stable-privacy is
        // one, `default` being NetworkManager's): it is copied. On 1.30 it is also what a
        // bridge nmcli makes holds, so the copy changes nothing there: a rerun finds it.
        let bridge = conn(include_str!("../tests/data/nm-1.30.bridge.props"));
        assert_eq!(
            crate::plan::current(&bridge, "ipv6.addr-gen-mode"),
            "stable-privacy"
        );
        let side42 = conn(include_str!("../tests/data/nm-1.42.side.props"));
        assert_eq!(
            source(&side42).settings(),
            vec![
                ("ipv4.method", "auto".to_string()),
                ("ipv6.method", "auto".to_string()),
            ]
        );
    }
}
