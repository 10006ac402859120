//! What kind of device a name is, read from sysfs (`/sys/class/net/NAME/uevent`): no
//! process, so a module can check a device it only names in passing (a libvirt
//! network's bridge, a guest interface's source) without spending one.

use kvmnet_protocol::Ctx;

/// A device's `DEVTYPE` (empty for a plain NIC or veth, and for an Open vSwitch bridge,
/// whose internal device sets none: see [`openvswitch_fallback`]).
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

/// An Open vSwitch bridge sets no `DEVTYPE`, so sysfs cannot tell it from a NIC: where a
/// bridge is expected and sysfs says nothing, ask `ip -d` for the link kind (one process,
/// only in that case) and report `openvswitch` when it is one.
pub fn openvswitch_fallback(ctx: &mut Ctx, name: &str, found: Option<DevType>) -> Option<DevType> {
    match found {
        Some(t) if t.0.is_empty() => {
            let kind = ctx
                .read_any(&["ip", "-j", "-d", "link", "show", "dev", name])
                .ok()
                .and_then(|out| crate::parse_links(&out.stdout).ok())
                .and_then(|l| l.into_iter().next())
                .and_then(|l| l.kind().map(str::to_string));
            Some(if kind.as_deref() == Some("openvswitch") {
                DevType("openvswitch".into())
            } else {
                t
            })
        }
        other => other,
    }
}
