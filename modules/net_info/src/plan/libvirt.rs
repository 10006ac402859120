//! libvirt networks and guests. A network is described by the definition in effect (the
//! live one while it runs); every guest interface says which of the tutorial's three
//! methods its path to the LAN amounts to:
//!
//! - `bridge` (method 1): a tap on a host bridge: a network with `<forward
//!   mode='bridge'/>` on a bridge, or `type='bridge'` on a bridge that is not a libvirt
//!   network's own;
//! - `private` (method 2): a macvtap in private mode: a network with `<forward
//!   mode='private'>` over a device pool (the tutorial's `macvtap0`), or `type='direct'`
//!   in private mode;
//! - `direct_bridge` (method 3): a macvtap in bridge mode: `type='direct'` in bridge mode,
//!   or a network with `<forward mode='bridge'>` over a device pool;
//!
//! else what it is: the forward mode of its network (`nat`, `route`, `open`, `isolated`,
//! `vepa`, `passthrough`, `hostdev`), the macvtap mode of a direct interface (`vepa`,
//! `passthrough`), the interface type (`user`, `ethernet`, `hostdev`, ...), or `unknown`
//! for an interface on a network that does not exist.

use super::Host;
use kvmnet_iproute::Link;
use kvmnet_virtxml::interface::{self, Facets};
use kvmnet_virtxml::inventory::{Domain, Inventory, Network};
use kvmnet_virtxml::{network, Element};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct NetworkFacts {
    pub name: String,
    pub uuid: Option<String>,
    pub active: bool,
    pub autostart: bool,
    pub persistent: bool,
    pub forward: String,
    pub bridge: Option<String>,
    pub interfaces: Vec<String>,
    pub pf: Option<String>,
    pub addresses: Vec<String>,
    pub method: String,
    pub restart_required: bool,
}

#[derive(Debug, Serialize)]
pub struct Guest {
    pub name: String,
    pub uuid: Option<String>,
    pub state: String,
    pub persistent: bool,
    pub autostart: bool,
    pub interfaces: Vec<Iface>,
}

#[derive(Debug, Serialize)]
pub struct Iface {
    pub mac: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: Option<String>,
    pub mode: Option<String>,
    pub model: Option<String>,
    pub method: String,
    pub target: Option<String>,
    pub bridge: Option<String>,
    pub parent: Option<String>,
    pub restart_required: bool,
}

/// The definition in effect: the live one of a running network.
fn in_effect(n: &Network) -> Option<&Element> {
    n.state.live.as_ref().or(n.state.inactive.as_ref())
}

/// The method of guests on a network with this definition.
fn network_method(def: &Element) -> String {
    match network::forward_mode(def).as_str() {
        "bridge" if network::bridge_name(def).is_some() => "bridge".into(),
        "bridge" => "direct_bridge".into(),
        other => other.into(),
    }
}

/// `<ip address prefix|netmask>` of a network's own bridge, as address/prefix.
fn addresses(def: &Element) -> Vec<String> {
    def.children_named("ip")
        .filter_map(|ip| {
            let a = ip.attr("address")?;
            let p = ip
                .attr("prefix")
                .and_then(|p| p.parse::<u32>().ok())
                .or_else(|| ip.attr("netmask").and_then(network::netmask_prefix))?;
            Some(format!("{a}/{p}"))
        })
        .collect()
}

pub fn networks(host: &Host) -> Vec<NetworkFacts> {
    let mut out: Vec<NetworkFacts> = host
        .inventory
        .iter()
        .flat_map(|i| &i.networks)
        .filter_map(|n| {
            let def = in_effect(n)?;
            let st = &n.state;
            Some(NetworkFacts {
                name: n.name.clone(),
                uuid: st.uuid.clone(),
                active: st.active,
                autostart: st.autostart,
                persistent: st.persistent,
                forward: network::forward_mode(def),
                bridge: network::bridge_name(def).or_else(|| st.bridge.clone()),
                interfaces: network::forward_interfaces(def),
                pf: network::forward_pf(def),
                addresses: addresses(def),
                method: network_method(def),
                restart_required: match (&st.live, &st.inactive) {
                    (Some(l), Some(i)) if st.active => !network::live_matches(l, i),
                    _ => false,
                },
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The method an interface with these facets amounts to (see the module header).
fn method(f: &Facets, inv: &Inventory) -> String {
    let source = f.source.as_deref().unwrap_or("");
    match f.kind.as_str() {
        "network" => inv
            .networks
            .iter()
            .find(|n| n.name == source)
            .and_then(in_effect)
            .map_or_else(|| "unknown".into(), network_method),
        "bridge" => inv
            .networks
            .iter()
            .filter_map(in_effect)
            .find(|d| {
                network::OWN_BRIDGE_MODES.contains(&network::forward_mode(d).as_str())
                    && network::bridge_name(d).as_deref() == Some(source)
            })
            .map_or_else(|| "bridge".into(), network_method),
        "direct" => match f.mode.as_deref() {
            Some("bridge") => "direct_bridge".into(),
            Some(m) => m.into(),
            None => interface::DIRECT_DEFAULT_MODE.into(),
        },
        other => other.into(),
    }
}

/// The facets kvmnet compares, without the MAC (the same on both sides by construction).
fn same(a: &Facets, b: &Facets) -> bool {
    (&a.kind, &a.source, &a.mode, &a.model) == (&b.kind, &b.source, &b.mode, &b.model)
}

/// One interface described by facets `f` (its definition's, or the running guest's for an
/// interface only the running guest has), with what the kernel says of its live device.
fn iface(host: &Host, inv: &Inventory, f: Facets, live: Option<&Element>) -> Iface {
    let target = live.and_then(interface::target_dev);
    // The kernel's view of the device, when the guest runs on this host.
    let kernel: Option<&Link> = target
        .as_deref()
        .filter(|_| host.libvirt.is_some())
        .and_then(|t| host.link(t));
    Iface {
        method: method(&f, inv),
        mac: f.mac,
        kind: f.kind,
        source: f.source,
        mode: f.mode,
        model: f.model,
        bridge: kernel.and_then(|k| k.master.clone()),
        parent: kernel
            .filter(|k| k.is_macvlan_family())
            .and_then(|k| k.link.clone()),
        target,
        restart_required: false,
    }
}

fn guest(host: &Host, inv: &Inventory, d: &Domain) -> Guest {
    let running = d.live.is_some();
    let live: Vec<&Element> = d
        .live
        .as_ref()
        .map(interface::interfaces)
        .unwrap_or_default();
    let mut interfaces: Vec<Iface> = Vec::new();
    for def in interface::interfaces(&d.definition) {
        let f = interface::facets(def);
        let l = live
            .iter()
            .find(|l| !f.mac.is_empty() && interface::mac_of(l).as_deref() == Some(&f.mac))
            .copied();
        // A running guest that lacks the interface, or runs it otherwise, takes the
        // definition at its next start.
        let pending = running && l.is_none_or(|l| !same(&interface::facets(l), &f));
        let mut i = iface(host, inv, f, l);
        i.restart_required = pending;
        interfaces.push(i);
    }
    for l in live {
        let f = interface::facets(l);
        if f.mac.is_empty() || interface::find(&d.definition, &f.mac).is_none() {
            // Only the running guest has it: gone at its next start.
            let mut i = iface(host, inv, f, Some(l));
            i.restart_required = true;
            interfaces.push(i);
        }
    }
    Guest {
        name: d.name.clone(),
        uuid: d.uuid.clone(),
        state: d.state.clone(),
        persistent: d.persistent,
        autostart: d.autostart,
        interfaces,
    }
}

pub fn guests(host: &Host) -> Vec<Guest> {
    let Some(inv) = host.inventory else {
        return Vec::new();
    };
    let mut out: Vec<Guest> = inv.domains.iter().map(|d| guest(host, inv, d)).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
