//! NetworkManager's devices: the object path of an interface, an object's interface, and
//! reapplying a device's profile (the interface named as data, never as a command-line
//! word: `nmcli dev reapply NAME` reads a NAME such as `--ask` or `-a` as its option).

use crate::{first_str, get_property, nm_call, DEVICE, NM};
use kvmnet_protocol::bus::call_failed;
use kvmnet_protocol::{BusCall, Ctx, Error, Result};
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

/// `Device.Reapply({}, 0, 0)` on the device at `path`: apply the profile's current settings
/// to the running device without re-activating it (the empty dictionary: the profile as it
/// is; version 0: whatever was applied last; no flags). An empty reply.
pub fn reapply_call(path: &str) -> BusCall {
    BusCall::new(
        NM,
        path,
        DEVICE,
        "Reapply",
        vec![
            Value::Object(Default::default()),
            Value::from(0),
            Value::from(0),
        ],
    )
}

/// Whether a reapply failed because NetworkManager cannot apply such a change to a running
/// device (its `IncompatibleConnection` error: NetworkManager 1.30 for any bridge setting,
/// "Can't reapply any changes to 'bridge' setting"; every version for a new cloned MAC):
/// only re-activating the device applies it.
pub fn is_reapply_refused(e: &Error) -> bool {
    e.extra
        .get("dbus_error")
        .and_then(Value::as_str)
        .is_some_and(|n| n == "org.freedesktop.NetworkManager.Device.IncompatibleConnection")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvmnet_protocol::BusError;
    use serde_json::json;

    #[test]
    fn the_reapply_call_and_its_refusal() {
        let path = "/org/freedesktop/NetworkManager/Devices/5";
        let call = reapply_call(path);
        assert_eq!(
            call.method(),
            "org.freedesktop.NetworkManager.Device.Reapply"
        );
        assert_eq!(call.args, vec![json!({}), json!(0), json!(0)]);
        // NetworkManager 1.30.6 (Debian 11 lab, `busctl monitor`), bridge.priority changed
        // on an active bridge.
        let refused = BusError {
            name: "org.freedesktop.NetworkManager.Device.IncompatibleConnection".into(),
            message: "Can't reapply any changes to 'bridge' setting".into(),
        };
        assert!(is_reapply_refused(&call_failed(&call, &refused)));
        // NetworkManager 1.42.4, Reapply on a device with no active profile.
        let not_active = BusError {
            name: "org.freedesktop.NetworkManager.Device.NotActive".into(),
            message: "Device is not activated".into(),
        };
        assert!(!is_reapply_refused(&call_failed(&call, &not_active)));
    }
}
