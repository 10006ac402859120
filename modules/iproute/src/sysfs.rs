//! What kind of device a name is, read from sysfs (`/sys/class/net/NAME/uevent`): no
//! process, so a module can check a device it only names in passing (a libvirt
//! network's bridge, a guest interface's source) without spending one.

use kvmnet_protocol::Ctx;

/// A device's `DEVTYPE` (empty for a plain NIC or veth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevType(pub String);

impl DevType {
    pub fn is_bridge(&self) -> bool {
        self.0 == "bridge"
    }
    /// An Open vSwitch bridge port: libvirt attaches guests to it like to a bridge.
    pub fn is_openvswitch(&self) -> bool {
        self.0 == "openvswitch"
    }
}

/// The device `name` on this host and its type; `None` when there is no such device (or
/// the name could not be one).
pub fn device_type(ctx: &mut Ctx, name: &str) -> Option<DevType> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let uevent = ctx.read_file(&format!("/sys/class/net/{name}/uevent"))?;
    let t = uevent
        .lines()
        .find_map(|l| l.trim().strip_prefix("DEVTYPE="))
        .unwrap_or("");
    Some(DevType(t.to_string()))
}
