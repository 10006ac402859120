//! The task's options: their spec (the one declaration of every option), the typed
//! params, the checks that need no host, and the `<network>` definition they describe
//! (built from the structured options or parsed from `xml`).

use kvmnet_iproute::check_ifname;
use kvmnet_protocol::{Error, Opt, Result, Spec};
use kvmnet_virtxml::network::{self, FORWARD_MODES, OWN_BRIDGE_MODES};
use kvmnet_virtxml::Element;
use serde::Deserialize;
use std::net::IpAddr;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dhcp {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ip {
    pub address: String,
    pub prefix: Option<i64>,
    pub dhcp: Option<Dhcp>,
}

/// `state`: what should exist and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Defined; running or not as it is.
    Present,
    /// Defined and running.
    Active,
    /// Defined and stopped.
    Inactive,
    /// Stopped and undefined.
    Absent,
}

impl State {
    /// Whether the network should run: `None` leaves it as it is.
    pub fn running(self) -> Option<bool> {
        match self {
            State::Active => Some(true),
            State::Inactive | State::Absent => Some(false),
            State::Present => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub name: String,
    /// The forward mode, as the option spells it (`isolated`: no `<forward>`).
    pub forward: Option<String>,
    pub bridge: Option<String>,
    pub interfaces: Option<Vec<String>>,
    pub pf: Option<String>,
    pub ip: Option<Ip>,
    pub xml: Option<String>,
    pub state: State,
    pub autostart: Option<bool>,
    pub restart: bool,
    pub uri: String,
}

const STRUCTURED: &[&str] = &["forward", "bridge", "interfaces", "pf", "ip"];

pub fn spec() -> Spec {
    let mut s = Spec::new()
        .opt(Opt::str("name").required())
        .opt(
            Opt::str("forward")
                .choices(FORWARD_MODES)
                .choice_alias("passthru", "passthrough"),
        )
        .opt(Opt::str("bridge"))
        .opt(Opt::list("interfaces"))
        .opt(Opt::str("pf"))
        .opt(Opt::dict(
            "ip",
            Spec::new()
                .opt(Opt::str("address").required())
                .opt(Opt::int("prefix"))
                .opt(Opt::dict(
                    "dhcp",
                    Spec::new()
                        .opt(Opt::str("start").required())
                        .opt(Opt::str("end").required()),
                )),
        ))
        .opt(Opt::str("xml").text())
        .opt(
            Opt::str("state")
                .choices(&["present", "active", "inactive", "absent"])
                .default("active"),
        )
        .opt(Opt::bool("autostart"))
        .opt(Opt::bool("restart").default(false))
        .opt(Opt::str("uri").default("qemu:///system"));
    for o in STRUCTURED {
        s = s.mutually_exclusive(&["xml", o]);
    }
    for o in &STRUCTURED[1..] {
        s = s.required_by(o, &["forward"]);
    }
    s
}

fn misfit(option: &str, mode: &str, why: &str) -> Error {
    Error::invalid(format!(
        "option '{option}' does not fit forward {mode}: {why}"
    ))
}

/// Checks of the options alone (run before anything on the host is read).
pub fn validate(p: &Params) -> Result<()> {
    if p.name.trim().is_empty() || p.name.contains('/') || p.name.trim() != p.name {
        return Err(Error::invalid(format!(
            "option 'name': '{}' is not a valid libvirt network name (it must be non-empty, without '/' and surrounding spaces)",
            p.name
        )));
    }
    if p.uri.trim().is_empty() {
        return Err(Error::invalid("option 'uri' must not be empty"));
    }
    if p.state == State::Absent && p.autostart == Some(true) {
        return Err(Error::invalid(
            "option 'autostart': true does not fit state absent (an undefined network cannot start at boot)",
        ));
    }
    definition(p).map(|_| ())
}

/// The whole desired definition, or None when the task leaves the definition alone
/// (neither `forward` nor `xml` given).
pub fn definition(p: &Params) -> Result<Option<Element>> {
    if let Some(xml) = &p.xml {
        return from_xml(&p.name, xml).map(Some);
    }
    match &p.forward {
        None => Ok(None),
        Some(mode) => from_options(p, mode).map(Some),
    }
}

fn from_xml(name: &str, xml: &str) -> Result<Element> {
    let mut net = Element::parse(xml).map_err(|e| e.context("option 'xml'"))?;
    if net.name != "network" {
        return Err(Error::invalid(format!(
            "option 'xml': the root element is <{}>, a libvirt network definition is <network>",
            net.name
        )));
    }
    match network::name(&net) {
        Some(n) if n != name => {
            return Err(Error::invalid(format!(
                "option 'xml': its <name> is '{n}' but option 'name' is '{name}'"
            )))
        }
        Some(_) => {}
        None => network::insert_ordered(&mut net, Element::new("name").with_text(name)),
    }
    if let Some(f) = net.child("forward") {
        let mode = f.attr("mode").unwrap_or("nat");
        if !FORWARD_MODES.contains(&mode) || mode == "isolated" {
            return Err(Error::invalid(format!(
                "option 'xml': <forward mode='{mode}'> is not a libvirt forward mode (one of nat, route, open, bridge, private, vepa, passthrough, hostdev; no <forward> for an isolated network)"
            )));
        }
    }
    Ok(net)
}

fn check_devices(option: &str, names: &[String]) -> Result<()> {
    for (i, n) in names.iter().enumerate() {
        check_ifname(option, n)?;
        if names[..i].contains(n) {
            return Err(Error::invalid(format!(
                "option '{option}' lists '{n}' twice"
            )));
        }
    }
    Ok(())
}

fn from_options(p: &Params, mode: &str) -> Result<Element> {
    check_names(p)?;
    check_fit(p, mode)?;
    check_needed(p, mode)?;
    build(p, mode)
}

fn check_names(p: &Params) -> Result<()> {
    if let Some(b) = &p.bridge {
        check_ifname("bridge", b)?;
    }
    if let Some(list) = &p.interfaces {
        check_devices("interfaces", list)?;
    }
    if let Some(pf) = &p.pf {
        check_ifname("pf", pf)?;
    }
    Ok(())
}

/// Options that do not fit the forward mode.
fn check_fit(p: &Params, mode: &str) -> Result<()> {
    let own = OWN_BRIDGE_MODES.contains(&mode);
    let pool: Option<&Vec<String>> = p.interfaces.as_ref();
    if own {
        if pool.is_some() {
            return Err(misfit(
                "interfaces",
                mode,
                "a device pool is for forward bridge (over macvtap), private, vepa and passthrough",
            ));
        }
        if p.pf.is_some() {
            return Err(misfit(
                "pf",
                mode,
                "an SR-IOV physical function is for forward hostdev and passthrough",
            ));
        }
    } else {
        if p.ip.is_some() {
            return Err(misfit(
                "ip",
                mode,
                "libvirt manages addresses and DHCP only for nat, route, open and isolated networks",
            ));
        }
        if p.bridge.is_some() && mode != "bridge" {
            return Err(misfit(
                "bridge",
                mode,
                "a bridge is for forward bridge (the host bridge) or nat, route, open and isolated (libvirt's own bridge)",
            ));
        }
        if p.pf.is_some() && mode != "hostdev" && mode != "passthrough" {
            return Err(misfit(
                "pf",
                mode,
                "an SR-IOV physical function is for forward hostdev and passthrough",
            ));
        }
    }
    Ok(())
}

/// Options the forward mode needs.
fn check_needed(p: &Params, mode: &str) -> Result<()> {
    let pool: Option<&Vec<String>> = p.interfaces.as_ref();
    let empty_pool = pool.is_some_and(|l| l.is_empty());
    match mode {
        "bridge" => match (&p.bridge, pool) {
            (None, None) => {
                return Err(Error::missing_option(
                    "bridge",
                    "forward bridge needs the host bridge (bridge) or a macvtap device pool (interfaces)",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "options 'bridge' and 'interfaces' are mutually exclusive for forward bridge: a network uses either a host bridge or a macvtap device pool",
                ))
            }
            _ => {}
        },
        "private" | "vepa" if pool.is_none() => {
            return Err(Error::missing_option(
                "interfaces",
                &format!("forward {mode} needs the pool of host devices its macvtaps sit on"),
            ));
        }
        "passthrough" => match (pool, &p.pf) {
            (None, None) => {
                return Err(Error::missing_option(
                    "interfaces",
                    "forward passthrough needs a device pool (interfaces) or an SR-IOV physical function (pf)",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "options 'interfaces' and 'pf' are mutually exclusive: a pool is either listed or the virtual functions of one pf",
                ))
            }
            _ => {}
        },
        "hostdev" => {
            if pool.is_some() {
                return Err(misfit(
                    "interfaces",
                    mode,
                    "a hostdev pool is an SR-IOV physical function (pf); PCI address pools need xml",
                ));
            }
            if p.pf.is_none() {
                return Err(Error::missing_option(
                    "pf",
                    "forward hostdev needs the SR-IOV physical function whose virtual functions it hands out",
                ));
            }
        }
        _ => {}
    }
    if matches!(mode, "nat" | "route" | "open") && p.ip.is_none() {
        return Err(Error::missing_option(
            "ip",
            &format!("libvirt refuses forward {mode} without the network's address"),
        ));
    }
    if empty_pool {
        return Err(Error::invalid(format!(
            "option 'interfaces' is empty: forward {mode} needs at least one device"
        )));
    }
    Ok(())
}

/// The `<network>` the structured options describe (checked already).
fn build(p: &Params, mode: &str) -> Result<Element> {
    let mut net = Element::new("network").with_child(Element::new("name").with_text(&p.name));
    if mode != "isolated" {
        let mut f = Element::new("forward").with_attr("mode", mode);
        if mode == "hostdev" {
            f.set_attr("managed", "yes");
        }
        if let Some(pf) = &p.pf {
            f.children.push(Element::new("pf").with_attr("dev", pf));
        }
        for dev in p.interfaces.iter().flatten() {
            f.children
                .push(Element::new("interface").with_attr("dev", dev));
        }
        net.children.push(f);
    }
    if let Some(b) = &p.bridge {
        net.children
            .push(Element::new("bridge").with_attr("name", b));
    }
    if let Some(ip) = &p.ip {
        net.children.push(ip_element(ip)?);
    }
    Ok(net)
}

fn parse_ip(option: &str, s: &str) -> Result<IpAddr> {
    s.trim()
        .parse()
        .map_err(|_| Error::invalid(format!("option '{option}': '{s}' is not an IP address")))
}

fn bits(a: IpAddr) -> (u128, u32) {
    match a {
        IpAddr::V4(v) => (u32::from(v) as u128, 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

fn in_subnet(net: IpAddr, prefix: u32, a: IpAddr) -> bool {
    let (n, width) = bits(net);
    let (x, w2) = bits(a);
    if width != w2 {
        return false;
    }
    let host = width - prefix;
    let mask = if host >= 128 { 0 } else { !0u128 << host };
    (n & mask) == (x & mask)
}

fn ip_element(ip: &Ip) -> Result<Element> {
    let (addr_s, cidr) = match ip.address.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (ip.address.as_str(), None),
    };
    let addr = parse_ip("ip.address", addr_s)?;
    let width = bits(addr).1 as i64;
    let cidr_prefix = match cidr {
        None => None,
        Some(p) => Some(p.trim().parse::<i64>().map_err(|_| {
            Error::invalid(format!(
                "option 'ip.address': '{}' has no valid prefix length after '/'",
                ip.address
            ))
        })?),
    };
    let prefix = match (ip.prefix, cidr_prefix) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::invalid(format!(
                "option 'ip.prefix' is {a} but 'ip.address' says /{b}"
            )))
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => {
            return Err(Error::missing_option(
                "ip.prefix",
                "the network's prefix length (e.g. 24), or give ip.address as 192.168.150.1/24",
            ))
        }
    };
    if !(1..=width).contains(&prefix) {
        return Err(Error::invalid(format!(
            "option 'ip.prefix': {prefix} is not a prefix length for {} (1-{width})",
            if width == 32 { "IPv4" } else { "IPv6" }
        )));
    }
    let mut el = Element::new("ip");
    if addr.is_ipv6() {
        el.set_attr("family", "ipv6");
    }
    el.set_attr("address", &addr.to_string());
    el.set_attr("prefix", &prefix.to_string());
    if let Some(d) = &ip.dhcp {
        let start = parse_ip("ip.dhcp.start", &d.start)?;
        let end = parse_ip("ip.dhcp.end", &d.end)?;
        for (opt, a) in [("ip.dhcp.start", start), ("ip.dhcp.end", end)] {
            if !in_subnet(addr, prefix as u32, a) {
                return Err(Error::invalid(format!(
                    "option '{opt}': {a} is outside the network {addr}/{prefix}"
                )));
            }
        }
        if bits(start).0 > bits(end).0 {
            return Err(Error::invalid(format!(
                "option 'ip.dhcp': the range starts at {start}, after its end {end}"
            )));
        }
        el.children.push(
            Element::new("dhcp").with_child(
                Element::new("range")
                    .with_attr("start", &start.to_string())
                    .with_attr("end", &end.to_string()),
            ),
        );
    }
    Ok(el)
}
