//! Every read of the host: NetworkManager's profiles (one list call, one property call
//! for all of them, with setting-level fields so both spellings of master/controller come
//! through), the kernel's links with their addresses (one `ip -j -d addr show`), this
//! module's memory file (read directly: no process) and, only when a port must be taken
//! into the bridge, NetworkManager's devices (one more nmcli call) to check it manages them.

use crate::checkpoint::{read_marker, Leftover, Marked, Pending};
use crate::memory::Remembered;
use crate::params::Params;
use crate::plan::ports_to_take;
use kvmnet_iproute::{find, read_links, Link};
use kvmnet_nmcli::conn::{self, read_devices, Conn, Connections, Device, Props};
use kvmnet_protocol::{Ctx, Result};

/// Settings read for every profile. Setting-level selection never names a property the
/// installed NM does not know (NM >= 1.46 prints connection.controller/port-type).
pub const SETTINGS: &str = "connection,bridge,802-3-ethernet,ipv4,ipv6";

/// What the host holds.
#[derive(Debug, Clone, Default)]
pub struct Current {
    pub conns: Connections,
    pub links: Vec<Link>,
    /// The profiles `port_profiles: disable` switched off for this bridge.
    pub remembered: Remembered,
    /// NetworkManager's devices: read only when a port must be taken into the bridge.
    pub devices: Option<Vec<Device>>,
    /// A checkpoint an earlier run left pending (NetworkManager rolls it back soon).
    pub pending: Option<Pending>,
    /// An earlier run was interrupted and rolled back: what it left to put back (a memory
    /// file it rewrote, which `remembered` already holds as it was; guests' taps), then its
    /// marker is removed.
    pub leftover: Option<Leftover>,
}

pub fn read(ctx: &mut Ctx, p: &Params) -> Result<Current> {
    let mut cur = read_host(ctx)?;
    cur.remembered = Remembered::read(ctx, &p.name);
    match read_marker(ctx, &p.name)? {
        Some(Marked::Pending(pd)) => {
            cur.pending = Some(pd);
            return Ok(cur); // the plan refuses: nothing more to read
        }
        Some(Marked::Over(left)) => {
            if let Some(text) = &left.memory_before {
                cur.remembered = Remembered::from_text(text.clone());
            }
            cur.leftover = Some(left);
        }
        None => {}
    }
    if !ports_to_take(p, &cur).is_empty() {
        cur.devices = Some(read_devices(ctx)?);
    }
    Ok(cur)
}

/// Profiles and links only (what verify reads back).
pub fn read_host(ctx: &mut Ctx) -> Result<Current> {
    let conns = conn::read(ctx, |_| true, Props::Nmcli(SETTINGS))?;
    let links = read_links(ctx, true)?;
    Ok(Current {
        conns,
        links,
        ..Current::default()
    })
}

impl Current {
    pub fn link(&self, name: &str) -> Option<&Link> {
        find(&self.links, name)
    }
    pub fn conn(&self, uuid: &str) -> Option<&Conn> {
        self.conns.conn(uuid)
    }
    pub fn port_of(&self, c: &Conn) -> Option<String> {
        self.conns.port_of(c, &self.links)
    }
    pub fn bound_to(&self, port: &str) -> Vec<&Conn> {
        self.conns.bound_to(port, &self.links)
    }
}
