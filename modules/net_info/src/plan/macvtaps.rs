//! Macvtap links: every macvtap the kernel has (the tutorial's `macvtap0`, the ones
//! libvirt makes for guests), and every NetworkManager macvlan profile with `tap` whose
//! link is not there now (`present: false`).

use super::{Host, Origin};
use kvmnet_iproute::{normalize_mac, Link, MacvlanMode};
use kvmnet_nmcli::Conn;
use kvmnet_virtxml::network;
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Serialize)]
pub struct Macvtap {
    pub name: String,
    pub origin: Option<Origin>,
    pub conn_name: Option<String>,
    pub conn_uuid: Option<String>,
    pub autoconnect: Option<bool>,
    /// A stored NetworkManager profile brings the link back after a reboot (None:
    /// NetworkManager was not read).
    pub persistent: Option<bool>,
    pub present: bool,
    pub up: bool,
    /// The kernel's LOWER_UP: the link has carrier.
    pub carrier: bool,
    pub parent: Option<String>,
    pub mode: Option<String>,
    pub mac: Option<String>,
    pub guest: Option<String>,
    /// libvirt networks whose device pool holds this link (None: libvirt was not read).
    pub networks: Option<Vec<String>>,
}

fn is_tap_profile(c: &Conn) -> bool {
    c.kind() == "macvlan" && !c.external && c.p.get("macvlan.tap") == Some("yes")
}

pub fn macvtaps(host: &Host) -> Vec<Macvtap> {
    let mut names: BTreeSet<String> = host
        .links
        .iter()
        .filter(|l| l.kind() == Some("macvtap"))
        .map(|l| l.ifname.clone())
        .collect();
    for c in host.nm.iter().flat_map(|nm| &nm.conns) {
        if is_tap_profile(c) {
            names.extend(c.ifname().map(str::to_string));
        }
    }
    names.iter().map(|n| macvtap(host, n)).collect()
}

/// The stored macvlan profile for `name`: the one active on it, else the first.
fn profile<'a>(host: &Host<'a>, name: &str) -> Option<&'a Conn> {
    let all: Vec<&Conn> = host
        .nm?
        .conns
        .iter()
        .filter(|c| is_tap_profile(c) && c.ifname() == Some(name))
        .collect();
    all.iter()
        .find(|c| c.active_on(name))
        .or(all.first())
        .copied()
}

fn macvtap(host: &Host, name: &str) -> Macvtap {
    let link = host.link(name).filter(|l| l.kind() == Some("macvtap"));
    let conn = profile(host, name);
    let prop = |k: &str| conn.and_then(|c| c.p.get(k));
    let (parent, mode, mac) = match link {
        Some(l) => (
            // `ip` names the lower device only when it is in the same namespace.
            l.link.clone(),
            l.macvlan_mode().map(|m| m.name().to_string()),
            l.mac(),
        ),
        None => (
            prop("macvlan.parent").map(str::to_string),
            prop("macvlan.mode")
                .and_then(MacvlanMode::from_nm)
                .map(|m| m.name().to_string()),
            prop("802-3-ethernet.cloned-mac-address").and_then(normalize_mac),
        ),
    };
    Macvtap {
        name: name.to_string(),
        origin: match link {
            Some(_) => host.origin_of_device(name),
            None => Some(Origin::NetworkManager),
        },
        conn_name: conn.map(|c| c.id().to_string()),
        conn_uuid: conn.map(|c| c.uuid.clone()),
        autoconnect: conn.map(Conn::autoconnect),
        persistent: host.nm.map(|_| conn.is_some()),
        present: link.is_some(),
        up: link.is_some_and(Link::is_up),
        carrier: link.is_some_and(|l| l.flags.iter().any(|f| f == "LOWER_UP")),
        parent,
        mode,
        mac,
        guest: host.guest_of(name),
        networks: host.libvirt.map(|i| {
            i.networks
                .iter()
                .filter(|n| {
                    n.state
                        .live
                        .as_ref()
                        .is_some_and(|d| network::forward_interfaces(d).iter().any(|x| x == name))
                })
                .map(|n| n.name.clone())
                .collect()
        }),
    }
}
