//! NetworkManager's profiles that matter to some interfaces, read over D-Bus through their
//! devices, at a cost that does not grow with the host's other profiles.
//!
//! nmcli loads every profile of the host before it prints one (on a hypervisor whose NM
//! made a profile for each of 200 guests' taps, one call takes 200 ms). Here each
//! interface's device (`GetDeviceByIpIface`) names the profiles that can be active on it
//! (`AvailableConnections`) and the one that is (`ActiveConnection`); only those are read
//! (`GetSettings`), in four rounds of calls sent all at once. What this cannot see: the
//! profiles of a device NetworkManager does not manage (it lists none for it) and those of
//! interfaces the host does not have, which cannot be active.

use crate::settings::{self, NmVersion};
use crate::{get_all, get_property, nm_call, DEVICE, NM, NM_PATH};
use kvmnet_nmcli::{Conn, Connections};
use kvmnet_protocol::{BusCall, BusReply, Ctx, Result};
use serde_json::{Map, Value};

pub const ACTIVE: &str = "org.freedesktop.NetworkManager.Connection.Active";
pub const SETTINGS: &str = "org.freedesktop.NetworkManager.Settings";
pub const SETTINGS_PATH: &str = "/org/freedesktop/NetworkManager/Settings";
pub const CONNECTION: &str = "org.freedesktop.NetworkManager.Settings.Connection";

/// `NM_DEVICE_STATE_UNMANAGED`.
const UNMANAGED: u64 = 10;
/// `NM_SETTINGS_CONNECTION_FLAG_NM_GENERATED | NM_SETTINGS_CONNECTION_FLAG_EXTERNAL`: a
/// profile NetworkManager made for a device someone else configured (a guest's tap).
const GENERATED: u64 = 0x2 | 0x8;

/// One interface's device.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub iface: String,
    pub path: String,
    /// NetworkManager manages it (it lists the profiles that can be active on it only then).
    pub managed: bool,
}

/// What NetworkManager holds for the interfaces asked about.
#[derive(Debug, Clone)]
pub struct View {
    pub nm: NmVersion,
    /// Those interfaces NetworkManager has a device for.
    pub devices: Vec<Device>,
    /// Those it has none for.
    pub unknown: Vec<String>,
    /// The profiles that can be active on those devices, the active ones, and those asked
    /// for by UUID, as nmcli would have printed them.
    pub conns: Connections,
}

impl View {
    pub fn device(&self, iface: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.iface == iface)
    }
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The dictionary a `GetAll` answered, empty for an error reply.
fn dict(reply: &BusReply) -> Map<String, Value> {
    match reply {
        Ok(v) => v
            .first()
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        Err(_) => Map::new(),
    }
}

fn paths(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(|p| str_of(p).to_string()).collect())
        .unwrap_or_default()
}

/// `Settings.GetConnectionByUuid(uuid)`: the profile's object path.
pub fn by_uuid_call(uuid: &str) -> BusCall {
    BusCall::new(
        NM,
        SETTINGS_PATH,
        SETTINGS,
        "GetConnectionByUuid",
        vec![Value::from(uuid)],
    )
}

/// Read what NetworkManager holds for `ifaces` and the profiles `uuids` (which may not
/// exist any more). `Ok(None)`: a profile among them this reader cannot put exactly as
/// nmcli would, or one that vanished while it was read; the caller then reads with nmcli.
pub fn read(ctx: &mut Ctx, ifaces: &[String], uuids: &[String]) -> Result<Option<View>> {
    read_known(ctx, &[], ifaces, uuids)
}

/// [`read`], for a caller that already asked for some of the devices: `known` holds
/// (interface, device path) pairs, not asked for again.
pub fn read_known(
    ctx: &mut Ctx,
    known: &[(String, String)],
    ifaces: &[String],
    uuids: &[String],
) -> Result<Option<View>> {
    let rest: Vec<String> = ifaces
        .iter()
        .filter(|i| !known.iter().any(|(k, _)| k == *i))
        .cloned()
        .collect();
    let Some((nm, mut found, unknown)) = find_devices(ctx, &rest)? else {
        return Ok(None);
    };
    found.splice(0..0, known.iter().cloned());
    let (devices, mut settings_paths, actives) = read_devices(ctx, &found)?;
    let active_on = read_actives(ctx, &actives, uuids, &mut settings_paths)?;
    let mut seen = std::collections::BTreeSet::new();
    settings_paths.retain(|p| !p.is_empty() && p != "/" && seen.insert(p.clone()));
    let Some(conns) = profiles(ctx, &settings_paths, &active_on, nm)? else {
        return Ok(None);
    };
    Ok(Some(View {
        nm,
        devices,
        unknown,
        conns: Connections {
            conns,
            newer_names: nm.newer_names(),
        },
    }))
}

/// Interfaces with their device paths, and those without a device.
type Found = (NmVersion, Vec<(String, String)>, Vec<String>);

/// Round 1: the version and each interface's device.
fn find_devices(ctx: &mut Ctx, ifaces: &[String]) -> Result<Option<Found>> {
    let mut calls = vec![get_property(NM_PATH, NM, "Version")];
    calls.extend(
        ifaces
            .iter()
            .map(|i| nm_call("GetDeviceByIpIface", vec![Value::from(i.as_str())])),
    );
    let replies = ctx.bus_read_all(&calls)?;
    let nm = match replies.first() {
        Some(Ok(v)) => v.first().map(str_of).and_then(NmVersion::parse),
        _ => None,
    };
    let Some(nm) = nm else {
        return Ok(None);
    };
    let mut found: Vec<(String, String)> = Vec::new();
    let mut unknown = Vec::new();
    for (iface, r) in ifaces.iter().zip(&replies[1..]) {
        match r {
            Ok(v) => found.push((iface.clone(), v.first().map(str_of).unwrap_or("").into())),
            Err(e) if e.name.ends_with(".UnknownDevice") => unknown.push(iface.clone()),
            Err(_) => return Ok(None),
        }
    }
    Ok(Some((nm, found, unknown)))
}

/// The devices, the settings paths they can activate, and their active connections
/// (active path, interface).
type DevicesRead = (Vec<Device>, Vec<String>, Vec<(String, String)>);

/// Round 2: the devices' properties.
fn read_devices(ctx: &mut Ctx, found: &[(String, String)]) -> Result<DevicesRead> {
    let calls: Vec<BusCall> = found.iter().map(|(_, p)| get_all(p, DEVICE)).collect();
    let devs: Vec<Map<String, Value>> = ctx.bus_read_all(&calls)?.iter().map(dict).collect();
    let mut devices = Vec::new();
    let mut settings_paths: Vec<String> = Vec::new();
    let mut actives: Vec<(String, String)> = Vec::new();
    for ((iface, path), d) in found.iter().zip(&devs) {
        let state = d.get("State").and_then(Value::as_u64).unwrap_or(0);
        devices.push(Device {
            iface: iface.clone(),
            path: path.clone(),
            managed: state > UNMANAGED,
        });
        settings_paths.extend(paths(d.get("AvailableConnections")));
        let ac = d.get("ActiveConnection").map(str_of).unwrap_or("/");
        if ac != "/" && !ac.is_empty() {
            actives.push((ac.to_string(), iface.clone()));
        }
    }
    Ok((devices, settings_paths, actives))
}

/// Round 3: the active connections (their profile, device and state) and the profiles
/// asked for by UUID; every profile path found joins `settings_paths`.
fn read_actives(
    ctx: &mut Ctx,
    actives: &[(String, String)],
    uuids: &[String],
    settings_paths: &mut Vec<String>,
) -> Result<Vec<(String, String, &'static str)>> {
    let mut calls: Vec<BusCall> = actives.iter().map(|(a, _)| get_all(a, ACTIVE)).collect();
    calls.extend(uuids.iter().map(|u| by_uuid_call(u)));
    let replies = ctx.bus_read_all(&calls)?;
    let (active_replies, uuid_replies) = replies.split_at(actives.len());
    let mut active_on: Vec<(String, String, &'static str)> = Vec::new();
    for ((_, iface), r) in actives.iter().zip(active_replies) {
        let a = dict(r);
        let conn = a.get("Connection").map(str_of).unwrap_or("").to_string();
        let state = match a.get("State").and_then(Value::as_u64) {
            Some(1) => "activating",
            Some(2) => "activated",
            Some(3) => "deactivating",
            _ => "",
        };
        settings_paths.push(conn.clone());
        active_on.push((conn, iface.clone(), state));
    }
    for v in uuid_replies.iter().flatten() {
        settings_paths.extend(v.first().map(|p| str_of(p).to_string()));
    }
    Ok(active_on)
}

/// Each profile's settings and flags, as the [`Conn`] nmcli's reader makes.
fn profiles(
    ctx: &mut Ctx,
    paths: &[String],
    active_on: &[(String, String, &'static str)],
    nm: NmVersion,
) -> Result<Option<Vec<Conn>>> {
    let mut calls = Vec::new();
    for p in paths {
        calls.push(BusCall::new(
            NM,
            p.as_str(),
            CONNECTION,
            "GetSettings",
            vec![],
        ));
        calls.push(get_all(p, CONNECTION));
    }
    let replies = ctx.bus_read_all(&calls)?;
    let mut conns = Vec::new();
    for (path, pair) in paths.iter().zip(replies.chunks(2)) {
        let Ok(settings) = &pair[0] else {
            return Ok(None); // gone since the device named it
        };
        let Some(s) = settings.first() else {
            return Ok(None);
        };
        let p = match settings::profile(s, nm) {
            Ok(p) => p,
            Err(_) => return Ok(None),
        };
        let flags = dict(&pair[1])
            .get("Flags")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let (device, state) = active_on
            .iter()
            .find(|(c, _, _)| c == path)
            .map(|(_, d, s)| (d.clone(), s.to_string()))
            .unwrap_or_default();
        conns.push(Conn {
            uuid: p.uuid().to_string(),
            device: if state.is_empty() {
                String::new()
            } else {
                device
            },
            state,
            external: flags & GENERATED != 0,
            p,
        });
    }
    Ok(Some(conns))
}
