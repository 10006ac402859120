//! Which changes can cut the host off, and what must hold after them (pure: plan.rs asks,
//! checkpoint.rs and reach.rs act on the answer).
//!
//! A change runs inside a NetworkManager checkpoint when a device it touches carries a
//! global address (and so, possibly, the host's connection; a device with the default
//! route carries one too):
//! - a port that carries one joins the bridge (the uplink takeover), or a port leaves a
//!   bridge that carries one;
//! - the addresses, routes or MAC address of a bridge that carries one change;
//! - `state: absent` removes a bridge that carries one and gives a port back its profile
//!   (a switched-off one, or a plain one carrying what the bridge inherited). Removing a
//!   bridge that gives nothing back stays a plain deletion, as asked.
//!
//! After such a change, verify must see, before it commits: the expected addresses on the
//! device that now holds the host's identity (static ones, and the DHCP lease the port
//! had), a default route of each family there was one of, and the IPv4 gateway answering
//! (reach.rs). Anything else rolls back.

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
    /// The interface that holds the host's addresses after the change (empty: none).
    pub device: String,
    /// Addresses that must be on it (canonical CIDR).
    pub addresses: Vec<String>,
    /// Some global IPv4 address must be on it (a DHCP lease whose address is not known).
    pub any_v4: bool,
    /// The devices and global addresses before the change (what a rollback restores).
    pub before: Vec<(String, Vec<String>)>,
    /// The default routes before the change (read by apply just before the checkpoint).
    pub routes_before: Vec<DefaultRoute>,
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
    /// The bridge's addresses, routes or MAC change.
    pub bridge_ip: bool,
    /// The bridge's settings as they will be (the task's and the inherited ones).
    pub settings: &'a [(&'static str, String)],
    /// The bridge profile's IPv4 method now (an existing bridge).
    pub method_now: Option<&'a str>,
    pub source: Option<&'a Source<'a>>,
}

/// The guard of a `state: present` change, if it needs one.
pub fn present(p: &Params, cur: &Current, t: &Touched) -> Option<Guard> {
    let name = p.name.as_str();
    let bridge_in = !t.taken.is_empty() || !t.leaving.is_empty() || t.bridge_ip;
    let mut touched: Vec<String> = t.taken.to_vec();
    touched.extend(t.leaving.iter().cloned());
    if bridge_in && cur.link(name).is_some() {
        touched.insert(0, name.to_string());
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
            device: name.to_string(),
            addresses: dedup(addresses),
            any_v4: had_v4 && matches!(method, "auto" | "manual"),
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
/// port gets its profile back.
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
    let b = &back[0];
    let method = setting(&b.settings, "ipv4.method").unwrap_or("auto");
    let reach = Reach {
        device: b.port.clone(),
        addresses: static_addresses(&b.settings),
        any_v4: matches!(method, "auto" | "manual")
            && carrying.iter().any(|(_, a)| a.iter().any(|x| is_v4(x))),
        ..Reach::default()
    };
    Some(Guard {
        devices: dedup(devices),
        timeout: p.rollback_timeout as u32,
        why: why(&carrying),
        reach: Reach {
            before: carrying,
            ..reach
        },
        external_ports: Vec::new(),
        memory_before: None,
    })
}

/// Links in the bridge that no profile of the host makes a port (guests' taps).
fn external_ports(cur: &Current, name: &str) -> Vec<String> {
    cur.links
        .iter()
        .filter(|l| l.master.as_deref() == Some(name))
        .filter(|l| {
            cur.bound_to(&l.ifname)
                .iter()
                .all(|c| c.external || c.p.port_type().is_none())
        })
        .map(|l| l.ifname.clone())
        .collect()
}
