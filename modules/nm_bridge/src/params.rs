//! The task's options: spec, typed params, option-only checks, and the one normalisation
//! layer that turns both the options and NetworkManager's printed values into comparable
//! strings (`yes`/`no`, lower-case MACs, canonical CIDRs, `auto` MTU).

use kvmnet_iproute::{check_ifname, normalize_mac};
use kvmnet_protocol::{Error, Opt, Result, Spec};
use serde::Deserialize;
use std::net::IpAddr;

pub const PORT_PROFILES: &[&str] = &["disable", "delete", "keep"];

/// `port_profiles`: what becomes of other profiles bound to a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProfiles {
    /// Switched off (autoconnect off, deactivated) and remembered, to give back later.
    Disable,
    /// Deleted.
    Delete,
    /// Left as they are (a port they hold stays out of the bridge, with a warning).
    Keep,
}

/// `state`: whether the bridge should exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpParams {
    pub method: Option<String>,
    pub addresses: Option<Vec<String>>,
    pub gateway: Option<String>,
    pub dns: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Bridge interface name (`connection.interface-name`).
    pub name: String,
    /// Bridge profile name (`connection.id`); default `bridge-<name>` when creating.
    pub conn_name: Option<String>,
    /// The full set of ports; omitted: leave the ports as they are.
    pub ports: Option<Vec<String>>,
    /// What to do with other profiles bound to a port.
    pub port_profiles: PortProfiles,
    pub stp: Option<bool>,
    /// Seconds (`bridge.forward-delay`).
    pub forward_delay: Option<i64>,
    pub priority: Option<i64>,
    pub mtu: Option<i64>,
    pub mac: Option<String>,
    pub autoconnect: Option<bool>,
    pub ipv4: Option<IpParams>,
    pub ipv6: Option<IpParams>,
    /// The bridge takes over the IP configuration and MAC address of the port it takes
    /// over (inherit.rs); explicit `ipv4`/`ipv6`/`mac` sub-options win.
    pub inherit: bool,
    /// Seconds after which NetworkManager rolls back a change that can cut the host off
    /// unless this run has verified and committed it (guard.rs).
    pub rollback_timeout: i64,
    pub state: State,
}

impl Params {
    pub fn present(&self) -> bool {
        self.state == State::Present
    }
    pub fn default_conn_name(&self) -> String {
        self.conn_name
            .clone()
            .unwrap_or_else(|| format!("bridge-{}", self.name))
    }
    /// The listed ports, in order, without repeats.
    pub fn port_list(&self) -> Option<Vec<String>> {
        self.ports.as_ref().map(|ps| {
            let mut out: Vec<String> = Vec::new();
            for p in ps {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
            out
        })
    }
}

fn ip_spec(methods: &[&'static str]) -> Spec {
    Spec::new()
        .opt(Opt::str("method").choices(methods))
        .opt(Opt::list("addresses"))
        .opt(Opt::str("gateway"))
        .opt(Opt::list("dns"))
        .required_by("gateway", &["addresses"])
}

pub fn spec() -> Spec {
    Spec::new()
        .opt(Opt::str("name").required())
        .opt(Opt::str("conn_name"))
        .opt(Opt::list("ports"))
        .opt(
            Opt::str("port_profiles")
                .choices(PORT_PROFILES)
                .default("disable"),
        )
        .opt(Opt::bool("stp"))
        .opt(Opt::int("forward_delay"))
        .opt(Opt::int("priority"))
        .opt(Opt::int("mtu"))
        .opt(Opt::str("mac").alias("mac_address"))
        .opt(Opt::bool("autoconnect"))
        .opt(Opt::dict(
            "ipv4",
            ip_spec(&["auto", "manual", "disabled", "link-local", "shared"]),
        ))
        .opt(Opt::dict(
            "ipv6",
            ip_spec(&[
                "auto",
                "dhcp",
                "manual",
                "disabled",
                "ignore",
                "link-local",
                "shared",
            ]),
        ))
        .opt(Opt::bool("inherit").default(false))
        .opt(
            Opt::int("rollback_timeout")
                .range(ROLLBACK_MIN, ROLLBACK_MAX)
                .default(60),
        )
        .opt(
            Opt::str("state")
                .choices(&["present", "absent"])
                .default("present"),
        )
}

/// Bounds of `rollback_timeout` (seconds): long enough to verify a change, short enough
/// that a host cut off comes back soon.
pub const ROLLBACK_MIN: i64 = 10;
pub const ROLLBACK_MAX: i64 = 3600;

fn bad(option: &str, what: impl std::fmt::Display) -> Error {
    Error::invalid(format!("option '{option}': {what}"))
}

/// `a.b.c.d/n` or `x::y/n` of the family → canonical text.
pub fn norm_cidr(text: &str, v6: bool) -> Option<String> {
    let (a, p) = text.trim().split_once('/')?;
    let addr: IpAddr = a.parse().ok()?;
    let prefix: u8 = p.parse().ok()?;
    let max = if addr.is_ipv6() { 128 } else { 32 };
    if addr.is_ipv6() != v6 || prefix > max || p.starts_with('+') {
        return None;
    }
    Some(format!("{addr}/{prefix}"))
}

pub fn norm_ip(text: &str, v6: bool) -> Option<String> {
    let addr: IpAddr = text.trim().parse().ok()?;
    (addr.is_ipv6() == v6).then(|| addr.to_string())
}

fn check_ip(opt: &str, ip: &IpParams, v6: bool) -> Result<()> {
    let fam = if v6 { "IPv6" } else { "IPv4" };
    if let Some(addrs) = &ip.addresses {
        for (i, a) in addrs.iter().enumerate() {
            if norm_cidr(a, v6).is_none() {
                return Err(bad(
                    &format!("{opt}.addresses[{i}]"),
                    format!(
                        "'{a}' is not an {fam} address with a prefix length (like {})",
                        if v6 {
                            "2001:db8::10/64"
                        } else {
                            "192.0.2.10/24"
                        }
                    ),
                ));
            }
        }
    }
    if let Some(g) = &ip.gateway {
        if norm_ip(g, v6).is_none() {
            return Err(bad(
                &format!("{opt}.gateway"),
                format!("'{g}' is not an {fam} address"),
            ));
        }
        if ip.addresses.as_ref().is_none_or(|a| a.is_empty()) {
            return Err(bad(
                &format!("{opt}.gateway"),
                format!(
                    "a gateway needs {opt}.addresses (static addresses in the gateway's subnet)"
                ),
            ));
        }
    }
    if let Some(dns) = &ip.dns {
        for (i, d) in dns.iter().enumerate() {
            if norm_ip(d, false).is_none() && norm_ip(d, true).is_none() {
                return Err(bad(
                    &format!("{opt}.dns[{i}]"),
                    format!("'{d}' is not an IP address"),
                ));
            }
        }
    }
    match ip.method.as_deref() {
        Some("manual") if ip.addresses.as_ref().is_none_or(|a| a.is_empty()) => Err(bad(
            &format!("{opt}.method"),
            format!("method manual needs at least one address in {opt}.addresses"),
        )),
        Some(m @ ("disabled" | "ignore" | "link-local"))
            if ip.addresses.as_ref().is_some_and(|a| !a.is_empty())
                || ip.gateway.is_some()
                || ip.dns.as_ref().is_some_and(|d| !d.is_empty()) =>
        {
            Err(bad(
                &format!("{opt}.method"),
                format!("method {m} takes no addresses, gateway or dns"),
            ))
        }
        _ => Ok(()),
    }
}

/// Checks of the options alone, before the host is read.
pub fn validate(p: &Params) -> Result<()> {
    check_ifname("name", &p.name)?;
    if let Some(c) = &p.conn_name {
        if c.trim().is_empty() {
            return Err(bad("conn_name", "must not be empty"));
        }
    }
    if !p.present() {
        // Only the identity matters for absent: the other options may stay in the task, so
        // that one set of variables serves both states (as in the other kvmnet modules).
        return Ok(());
    }
    if let Some(ports) = &p.ports {
        for port in ports {
            check_ifname("ports", port)?;
            if *port == p.name {
                return Err(bad(
                    "ports",
                    format!("'{port}' is the bridge itself; a bridge cannot be its own port"),
                ));
            }
        }
    }
    if let Some(fd) = p.forward_delay {
        if !(2..=30).contains(&fd) {
            return Err(bad(
                "forward_delay",
                format!("{fd} is out of range; NetworkManager accepts 2 to 30 seconds"),
            ));
        }
    }
    if let Some(pr) = p.priority {
        if !(0..=65535).contains(&pr) {
            return Err(bad(
                "priority",
                format!("{pr} is out of range (0 to 65535)"),
            ));
        }
    }
    if let Some(m) = p.mtu {
        if !(68..=65535).contains(&m) {
            return Err(bad("mtu", format!("{m} is out of range (68 to 65535)")));
        }
    }
    if let Some(mac) = &p.mac {
        if normalize_mac(mac).is_none() {
            return Err(bad("mac", format!("'{mac}' is not a MAC address")));
        }
    }
    if let Some(ip) = &p.ipv4 {
        check_ip("ipv4", ip, false)?;
    }
    if let Some(ip) = &p.ipv6 {
        check_ip("ipv6", ip, true)?;
    }
    Ok(())
}

pub const MAC_PROP: &str = "802-3-ethernet.cloned-mac-address";
pub const MTU_PROP: &str = "802-3-ethernet.mtu";

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// The bridge profile's properties the task asks for: (NM property, normalised value), in
/// the order nmcli is given them.
pub fn desired_bridge(p: &Params) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = Vec::new();
    if let Some(b) = p.autoconnect {
        v.push(("connection.autoconnect", yes_no(b)));
    }
    if let Some(b) = p.stp {
        v.push(("bridge.stp", yes_no(b)));
    }
    if let Some(n) = p.forward_delay {
        v.push(("bridge.forward-delay", n.to_string()));
    }
    if let Some(n) = p.priority {
        v.push(("bridge.priority", n.to_string()));
    }
    if let Some(n) = p.mtu {
        v.push((MTU_PROP, n.to_string()));
    }
    if let Some(m) = &p.mac {
        v.push((MAC_PROP, normalize_mac(m).unwrap_or_else(|| m.clone())));
    }
    for (fam, ip, v6) in [("ipv4", &p.ipv4, false), ("ipv6", &p.ipv6, true)] {
        let Some(ip) = ip else { continue };
        let key = |k: &str| -> &'static str {
            match (fam, k) {
                ("ipv4", "method") => "ipv4.method",
                ("ipv4", "addresses") => "ipv4.addresses",
                ("ipv4", "gateway") => "ipv4.gateway",
                ("ipv4", "dns") => "ipv4.dns",
                ("ipv6", "method") => "ipv6.method",
                ("ipv6", "addresses") => "ipv6.addresses",
                ("ipv6", "gateway") => "ipv6.gateway",
                _ => "ipv6.dns",
            }
        };
        if let Some(m) = &ip.method {
            v.push((key("method"), m.clone()));
        }
        if let Some(a) = &ip.addresses {
            v.push((key("addresses"), norm_value(key("addresses"), &a.join(","))));
        }
        if let Some(g) = &ip.gateway {
            v.push((key("gateway"), norm_ip(g, v6).unwrap_or_else(|| g.clone())));
        }
        if let Some(d) = &ip.dns {
            v.push((key("dns"), norm_value(key("dns"), &d.join(","))));
        }
    }
    v
}

/// NetworkManager's printed value of `prop` → the comparable form. Used for the options
/// too, so both sides go through one function.
pub fn norm_value(prop: &str, raw: &str) -> String {
    let t = raw.trim();
    if t == "--" || t.is_empty() {
        return if prop == MTU_PROP {
            "auto".into()
        } else {
            String::new()
        };
    }
    let list = |f: &dyn Fn(&str) -> Option<String>| -> String {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| f(s).unwrap_or_else(|| s.to_string()))
            .collect::<Vec<_>>()
            .join(",")
    };
    match prop {
        "ipv4.addresses" => list(&|s| norm_cidr(s, false)),
        "ipv6.addresses" => list(&|s| norm_cidr(s, true)),
        "ipv4.dns" | "ipv6.dns" => list(&|s| norm_ip(s, false).or_else(|| norm_ip(s, true))),
        "ipv4.gateway" => norm_ip(t, false).unwrap_or_else(|| t.to_string()),
        "ipv6.gateway" => norm_ip(t, true).unwrap_or_else(|| t.to_string()),
        MTU_PROP if t == "0" => "auto".into(),
        p if p.ends_with("mac-address") => {
            normalize_mac(t).unwrap_or_else(|| t.to_ascii_lowercase())
        }
        _ => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_both_sides_alike() {
        assert_eq!(
            norm_value("ipv4.addresses", "192.0.2.10/24, 192.0.2.11/24"),
            "192.0.2.10/24,192.0.2.11/24"
        );
        assert_eq!(
            norm_value("ipv6.addresses", "2001:DB8:0::10/64"),
            "2001:db8::10/64"
        );
        assert_eq!(
            norm_value("ipv4.dns", "192.0.2.53,192.0.2.54"),
            "192.0.2.53,192.0.2.54"
        );
        assert_eq!(norm_value(MTU_PROP, "auto"), "auto");
        assert_eq!(norm_value(MTU_PROP, "0"), "auto");
        assert_eq!(norm_value(MTU_PROP, ""), "auto");
        assert_eq!(
            norm_value(MAC_PROP, "52:54:00:AA:BB:02"),
            "52:54:00:aa:bb:02"
        );
        assert_eq!(norm_value("ipv4.gateway", "--"), "");
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            norm_cidr("192.0.2.10/24", false).as_deref(),
            Some("192.0.2.10/24")
        );
        assert!(norm_cidr("192.0.2.10", false).is_none());
        assert!(norm_cidr("192.0.2.10/33", false).is_none());
        assert!(norm_cidr("192.0.2.300/24", false).is_none());
        assert!(norm_cidr("2001:db8::1/64", false).is_none());
        assert!(norm_cidr("2001:db8::1/129", true).is_none());
    }
}
