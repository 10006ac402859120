//! Every read of the host: the domain's persistent and live definitions, the defined and
//! active networks and, when `source` may name a network, that network's definition, in
//! ONE virsh process (`virtxml::domain::read`); the host device the interface will sit
//! on (types bridge and direct), from sysfs (`iproute::device_type`, no process; one `ip`
//! only for an Open vSwitch bridge, which sysfs cannot tell from a NIC).

use crate::params::{Kind, Params};
use kvmnet_iproute::{device_type, openvswitch_fallback, DevType};
use kvmnet_protocol::{Ctx, Result};
use kvmnet_virtxml::domain::{self, DomainState};
use kvmnet_virtxml::interface as iface;
use kvmnet_virtxml::Element;

/// A host device an interface may be attached to (a bridge, a NIC for macvtap).
#[derive(Debug, Clone)]
pub struct HostDevice {
    pub name: String,
    /// Its type (`DEVTYPE`), `None` when the host has no such device.
    pub kind: Option<DevType>,
}

/// What the host holds.
#[derive(Debug)]
pub struct Current {
    pub dom: DomainState,
    /// The devices the interface may end up on: the `source` option, else the current
    /// source of a bridge or direct interface the task may mean.
    pub devices: Vec<HostDevice>,
}

impl Current {
    /// The device `name`: `None` when the host has no such device.
    pub fn device(&self, name: &str) -> Option<&DevType> {
        self.devices
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.kind.as_ref())
    }
}

pub fn read(ctx: &mut Ctx, p: &Params) -> Result<Current> {
    let dom = domain::read(ctx, &p.uri, &p.domain, source_network(p))?;
    let devices = device_names(p, &dom.persistent)
        .into_iter()
        .map(|(name, as_bridge)| {
            let found = device_type(ctx, &name);
            HostDevice {
                kind: if as_bridge {
                    openvswitch_fallback(ctx, &name, found)
                } else {
                    found
                },
                name,
            }
        })
        .collect();
    Ok(Current { dom, devices })
}

/// The network `source` may name: when `type` is network, or omitted (the interface may
/// already be a network one).
fn source_network(p: &Params) -> Option<&str> {
    match (p.kind, p.source.as_deref()) {
        (None | Some(Kind::Network), Some(n)) if !p.absent() => Some(n),
        _ => None,
    }
}

/// The host devices the interface may sit on after the run, and whether as a bridge: the
/// `source` option (unless it names a network), or, without one, the current source of
/// each bridge or direct interface the task may mean (the one with `mac`; every one when
/// no MAC is given).
fn device_names(p: &Params, persistent: &Element) -> Vec<(String, bool)> {
    if p.absent() || p.kind == Some(Kind::Network) {
        return Vec::new();
    }
    let meant = iface::interfaces(persistent)
        .into_iter()
        .map(iface::facets)
        .filter(|f| p.mac().as_ref().is_none_or(|m| *m == f.mac));
    if let Some(s) = &p.source {
        let as_bridge = match p.kind {
            Some(k) => k == Kind::Bridge,
            None => meant.clone().any(|f| f.kind == "bridge"),
        };
        return vec![(s.clone(), as_bridge)];
    }
    let mut names: Vec<(String, bool)> = Vec::new();
    for f in meant {
        if let ("bridge" | "direct", Some(s)) = (f.kind.as_str(), f.source.clone()) {
            if !names.iter().any(|(n, _)| *n == s) {
                names.push((s, f.kind == "bridge"));
            }
        }
    }
    names
}
