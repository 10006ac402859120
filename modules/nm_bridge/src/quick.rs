//! The quick read: what a no-change run needs, without nmcli (whose every call loads every
//! profile of the host: 200 ms on a hypervisor with 300). ONE process (`ip -j -d addr
//! show`) and D-Bus calls: the bridge's device (none: a change, nothing more is asked),
//! then four rounds sent at once: the version and the devices of the bridge, its ports and
//! the host's NICs; their active connections and the profiles named by UUID; the profiles'
//! settings. `state: absent` always reads the full way. Which profiles matter:
//!
//! - those NetworkManager's devices of the bridge, the listed ports, the bridge's other
//!   ports and the host's NICs can activate or have active (guests' taps in the bridge are
//!   not asked about: NetworkManager made their profiles, which are never the module's);
//! - the bridge profiles and bridge port profiles kept as keyfiles (read as an index, no
//!   process: a port profile of this bridge for a NIC that is not in it, or that
//!   NetworkManager does not manage, is found there), and the profiles the memory file
//!   names.
//!
//! `None` (the full read in current.rs decides) when this cannot tell: a pending or
//! rolled-back checkpoint's marker, no bridge device yet, a bridge or listed port that
//! NetworkManager does not manage, a profile read over D-Bus that nmcli would print
//! differently (a route with attributes), a profile that vanished meanwhile. What only
//! the full read sees: a port profile of this bridge that another settings plugin
//! (ifcfg-rh) stores for a NIC NetworkManager does not manage or the host does not have;
//! such a profile can never be active.

use crate::checkpoint::marker_path;
use crate::current::Current;
use crate::memory::Remembered;
use crate::params::Params;
use kvmnet_iproute::{read_links, Link};
use kvmnet_nmcli::generated;
use kvmnet_nmcli::{Conn, Profile};
use kvmnet_nmdbus::keyfiles::{profiles_where, READ_ONLY, SAVED};
use kvmnet_nmdbus::view;
use kvmnet_protocol::{Ctx, Result};

/// Links whose NetworkManager profiles are never this module's to look at: guests' taps
/// (in the bridge or not), macvtaps, and other bridges.
fn skipped(l: &Link, bridge: &str) -> bool {
    l.ifname == "lo"
        || matches!(l.kind(), Some("tun" | "macvtap" | "macvlan" | "ipvlan"))
        || (l.kind() == Some("bridge") && l.ifname != bridge)
}

/// The interfaces whose devices are read: the bridge, the listed ports, and every other
/// link that is neither a tap, a macvtap nor another bridge (its NICs).
fn interfaces(p: &Params, links: &[Link]) -> Vec<String> {
    let mut out = vec![p.name.clone()];
    for port in p.port_list().unwrap_or_default() {
        if !out.contains(&port) {
            out.push(port);
        }
    }
    for l in links.iter().filter(|l| !skipped(l, &p.name)) {
        if !out.contains(&l.ifname) {
            out.push(l.ifname.clone());
        }
    }
    out
}

/// The kernel's bridge already shows that an option differs (STP, forward delay,
/// priority, MTU): a change, nothing more to ask. (The plan compares the profile; a
/// kernel that differs from a profile that does not is read the full way, which finds
/// nothing to change: the quick read only ever gives up early.)
fn kernel_differs(p: &Params, bridge: &Link) -> bool {
    let num = |k: &str| bridge.info_data(k).and_then(serde_json::Value::as_i64);
    p.stp
        .is_some_and(|on| num("stp_state").map(|s| s != 0) != Some(on))
        || p.forward_delay
            .is_some_and(|s| num("forward_delay") != Some(s * 100))
        || p.priority.is_some_and(|n| num("priority") != Some(n))
        || p.mtu.is_some_and(|m| bridge.mtu.map(i64::from) != Some(m))
}

/// A keyfile bridge profile for this interface, or a port profile of a bridge that
/// NetworkManager did not generate.
fn indexed(p: &Profile, name: &str) -> bool {
    (p.kind() == "bridge" && p.interface_name() == Some(name))
        || (p.port_type() == Some("bridge") && !generated(p))
}

pub fn read(ctx: &mut Ctx, p: &Params) -> Result<Option<Current>> {
    if !p.present() || !ctx.has_bus() || ctx.read_file(&marker_path(&p.name)).is_some() {
        return Ok(None);
    }
    // No bridge device, no bridge yet (or not active): a change. One call tells.
    let Some(bridge_device) = kvmnet_nmdbus::device::path_by_iface(ctx, &p.name)? else {
        return Ok(None);
    };
    let links = read_links(ctx, true)?;
    // A listed port the kernel does not have in the bridge: a change.
    let listed = p.port_list().unwrap_or_default();
    let in_bridge = |x: &String| {
        links
            .iter()
            .any(|l| l.ifname == *x && l.master.as_deref() == Some(p.name.as_str()))
    };
    let Some(bridge) = links.iter().find(|l| l.ifname == p.name) else {
        return Ok(None);
    };
    if !listed.iter().all(in_bridge) || kernel_differs(p, bridge) {
        return Ok(None);
    }
    let remembered = Remembered::read(ctx, &p.name);
    // Saved and read-only keyfiles: a stale port profile is a saved one (the in-memory
    // folder holds, above all, the profiles NetworkManager generated for guests' taps).
    let keyfiles = profiles_where(ctx, &[SAVED, READ_ONLY], "bridge", |x| indexed(x, &p.name));
    let mut uuids: Vec<String> = remembered
        .memory
        .disabled
        .iter()
        .map(|d| d.uuid.clone())
        .chain(remembered.memory.taken_over.iter().map(|t| t.uuid.clone()))
        .collect();
    let bridges: Vec<&Profile> = keyfiles.iter().filter(|x| x.kind() == "bridge").collect();
    uuids.extend(bridges.iter().map(|b| b.uuid().to_string()));
    uuids.extend(ports_of(&keyfiles, &bridges, &p.name));
    let ifaces = interfaces(p, &links);
    let known = [(p.name.clone(), bridge_device)];
    let Some(mut v) = view::read_known(ctx, &known, &ifaces, &uuids)? else {
        return Ok(None);
    };
    let managed = |v: &view::View, i: &str| v.device(i).is_some_and(|d| d.managed);
    if !managed(&v, &p.name) || listed.iter().any(|x| !managed(&v, x)) {
        return Ok(None);
    }
    // A bridge profile the keyfiles do not hold (another settings plugin): its keyfile
    // ports are read too.
    let more: Vec<String> = {
        let seen: Vec<&Conn> = v.conns.bridges_for(&p.name);
        let unindexed: Vec<Profile> = seen
            .iter()
            .filter(|c| !bridges.iter().any(|b| b.uuid() == c.uuid))
            .map(|c| c.p.clone())
            .collect();
        let refs: Vec<&Profile> = unindexed.iter().collect();
        ports_of(&keyfiles, &refs, &p.name)
            .into_iter()
            .filter(|u| v.conns.conn(u).is_none())
            .collect()
    };
    if !more.is_empty() {
        let Some(w) = view::read(ctx, &[], &more)? else {
            return Ok(None);
        };
        v.conns.conns.extend(w.conns.conns);
    }
    Ok(Some(Current {
        conns: v.conns,
        links,
        remembered,
        ..Current::default()
    }))
}

/// The UUIDs of the keyfile port profiles whose controller is one of `bridges` (by UUID,
/// by the interface name, or, as buggy tools wrote it, by profile name).
fn ports_of(keyfiles: &[Profile], bridges: &[&Profile], name: &str) -> Vec<String> {
    let ours = |m: &str| m == name || bridges.iter().any(|b| m == b.uuid() || m == b.id());
    keyfiles
        .iter()
        .filter(|x| x.port_type() == Some("bridge") && x.controller().is_some_and(ours))
        .map(|x| x.uuid().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::inherit::INHERITED;
    use crate::params::{MAC_PROP, MTU_PROP};
    use kvmnet_nmdbus::settings::known;

    #[test]
    fn every_property_the_plan_compares_is_read_over_dbus_as_nmcli_prints_it() {
        let mut props: Vec<&str> = INHERITED.iter().map(|(k, _)| *k).collect();
        props.extend([
            "connection.id",
            "connection.type",
            "connection.interface-name",
            "connection.autoconnect",
            "connection.master",
            "connection.slave-type",
            "connection.controller",
            "connection.port-type",
            "bridge.stp",
            "bridge.forward-delay",
            "bridge.priority",
            "bridge.hello-time",
            "bridge.max-age",
            "bridge.mac-address",
            "802-3-ethernet.mac-address",
            MAC_PROP,
            MTU_PROP,
        ]);
        let unknown: Vec<&&str> = props.iter().filter(|k| !known(k)).collect();
        assert!(unknown.is_empty(), "{unknown:?}");
    }
}
