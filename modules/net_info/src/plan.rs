//! Pure: what `read` found becomes the facts `ansible_facts.kvmnet_net`, one key per
//! gathered part (`bridges`, `macvtaps`, `networks`, `guests`), each a list sorted by
//! name. The parts are built in [`bridges`], [`macvtaps`] and [`libvirt`] from one
//! [`Host`] view, so that each can name what another part knows (the guest a tap belongs
//! to, the libvirt networks on a bridge). A read-only plan: no steps, never `changed`.

mod bridges;
mod libvirt;
mod macvtaps;

use crate::current::{Current, Source};
use crate::params::{Params, Part};
use kvmnet_iproute::Link;
use kvmnet_nmcli::{Conn, Connections};
use kvmnet_protocol::{Command, Env, Error, Result, Step};
use kvmnet_virtxml::interface;
use kvmnet_virtxml::inventory::Inventory;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A read-only module has no steps.
#[derive(Debug)]
pub enum Never {}

impl Step for Never {
    fn summary(&self) -> String {
        match *self {}
    }
    fn command(&self) -> Option<Command> {
        match *self {}
    }
}

pub type Plan = kvmnet_protocol::Plan<(), Never>;

/// Who made a bridge, port or macvtap link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A NetworkManager profile (one it stores, not one it generated for a device it
    /// found) holds it.
    NetworkManager,
    /// libvirt: a network's own bridge, a guest's tap or macvtap.
    Libvirt,
    /// Neither: `ip link`, another tool, or a device NetworkManager only watches.
    External,
}

/// Everything the parts are built from.
pub struct Host<'a> {
    /// NetworkManager's profiles, when read.
    pub nm: Option<&'a Connections>,
    pub links: &'a [Link],
    /// libvirt's networks and domains, when read (the `networks` and `guests` parts).
    pub inventory: Option<&'a Inventory>,
    /// The same when they are this host's (a local URI): what the cross references
    /// between libvirt's objects and this host's bridges and links are made from.
    pub libvirt: Option<&'a Inventory>,
    /// Running guests' target devices -> the guest (when this host's guests were read).
    pub targets: BTreeMap<String, String>,
}

impl<'a> Host<'a> {
    fn new(p: &Params, cur: &'a Current) -> Self {
        let inventory = cur.libvirt.get();
        let libvirt = inventory.filter(|_| p.libvirt_here());
        let mut targets = BTreeMap::new();
        for d in libvirt.iter().flat_map(|i| &i.domains) {
            for iface in d.live.iter().flat_map(interface::interfaces) {
                if let Some(t) = interface::target_dev(iface) {
                    targets.insert(t, d.name.clone());
                }
            }
        }
        Host {
            nm: cur.nm.get(),
            links: &cur.links,
            inventory,
            libvirt,
            targets,
        }
    }

    pub fn link(&self, name: &str) -> Option<&'a Link> {
        kvmnet_iproute::find(self.links, name)
    }

    /// The guest whose running interface is device `dev`.
    pub fn guest_of(&self, dev: &str) -> Option<String> {
        self.targets.get(dev).cloned()
    }

    /// The profile NetworkManager has active on device `dev`, when NetworkManager was read.
    pub fn active_conn(&self, dev: &str) -> Option<&'a Conn> {
        self.nm?.conns.iter().find(|c| c.active_on(dev))
    }

    /// Who made device `dev` (present in the kernel): a guest's device is libvirt's; else
    /// the profile active on it says; unknown (None) without NetworkManager.
    pub fn origin_of_device(&self, dev: &str) -> Option<Origin> {
        if self.targets.contains_key(dev) {
            return Some(Origin::Libvirt);
        }
        self.nm?;
        Some(match self.active_conn(dev) {
            Some(c) if !c.external => Origin::NetworkManager,
            _ => Origin::External,
        })
    }
}

/// A stored (not generated) profile's name and UUID.
pub fn stored(c: Option<&Conn>) -> Option<&Conn> {
    c.filter(|c| !c.external)
}

/// One element of the facts' lists.
fn to_values<T: Serialize>(items: Vec<T>) -> Result<Value> {
    Ok(Value::Array(
        items
            .into_iter()
            .map(serde_json::to_value)
            .collect::<std::result::Result<_, _>>()?,
    ))
}

pub fn plan(env: &mut Env, p: &Params, cur: &Current) -> Result<Plan> {
    warn_unavailable(env, p, cur);
    let host = Host::new(p, cur);
    let mut facts = Map::new();
    let mut counts = Vec::new();
    for part in p.parts() {
        let list = match part {
            Part::Bridges => to_values(bridges::bridges(&host))?,
            Part::Macvtaps => to_values(macvtaps::macvtaps(&host))?,
            Part::Networks if host.inventory.is_some() => to_values(libvirt::networks(&host))?,
            Part::Guests if host.inventory.is_some() => to_values(libvirt::guests(&host))?,
            Part::Networks | Part::Guests => continue,
        };
        let n = list.as_array().map_or(0, Vec::len);
        counts.push(format!("{n} {}", noun(part, n)));
        facts.insert(part.key().to_string(), list);
    }
    let mut plan = Plan::new(());
    plan.msg = Some(format!("Found {}", counts.join(", ")));
    plan.set(
        "ansible_facts",
        serde_json::json!({ "kvmnet_net": Value::Object(facts) }),
    );
    Ok(plan)
}

fn noun(part: Part, n: usize) -> &'static str {
    match (part, n == 1) {
        (Part::Bridges, true) => "bridge",
        (Part::Bridges, false) => "bridges",
        (Part::Macvtaps, true) => "macvtap link",
        (Part::Macvtaps, false) => "macvtap links",
        (Part::Networks, true) => "libvirt network",
        (Part::Networks, false) => "libvirt networks",
        (Part::Guests, true) => "guest",
        (Part::Guests, false) => "guests",
    }
}

/// A service the host lacks: say what the facts leave out because of it.
fn warn_unavailable(env: &mut Env, p: &Params, cur: &Current) {
    if let Source::Unavailable(e) = &cur.nm {
        env.warn(format!(
            "{}: bridges and macvtap links are read from the kernel alone, without NetworkManager profiles (their origin and persistence are unknown: null)",
            reason(e)
        ));
    }
    if let Source::Unavailable(e) = &cur.libvirt {
        let left: Vec<&str> = [Part::Networks, Part::Guests]
            .into_iter()
            .filter(|x| p.wants(*x))
            .map(Part::key)
            .collect();
        env.warn(format!(
            "{}: the facts have no {} (and cannot tell libvirt's bridges and devices from others)",
            reason(e),
            left.join(" and ")
        ));
    }
}

/// Why a service could not be asked, in the words of this module (the shared readers'
/// messages speak for modules that cannot work without it).
fn reason(e: &Error) -> String {
    let m = e.msg.as_str();
    if m.starts_with("NetworkManager is not running") {
        "NetworkManager is not running on this host".into()
    } else if m.starts_with("NetworkManager's command-line client") {
        "NetworkManager (nmcli) is not installed on this host".into()
    } else if m.starts_with("virsh not found") || m.starts_with("cannot run virsh") {
        "libvirt's virsh is not installed on this host".into()
    } else {
        m.trim_end_matches('.').to_string()
    }
}
