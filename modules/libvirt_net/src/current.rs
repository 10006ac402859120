//! Every read of the host: the network's state in one virsh process (`net-info`, the
//! inactive and the live definition), and the host devices the definition it will have
//! names, from sysfs (no process; one `ip` only for a host bridge sysfs cannot tell from
//! a NIC, as Open vSwitch's).

use crate::params::{definition, Params};
use kvmnet_iproute::{device_type, openvswitch_fallback, DevType};
use kvmnet_protocol::{Ctx, Result};
use kvmnet_virtxml::netstate::{self, NetState};
use kvmnet_virtxml::network;

/// A host device a definition names (the host bridge, a pool device, an SR-IOV PF).
#[derive(Debug, Clone)]
pub struct HostDevice {
    /// `bridge`, `interface` or `pf`.
    pub what: &'static str,
    pub name: String,
    /// Its type, `None` when the host has no such device.
    pub kind: Option<DevType>,
}

/// What the host holds.
pub struct Current {
    pub net: NetState,
    /// The devices named by the definition the network will have (the task's, else the
    /// stored one): libvirt accepts a definition naming a device the host lacks, and
    /// guests fail later.
    pub devices: Vec<HostDevice>,
}

pub fn read(ctx: &mut Ctx, p: &Params) -> Result<Current> {
    let net = netstate::read(ctx, &p.uri, &p.name)?;
    let named = match definition(p)? {
        Some(d) => network::referenced_devices(&d),
        None => net
            .inactive
            .as_ref()
            .map(network::referenced_devices)
            .unwrap_or_default(),
    };
    let devices = named
        .into_iter()
        .map(|(what, name)| {
            let found = device_type(ctx, &name);
            HostDevice {
                // An Open vSwitch bridge has no DEVTYPE: one `ip` tells, only then.
                kind: if what == "bridge" {
                    openvswitch_fallback(ctx, &name, found)
                } else {
                    found
                },
                what,
                name,
            }
        })
        .collect();
    Ok(Current { net, devices })
}
