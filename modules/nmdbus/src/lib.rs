//! NetworkManager's D-Bus API as the kvmnet modules use it.
//!
//! The modules never touch D-Bus directly: they make [`BusCall`]s through
//! [`Ctx`](kvmnet_protocol::Ctx) (`bus_read`, `bus_write`, a step's `bus_call`), so that
//! check mode, `commands` and the test double treat them like commands. This crate holds
//! both ends:
//!
//! - [`SystemBus`] (client.rs): the [`Bus`](kvmnet_protocol::Bus) a module's `main` hands
//!   to the driver. It connects to the system bus on the first call only (a run that makes
//!   none opens no connection) and turns each call's JSON arguments into a typed D-Bus
//!   message by the method's signature ([`signatures`]), and the reply back into JSON.
//! - The calls themselves, typed and pure ([`nm_call`], [`get_property`], [`checkpoint`],
//!   [`device`]), and readers of their replies. A call this crate has no signature for is
//!   refused before anything is sent.
//!
//! Only the modules that need the bus depend on this crate (it brings zbus 5, about 0.9 MB
//! of a static binary).

pub mod checkpoint;
pub mod client;
pub mod device;
pub mod keyfiles;
pub mod settings;
pub mod signatures;
mod value;
pub mod view;

pub use client::SystemBus;

use kvmnet_protocol::BusCall;
use serde_json::Value;

/// NetworkManager's bus name, and its main interface.
pub const NM: &str = "org.freedesktop.NetworkManager";
/// NetworkManager's main object.
pub const NM_PATH: &str = "/org/freedesktop/NetworkManager";
pub const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
pub const DEVICE: &str = "org.freedesktop.NetworkManager.Device";
pub const CHECKPOINT: &str = "org.freedesktop.NetworkManager.Checkpoint";

/// A method of NetworkManager's main object.
pub fn nm_call(member: &str, args: Vec<Value>) -> BusCall {
    BusCall::new(NM, NM_PATH, NM, member, args)
}

/// `org.freedesktop.DBus.Properties.Get(interface, name)` on one of NetworkManager's objects.
pub fn get_property(path: &str, interface: &str, name: &str) -> BusCall {
    BusCall::new(
        NM,
        path,
        PROPERTIES,
        "Get",
        vec![Value::from(interface), Value::from(name)],
    )
}

/// `org.freedesktop.DBus.Properties.GetAll(interface)` on one of NetworkManager's objects.
pub fn get_all(path: &str, interface: &str) -> BusCall {
    BusCall::new(NM, path, PROPERTIES, "GetAll", vec![Value::from(interface)])
}

/// The first value of a reply as text (an object path, a string), or an error naming
/// the call.
pub fn first_str(call: &BusCall, reply: &[Value]) -> kvmnet_protocol::Result<String> {
    reply
        .first()
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            kvmnet_protocol::Error::bug(format!(
                "{}: unexpected reply {}",
                call.method(),
                Value::Array(reply.to_vec())
            ))
        })
}
