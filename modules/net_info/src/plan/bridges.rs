//! Bridges: every bridge the kernel has, and every NetworkManager bridge profile whose
//! bridge is not there now (`present: false`: it comes with the profile's next
//! activation), each with its ports: the kernel's, and the port profiles NetworkManager
//! holds for it that are not attached now.

use super::{stored, Host, Origin};
use kvmnet_iproute::Link;
use kvmnet_nmcli::{is_port_of, Conn};
use kvmnet_virtxml::network;
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Serialize)]
pub struct Bridge {
    pub name: String,
    pub origin: Option<Origin>,
    pub conn_name: Option<String>,
    pub conn_uuid: Option<String>,
    pub autoconnect: Option<bool>,
    pub present: bool,
    pub up: bool,
    /// The kernel's LOWER_UP: the link has carrier.
    pub carrier: bool,
    pub mac: Option<String>,
    pub stp: Option<bool>,
    pub addresses: Vec<String>,
    pub ports: Vec<Port>,
    /// libvirt networks on this bridge (None: libvirt was not read).
    pub networks: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct Port {
    pub name: String,
    pub kind: Option<String>,
    pub attached: bool,
    pub origin: Option<Origin>,
    pub conn_name: Option<String>,
    pub conn_uuid: Option<String>,
    pub guest: Option<String>,
}

pub fn bridges(host: &Host) -> Vec<Bridge> {
    let mut names: BTreeSet<String> = host
        .links
        .iter()
        .filter(|l| l.kind() == Some("bridge"))
        .map(|l| l.ifname.clone())
        .collect();
    for c in host.nm.iter().flat_map(|nm| &nm.conns) {
        if c.kind() == "bridge" && !c.external {
            names.extend(c.ifname().map(str::to_string));
        }
    }
    names.iter().map(|n| bridge(host, n)).collect()
}

/// The stored profile for bridge `name`: the one active on it, else the first.
fn profile<'a>(host: &Host<'a>, name: &str) -> Option<&'a Conn> {
    let nm = host.nm?;
    let all: Vec<&Conn> = nm
        .bridges_for(name)
        .into_iter()
        .filter(|c| !c.external)
        .collect();
    all.iter()
        .find(|c| c.active_on(name))
        .or(all.first())
        .copied()
}

/// A network with its own bridge (nat, route, open, isolated) that runs `name`.
fn libvirt_made(host: &Host, name: &str) -> bool {
    host.libvirt.iter().flat_map(|i| &i.networks).any(|n| {
        [&n.state.live, &n.state.inactive]
            .into_iter()
            .flatten()
            .any(|d| {
                network::OWN_BRIDGE_MODES.contains(&network::forward_mode(d).as_str())
                    && network::bridge_name(d).as_deref() == Some(name)
            })
    })
}

fn bridge(host: &Host, name: &str) -> Bridge {
    let link = host.link(name).filter(|l| l.kind() == Some("bridge"));
    let conn = profile(host, name);
    let origin = match link {
        _ if libvirt_made(host, name) => Some(Origin::Libvirt),
        Some(_) => host.origin_of_device(name),
        None => Some(Origin::NetworkManager),
    };
    let stp = match link {
        Some(l) => l
            .info_data("stp_state")
            .and_then(|v| v.as_u64())
            .map(|s| s != 0),
        // NetworkManager's default is STP on.
        None => conn.map(|c| c.p.get("bridge.stp") != Some("no")),
    };
    Bridge {
        name: name.to_string(),
        origin,
        conn_name: conn.map(|c| c.id().to_string()),
        conn_uuid: conn.map(|c| c.uuid.clone()),
        autoconnect: conn.map(Conn::autoconnect),
        present: link.is_some(),
        up: link.is_some_and(Link::is_up),
        carrier: link.is_some_and(|l| l.flags.iter().any(|f| f == "LOWER_UP")),
        mac: link.and_then(Link::mac),
        stp,
        addresses: link.map(Link::global_addresses).unwrap_or_default(),
        ports: ports(host, name, conn),
        networks: host.libvirt.map(|i| {
            i.networks
                .iter()
                .filter(|n| {
                    n.state
                        .live
                        .as_ref()
                        .and_then(network::bridge_name)
                        .as_deref()
                        == Some(name)
                })
                .map(|n| n.name.clone())
                .collect()
        }),
    }
}

/// `nic` for a device without a link kind, `tap` for a tap, else the kernel's kind.
pub fn device_kind(l: &Link) -> String {
    match l.kind() {
        None => "nic".into(),
        Some("tun") if l.info_data_str("type") == Some("tap") => "tap".into(),
        Some(k) => k.into(),
    }
}

fn ports(host: &Host, bridge: &str, conn: Option<&Conn>) -> Vec<Port> {
    let mut ports: Vec<Port> = host
        .links
        .iter()
        .filter(|l| l.master.as_deref() == Some(bridge))
        .map(|l| {
            let c = stored(host.active_conn(&l.ifname));
            Port {
                name: l.ifname.clone(),
                kind: Some(device_kind(l)),
                attached: true,
                origin: host.origin_of_device(&l.ifname),
                conn_name: c.map(|c| c.id().to_string()),
                conn_uuid: c.map(|c| c.uuid.clone()),
                guest: host.guest_of(&l.ifname),
            }
        })
        .collect();
    if let (Some(nm), Some(b)) = (host.nm, conn) {
        for c in nm
            .conns
            .iter()
            .filter(|c| !c.external && is_port_of(c, b, bridge))
        {
            let Some(dev) = nm.port_of(c, host.links) else {
                continue;
            };
            if ports.iter().any(|p| p.name == dev) {
                continue;
            }
            ports.push(Port {
                kind: host.link(&dev).map(device_kind),
                name: dev,
                attached: false,
                origin: Some(Origin::NetworkManager),
                conn_name: Some(c.id().to_string()),
                conn_uuid: Some(c.uuid.clone()),
                guest: None,
            });
        }
    }
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    ports
}
