//! NetworkManager's checkpoints: a snapshot of some devices' configuration that
//! NetworkManager restores by itself when its rollback timeout passes, unless the client
//! destroys it first (commits) or rolls back at once.
//!
//! Measured in the lab (NM 1.30, 1.42, 1.52): creating one works as root under
//! `auth-polkit=root-only`; a device may be in one checkpoint only (a second
//! `CheckpointCreate` on it fails: "device 'ens32' is already included in checkpoint
//! /org/freedesktop/NetworkManager/Checkpoint/2"); `DISCONNECT_NEW_DEVICES` is refused
//! with a device list; with `DELETE_NEW_CONNECTIONS` a rollback deletes the profiles made
//! after the checkpoint (a new bridge goes with its profile) and adds back the ones deleted
//! since, with their files.

use crate::{get_all, get_property, nm_call, CHECKPOINT, NM, NM_PATH};
use kvmnet_protocol::{BusCall, Ctx, Error, Result};
use serde_json::Value;

/// `CheckpointCreate` flags (NetworkManager's `NMCheckpointCreateFlags`).
pub mod flags {
    /// Destroy every other checkpoint first (never used: they may be another client's).
    pub const DESTROY_ALL: u32 = 0x01;
    /// On rollback, delete the profiles added after the checkpoint (NM >= 1.6).
    pub const DELETE_NEW_CONNECTIONS: u32 = 0x02;
    /// On rollback, disconnect new devices; refused together with a device list.
    pub const DISCONNECT_NEW_DEVICES: u32 = 0x04;
    /// Allow a device in several checkpoints (NM >= 1.28).
    pub const ALLOW_OVERLAPPING: u32 = 0x08;
    /// On rollback, detach ports NetworkManager did not make (guests' taps) from the
    /// bridges; NetworkManager >= 1.38 keeps them unless this is given, older ones always
    /// detach them.
    pub const NO_PRESERVE_EXTERNAL_PORTS: u32 = 0x10;
}

/// `CheckpointCreate(devices, rollback_timeout, flags)`; the reply is the checkpoint's path.
pub fn create(devices: &[String], rollback_timeout: u32, flags: u32) -> BusCall {
    nm_call(
        "CheckpointCreate",
        vec![
            Value::from(devices.to_vec()),
            Value::from(rollback_timeout),
            Value::from(flags),
        ],
    )
}

/// `CheckpointDestroy(path)`: keep the changes (commit).
pub fn destroy(path: &str) -> BusCall {
    nm_call("CheckpointDestroy", vec![Value::from(path)])
}

/// `CheckpointRollback(path)`: restore now; the reply maps each device path to a result
/// (0: restored).
pub fn rollback(path: &str) -> BusCall {
    nm_call("CheckpointRollback", vec![Value::from(path)])
}

/// The devices a rollback could not restore, with NetworkManager's result code (1: no
/// such device any more, 2: unmanaged, 3: failed).
pub fn rollback_failures(reply: &[Value]) -> Vec<(String, u64)> {
    let Some(Value::Object(m)) = reply.first() else {
        return Vec::new();
    };
    m.iter()
        .filter_map(|(dev, r)| {
            let code = r.as_u64().unwrap_or(3);
            (code != 0).then(|| (dev.clone(), code))
        })
        .collect()
}

/// Whether a `CheckpointCreate` failed because a device is in a pending checkpoint.
pub fn is_already_included(e: &Error) -> bool {
    e.extra
        .get("dbus_message")
        .and_then(Value::as_str)
        .is_some_and(|m| m.contains("already included in checkpoint"))
}

/// A pending checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub path: String,
    /// Object paths of its devices.
    pub devices: Vec<String>,
    /// When it was made: CLOCK_BOOTTIME in milliseconds (what `/proc/uptime` counts).
    pub created_ms: i64,
    /// Seconds after `created_ms` at which NetworkManager rolls back (0: never).
    pub rollback_timeout: u32,
}

impl Checkpoint {
    /// When NetworkManager rolls back by itself (CLOCK_BOOTTIME ms), if ever.
    pub fn rollback_at_ms(&self) -> Option<i64> {
        (self.rollback_timeout > 0)
            .then(|| self.created_ms + i64::from(self.rollback_timeout) * 1000)
    }

    fn from_properties(path: &str, props: &Value) -> Checkpoint {
        Checkpoint {
            path: path.to_string(),
            devices: props["Devices"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            created_ms: props["Created"].as_i64().unwrap_or(0),
            rollback_timeout: props["RollbackTimeout"].as_u64().unwrap_or(0) as u32,
        }
    }
}

/// The checkpoint at `path`; `None` when it no longer exists (committed or rolled back).
pub fn read(ctx: &mut Ctx, path: &str) -> Result<Option<Checkpoint>> {
    let call = get_all(path, CHECKPOINT);
    match ctx.bus_read_any(&call)? {
        Ok(reply) => Ok(reply
            .first()
            .map(|props| Checkpoint::from_properties(path, props))),
        Err(e) if e.name.starts_with("org.freedesktop.DBus.Error.Unknown") => Ok(None),
        Err(e) => Err(kvmnet_protocol::bus::call_failed(&call, &e)),
    }
}

/// Every pending checkpoint (NetworkManager's `Checkpoints` property, then each one's
/// properties).
pub fn list(ctx: &mut Ctx) -> Result<Vec<Checkpoint>> {
    let call = get_property(NM_PATH, NM, "Checkpoints");
    let reply = ctx.bus_read(&call)?;
    let paths: Vec<String> = reply
        .first()
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for p in paths {
        if let Some(c) = read(ctx, &p)? {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rollback_results_name_the_devices_not_restored() {
        let reply = vec![json!({
            "/org/freedesktop/NetworkManager/Devices/2": 0,
            "/org/freedesktop/NetworkManager/Devices/7": 1
        })];
        assert_eq!(
            rollback_failures(&reply),
            vec![("/org/freedesktop/NetworkManager/Devices/7".to_string(), 1)]
        );
        assert!(rollback_failures(&[]).is_empty());
    }

    #[test]
    fn a_checkpoint_says_when_it_rolls_back() {
        // GetAll on a checkpoint, NM 1.42 (busctl introspect showed these values).
        let c = Checkpoint::from_properties(
            "/org/freedesktop/NetworkManager/Checkpoint/2",
            &json!({"Created": 3749065, "Devices": ["/org/freedesktop/NetworkManager/Devices/2"],
                    "RollbackTimeout": 12}),
        );
        assert_eq!(c.rollback_at_ms(), Some(3761065));
        assert_eq!(c.devices, vec!["/org/freedesktop/NetworkManager/Devices/2"]);
    }

    #[test]
    fn the_create_call_carries_its_arguments_as_json() {
        let c = create(
            &["/org/freedesktop/NetworkManager/Devices/2".into()],
            60,
            flags::DELETE_NEW_CONNECTIONS,
        );
        assert_eq!(
            c.method(),
            "org.freedesktop.NetworkManager.CheckpointCreate"
        );
        assert_eq!(
            c.args,
            vec![
                json!(["/org/freedesktop/NetworkManager/Devices/2"]),
                json!(60),
                json!(2)
            ]
        );
    }
}
