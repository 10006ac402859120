//! Which changes can cut the host off, and what must hold after them (pure: plan.rs asks,
//! checkpoint.rs and reach.rs act on the answer).
//!
//! A change runs inside a NetworkManager checkpoint when a device it touches carries a
//! global address (and so, possibly, the host's connection: a device that holds the
//! default route carries one too, or its packets would leave without an address of its
//! own; a default route over a device without any is not looked for):
//! - a port that carries one joins the bridge (the uplink takeover), or a port leaves a
//!   bridge that carries one;
//! - a bridge that carries one takes any change while it runs: NetworkManager reapplies
//!   it (STP, forward delay, priority, MTU, addresses, routes) or re-activates the bridge
//!   and its ports (a new MAC address; NetworkManager 1.30, which refuses to reapply bridge
//!   settings): its ports are in the checkpoint too;
//! - `state: absent` removes a bridge that carries one and gives a port back its profile
//!   (a switched-off one, or a plain one carrying what the bridge inherited). Removing a
//!   bridge that gives nothing back stays a plain deletion, as asked.
//!
//! After such a change, verify must see, before it commits: the expected addresses on each
//! device that now holds the host's identity (static ones, and the DHCP lease the port
//! had; every port `state: absent` gives back), a default route of each family there was
//! one of, and the IPv4 gateway answering (reach.rs). Anything else rolls back.

use crate::current::Current;
use crate::inherit::Source;
use crate::params::{norm_cidr, Params};
use kvmnet_iproute::DefaultRoute;

/// A checkpointed change.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// The interfaces in the checkpoint (those NetworkManager has a device for when the
    /// run starts: a bridge still to be made is not one; its profile goes on rollback).
    pub devices: Vec<String>,
    /// `rollback_timeout`, seconds.
    pub timeout: u32,
    /// Why the change needs it: "ens32 carries 198.51.100.182/24".
    pub why: String,
    pub reach: Reach,
    /// Ports of the bridge NetworkManager did not make (guests' taps): NetworkManager
    /// before 1.38 detaches them from the bridge when it rolls back; they are put back.
    pub external_ports: Vec<String>,
    /// The memory file's text before the run (`None`: there was none), when the plan
    /// rewrites it: a rollback puts it back.
    pub memory_before: Option<Option<String>>,
}

/// What must hold after the change.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// The interfaces that hold the host's addresses after the change, each with the
    /// addresses it must hold.
    pub holders: Vec<Holder>,
    /// Some global IPv4 address must be on one of these (a DHCP lease whose address is not
    /// known); empty: none is needed.
    pub any_v4_on: Vec<String>,
    /// The devices and global addresses before the change (what a rollback restores).
    pub before: Vec<(String, Vec<String>)>,
    /// The default routes before the change (read by apply just before the checkpoint).
    pub routes_before: Vec<DefaultRoute>,
}

/// An interface that holds some of the host's addresses after the change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub device: String,
    /// Addresses that must be on it (canonical CIDR).
    pub addresses: Vec<String>,
}

impl Guard {
    /// How the message says the change runs inside the checkpoint (`done`: it was
    /// verified and committed).
    pub fn phrase(&self, done: bool) -> String {
        let how = match done {
            true => "committed once the host was verified reachable".to_string(),
            false => format!(
                "rolled back unless the host is verified reachable within {} s",
                crate::checkpoint::verify_window(self.timeout).as_secs()
            ),
        };
        format!(
            "inside a NetworkManager checkpoint on {} ({}), {how}",
            self.devices.join(", "),
            self.why
        )
    }
}

/// `(device, its global addresses)` for those of `devs` that carry any.
fn carriers(cur: &Current, devs: &[String]) -> Vec<(String, Vec<String>)> {
    devs.iter()
        .filter_map(|d| {
            let a = cur.link(d)?.global_addresses();
            (!a.is_empty()).then(|| (d.clone(), a))
        })
        .collect()
}

fn why(carrying: &[(String, Vec<String>)]) -> String {
    carrying
        .iter()
        .map(|(d, a)| format!("{d} carries {}", a.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in v {
        if !x.is_empty() && !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Static addresses in a setting value (`ipv4.addresses`), canonical.
fn static_addresses(settings: &[(&str, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v6) in [("ipv4.addresses", false), ("ipv6.addresses", true)] {
        if let Some((_, v)) = settings.iter().find(|(key, _)| *key == k) {
            out.extend(v.split(',').filter_map(|a| norm_cidr(a, v6)));
        }
    }
    out
}

fn setting<'a>(settings: &'a [(&str, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.as_str())
}

fn is_v4(cidr: &str) -> bool {
    !cidr.contains(':')
}

/// What `state: present` touches.
pub struct Touched<'a> {
    /// Ports joining the bridge this run.
    pub taken: &'a [String],
    /// Ports leaving it.
    pub leaving: Vec<String>,
    /// The running bridge takes a change: NetworkManager reapplies it, or the bridge (and
    /// its ports with it) is activated again.
    pub bridge_live: bool,
    /// The bridge's settings as they will be (the task's and the inherited ones).
    pub settings: &'a [(&'static str, String)],
    /// The bridge profile's IPv4 method now (an existing bridge).
    pub method_now: Option<&'a str>,
    pub source: Option<&'a Source<'a>>,
}

/// The guard of a `state: present` change, if it needs one.
pub fn present(p: &Params, cur: &Current, t: &Touched) -> Option<Guard> {
    let name = p.name.as_str();
    let bridge_in = !t.taken.is_empty() || !t.leaving.is_empty() || t.bridge_live;
    let mut touched: Vec<String> = t.taken.to_vec();
    touched.extend(t.leaving.iter().cloned());
    if bridge_in && cur.link(name).is_some() {
        touched.insert(0, name.to_string());
    }
    if t.bridge_live {
        // A re-activated bridge takes its ports down and up with it.
        touched.extend(own_ports(cur, name));
    }
    let devices = dedup(touched);
    let carrying = carriers(cur, &devices);
    if carrying.is_empty() {
        return None;
    }
    let mut addresses = static_addresses(t.settings);
    let method = setting(t.settings, "ipv4.method")
        .or(t.method_now)
        .unwrap_or("auto");
    if let Some(s) = t.source.filter(|_| method == "auto") {
        // The port's DHCP lease: the bridge, with the port's MAC address, gets it back.
        addresses.extend(s.addresses.iter().filter(|a| is_v4(a)).cloned());
    }
    let had_v4 = carrying.iter().any(|(_, a)| a.iter().any(|x| is_v4(x)));
    Some(Guard {
        devices: devices.clone(),
        timeout: p.rollback_timeout as u32,
        why: why(&carrying),
        reach: Reach {
            holders: vec![Holder {
                device: name.to_string(),
                addresses: dedup(addresses),
            }],
            any_v4_on: match had_v4 && matches!(method, "auto" | "manual") {
                true => vec![name.to_string()],
                false => Vec::new(),
            },
            before: carrying,
            routes_before: Vec::new(),
        },
        external_ports: external_ports(cur, name),
        memory_before: None,
    })
}

/// A port given back by `state: absent`, with the IP settings its profile will have.
pub struct GivenBack<'a> {
    pub port: String,
    pub settings: Vec<(&'a str, String)>,
}

/// The guard of a `state: absent` change, if the bridge carries a global address and a
/// port gets its profile back. Every port given back must hold its static addresses
/// afterwards, and, if the bridge had IPv4, one of those with an IPv4 method some IPv4
/// address (the lease the bridge had goes back to the port it took it from).
pub fn absent(p: &Params, cur: &Current, back: &[GivenBack]) -> Option<Guard> {
    let name = p.name.as_str();
    let carrying = carriers(cur, &[name.to_string()]);
    if carrying.is_empty() || back.is_empty() {
        return None;
    }
    let mut devices = vec![name.to_string()];
    devices.extend(
        cur.links
            .iter()
            .filter(|l| l.master.as_deref() == Some(name))
            .map(|l| l.ifname.clone()),
    );
    let had_v4 = carrying.iter().any(|(_, a)| a.iter().any(|x| is_v4(x)));
    let holders = back
        .iter()
        .map(|b| Holder {
            device: b.port.clone(),
            addresses: static_addresses(&b.settings),
        })
        .collect();
    let any_v4_on = back
        .iter()
        .filter(|_| had_v4)
        .filter(|b| {
            matches!(
                setting(&b.settings, "ipv4.method").unwrap_or("auto"),
                "auto" | "manual"
            )
        })
        .map(|b| b.port.clone())
        .collect();
    Some(Guard {
        devices: dedup(devices),
        timeout: p.rollback_timeout as u32,
        why: why(&carrying),
        reach: Reach {
            holders,
            any_v4_on: dedup(any_v4_on),
            before: carrying,
            routes_before: Vec::new(),
        },
        external_ports: external_ports(cur, name),
        memory_before: None,
    })
}

/// Whether no profile of the host makes `port` a port (a guest's tap).
fn is_external(cur: &Current, port: &str) -> bool {
    cur.bound_to(port)
        .iter()
        .all(|c| c.external || c.p.port_type().is_none())
}

/// Links in the bridge that no profile of the host makes a port (guests' taps).
fn external_ports(cur: &Current, name: &str) -> Vec<String> {
    cur.links
        .iter()
        .filter(|l| l.master.as_deref() == Some(name) && is_external(cur, &l.ifname))
        .map(|l| l.ifname.clone())
        .collect()
}

/// Links in the bridge that a profile makes its port.
fn own_ports(cur: &Current, name: &str) -> Vec<String> {
    cur.links
        .iter()
        .filter(|l| l.master.as_deref() == Some(name) && !is_external(cur, &l.ifname))
        .map(|l| l.ifname.clone())
        .collect()
}
