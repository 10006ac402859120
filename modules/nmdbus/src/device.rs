//! NetworkManager's devices: the object path of an interface, and an object's interface.

use crate::{first_str, get_property, nm_call, DEVICE};
use kvmnet_protocol::bus::call_failed;
use kvmnet_protocol::{Ctx, Result};
use serde_json::Value;

/// `GetDeviceByIpIface(name)`.
pub fn by_iface_call(name: &str) -> kvmnet_protocol::BusCall {
    nm_call("GetDeviceByIpIface", vec![Value::from(name)])
}

/// The object path of NetworkManager's device for interface `name`; `None` when
/// NetworkManager has no such device.
pub fn path_by_iface(ctx: &mut Ctx, name: &str) -> Result<Option<String>> {
    let call = by_iface_call(name);
    match ctx.bus_read_any(&call)? {
        Ok(reply) => first_str(&call, &reply).map(Some),
        Err(e) if e.name.ends_with(".UnknownDevice") => Ok(None),
        Err(e) => Err(call_failed(&call, &e)),
    }
}

/// The interface name of the device at `path` (its `Interface` property).
pub fn interface(ctx: &mut Ctx, path: &str) -> Result<String> {
    let call = get_property(path, DEVICE, "Interface");
    let reply = ctx.bus_read(&call)?;
    first_str(&call, &reply)
}
