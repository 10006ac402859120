//! Current state + options → the list of nmcli commands, the diff and the return values.

use crate::memory::{Disabled, Memory};
use crate::params::{desired_bridge, norm_value, Params, MAC_PROP, MTU_PROP};
use crate::state::{is_port_of, Conn, OnFail, State};
use kvmnet_protocol::{Action, Ctx, Diff, Error, Plan, Result};
use serde_json::{json, Map, Value};

/// A new profile's UUID (see `kvmnet_nmcli::new_uuid`); unit tests get U1, U2, ... instead.
#[cfg(not(test))]
pub fn new_uuid() -> Result<String> {
    kvmnet_nmcli::new_uuid()
}

#[cfg(test)]
thread_local!(static NEXT: std::cell::Cell<u32> = const { std::cell::Cell::new(1) });

#[cfg(test)]
pub fn new_uuid() -> Result<String> {
    let n = NEXT.with(|c| {
        let n = c.get();
        c.set(n + 1);
        n
    });
    Ok(format!("00000000-0000-4000-8000-{n:012}"))
}

#[cfg(test)]
pub fn reset_uuids() {
    NEXT.with(|c| c.set(1));
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Properties of the bridge profile shown in diffs.
const BRIDGE_TRACKED: &[&str] = &[
    "connection.id",
    "connection.type",
    "connection.interface-name",
    "connection.autoconnect",
    "bridge.stp",
    "bridge.forward-delay",
    "bridge.priority",
    MTU_PROP,
    MAC_PROP,
    "ipv4.method",
    "ipv4.addresses",
    "ipv4.gateway",
    "ipv4.dns",
    "ipv6.method",
    "ipv6.addresses",
    "ipv6.gateway",
    "ipv6.dns",
];

/// A property's current comparable value. The bridge's MAC is `cloned-mac-address`, or
/// the deprecated `bridge.mac-address` that older tools wrote.
pub fn current(c: &Conn, prop: &str) -> String {
    if prop == MAC_PROP {
        let cloned = norm_value(MAC_PROP, c.p.get(MAC_PROP).unwrap_or(""));
        if !cloned.is_empty() {
            return cloned;
        }
        return norm_value(MAC_PROP, c.p.get("bridge.mac-address").unwrap_or(""));
    }
    norm_value(prop, c.p.get(prop).unwrap_or(""))
}

fn activation(c: Option<&Conn>) -> &'static str {
    match c {
        Some(c) if c.state == "activated" => "activated",
        Some(c) if c.state == "activating" => "activating",
        _ => "inactive",
    }
}

fn snapshot(c: &Conn, keys: &[&str]) -> Map<String, Value> {
    let mut m = Map::new();
    for k in keys {
        if c.p.get(k).is_some() || *k == MAC_PROP {
            m.insert(k.to_string(), json!(current(c, k)));
        }
    }
    m.insert("state".into(), json!(activation(Some(c))));
    m
}

fn port_keys(st: &State) -> Vec<&str> {
    vec![
        "connection.id",
        "connection.type",
        "connection.interface-name",
        st.controller_key.as_str(),
        st.port_type_key.as_str(),
        "connection.autoconnect",
    ]
}

fn header(id: &str) -> String {
    format!("nm profile {id}")
}

/// NICs a port could be: every link except loopback and bridges.
fn nic_names(st: &State, bridge: &str) -> String {
    let names: Vec<&str> = st
        .links
        .iter()
        .filter(|l| l.ifname != "lo" && l.ifname != bridge && l.kind() != Some("bridge"))
        .map(|l| l.ifname.as_str())
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

struct Builder {
    plan: Plan,
    on_fail: Vec<OnFail>,
}

impl Builder {
    fn push(&mut self, a: Action) {
        self.push_with(a, OnFail::Fail);
    }
    fn push_with(&mut self, a: Action, f: OnFail) {
        self.plan.push(a);
        self.on_fail.push(f);
    }
}

pub fn plan(ctx: &mut Ctx, p: &Params, st: &State) -> Result<Plan> {
    let mut b = Builder {
        plan: Plan::default(),
        on_fail: Vec::new(),
    };
    if p.present() {
        present(ctx, p, st, &mut b)?;
    } else {
        absent(ctx, p, st, &mut b)?;
    }
    *st.on_fail.borrow_mut() = b.on_fail;
    Ok(b.plan)
}

/// Refuse a port that the kernel has in another controller (a bridge or bond) that no
/// NetworkManager profile of ours can take it from: a bridge made with `ip link` or by
/// another tool. Taking the port would silently break that bridge; the plan could not
/// even show it. A port held by another NM profile is different: the plan switches that
/// profile off, visibly.
fn foreign_controller(st: &State, name: &str, port: &str) -> Result<()> {
    let Some(l) = st.link(port) else {
        return Ok(());
    };
    let Some(m) = l.master.as_deref().filter(|m| *m != name) else {
        return Ok(());
    };
    let held_by_profile = st
        .bound_to(port)
        .iter()
        .any(|c| !c.external && c.active_on(port) && c.p.port_type().is_some());
    if held_by_profile {
        return Ok(());
    }
    Err(Error::not_supported(format!(
        "option 'ports': {port} is already a port of {} '{m}', which NetworkManager does not manage (made with ip link or another tool); nm_bridge does not take a port from another bridge: remove it first (ip link set dev {port} nomaster) or manage '{m}' with nm_bridge",
        l.slave_kind().unwrap_or("controller")
    ))
    .with("port", port)
    .with("controller", m))
}

struct PortPlan {
    name: String,
    uuid: String,
    conn_name: String,
    existing: Option<Conn>,
    /// Attribute changes to an existing port profile.
    changes: Vec<(String, String)>,
    up: bool,
    held_by: Option<String>,
}

fn present(ctx: &mut Ctx, p: &Params, st: &State, b: &mut Builder) -> Result<()> {
    let name = p.name.as_str();
    let ports = p.port_list();

    // Ports must be NICs that exist, in every mode.
    if let Some(ports) = &ports {
        let missing: Vec<&str> = ports
            .iter()
            .filter(|x| st.link(x).is_none())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Error::invalid(format!(
                "option 'ports': {} does not exist on this host (NICs that do: {})",
                missing.join(", "),
                nic_names(st, name)
            )));
        }
        for port in ports {
            if let Some(l) = st.link(port) {
                if l.kind() == Some("bridge") {
                    return Err(Error::invalid(format!(
                        "option 'ports': {port} is itself a bridge; nm_bridge does not nest bridges"
                    )));
                }
            }
            foreign_controller(st, name, port)?;
        }
    }

    // The bridge profile: by interface name, preferring conn_name, then the active one.
    let cands = st.bridges_for(name);
    let chosen: Option<&Conn> = p
        .conn_name
        .as_ref()
        .and_then(|cn| cands.iter().copied().find(|c| c.id() == cn))
        .or_else(|| cands.iter().copied().find(|c| c.active_on(name)))
        .or_else(|| cands.first().copied());
    if let Some(ch) = chosen {
        let others: Vec<String> = cands
            .iter()
            .filter(|c| c.uuid != ch.uuid)
            .map(|c| format!("'{}' ({})", c.id(), c.uuid))
            .collect();
        if !others.is_empty() {
            ctx.warn(format!(
                "other bridge profiles also make {name}: {}; nm_bridge manages '{}' ({}) and leaves them as they are",
                others.join(", "),
                ch.id(),
                ch.uuid
            ));
        }
    }
    let conn_name = match (chosen, &p.conn_name) {
        (_, Some(cn)) => cn.clone(),
        (Some(c), None) => c.id().to_string(),
        (None, None) => p.default_conn_name(),
    };
    if chosen.is_none_or(|c| c.id() != conn_name) {
        if let Some(other) = st
            .conns
            .iter()
            .find(|c| c.id() == conn_name && chosen.is_none_or(|ch| ch.uuid != c.uuid))
        {
            return Err(Error::invalid(format!(
                "option 'conn_name': profile '{conn_name}' already exists ({}, type {}, interface {}) and is not a bridge profile for {name}; choose another conn_name",
                other.uuid,
                other.kind(),
                other.ifname().unwrap_or("any")
            )));
        }
    }

    let desired = desired_bridge(p);
    let bridge_uuid = match chosen {
        Some(c) => c.uuid.clone(),
        None => new_uuid()?,
    };
    let bridge_active = chosen.is_some_and(|c| c.active_on(name));
    let mut reactivate = false;
    let mut reapply = false;

    match chosen {
        None => {
            let mut argv = s(&[
                "nmcli",
                "con",
                "add",
                "type",
                "bridge",
                "ifname",
                name,
                "con-name",
                &conn_name,
                "connection.uuid",
                &bridge_uuid,
            ]);
            for (k, v) in &desired {
                argv.push(k.to_string());
                argv.push(v.clone());
            }
            b.push(Action::new(
                format!("create bridge profile {conn_name}"),
                argv,
            ));
            let mut after = Map::new();
            after.insert("connection.id".into(), json!(conn_name));
            after.insert("connection.type".into(), json!("bridge"));
            after.insert("connection.interface-name".into(), json!(name));
            for (k, v) in &desired {
                after.insert(k.to_string(), json!(v));
            }
            after.insert("state".into(), json!("activated"));
            b.plan.diffs.push(Diff::new(header(&conn_name), "", after));
        }
        Some(c) => {
            let mut changes: Vec<(String, String)> = Vec::new();
            if c.id() != conn_name {
                changes.push(("connection.id".into(), conn_name.clone()));
            }
            for (k, v) in &desired {
                if current(c, k) != *v {
                    changes.push((k.to_string(), v.clone()));
                    if *k == MAC_PROP {
                        reactivate = true;
                        if !norm_value(MAC_PROP, c.p.get("bridge.mac-address").unwrap_or(""))
                            .is_empty()
                        {
                            changes.push(("bridge.mac-address".into(), String::new()));
                        }
                    } else if *k != "connection.autoconnect" {
                        reapply = true;
                    }
                }
            }
            let before = snapshot(c, BRIDGE_TRACKED);
            let mut after = before.clone();
            if !changes.is_empty() {
                let mut argv = s(&["nmcli", "con", "mod", "uuid", &c.uuid]);
                for (k, v) in &changes {
                    argv.push(k.clone());
                    argv.push(v.clone());
                    if k != "bridge.mac-address" {
                        after.insert(k.clone(), json!(v));
                    }
                }
                let what: Vec<&str> = changes
                    .iter()
                    .filter(|(k, _)| k != "bridge.mac-address")
                    .map(|(k, _)| k.as_str())
                    .collect();
                b.push(Action::new(
                    format!("set {} on bridge profile {conn_name}", what.join(", ")),
                    argv,
                ));
            }
            after.insert("state".into(), json!("activated"));
            if before != after {
                b.plan.diffs.push(Diff::new(header(c.id()), before, after));
            }
        }
    }

    // Ports.
    let owner = chosen.cloned();
    let is_ours = |c: &Conn| !c.external && owner.as_ref().is_some_and(|o| is_port_of(c, o, name));
    let mut port_plans: Vec<PortPlan> = Vec::new();
    let mut new_disabled: Vec<Disabled> = Vec::new();
    let mut competitor_actions: Vec<Action> = Vec::new();
    let mut competitor_diffs: Vec<Diff> = Vec::new();
    let mut releases: Vec<String> = Vec::new();

    if let Some(list) = &ports {
        for port in list {
            let mine: Vec<&Conn> = st
                .conns
                .iter()
                .filter(|c| is_ours(c) && st.port_of(c).as_deref() == Some(port.as_str()))
                .collect();
            let pc: Option<&Conn> = mine
                .iter()
                .copied()
                .find(|c| c.active_on(port))
                .or_else(|| mine.first().copied());
            let competitors: Vec<&Conn> = st
                .bound_to(port)
                .into_iter()
                .filter(|c| pc.is_none_or(|x| x.uuid != c.uuid))
                .filter(|c| !cands.iter().any(|bc| bc.uuid == c.uuid))
                .collect();
            let kernel_in = st.link(port).and_then(|l| l.master.as_deref()) == Some(name);
            let mut pp = PortPlan {
                name: port.clone(),
                uuid: match pc {
                    Some(c) => c.uuid.clone(),
                    None => new_uuid()?,
                },
                conn_name: pc
                    .map(|c| c.id().to_string())
                    .unwrap_or_else(|| format!("bridge-slave-{port}")),
                existing: pc.cloned(),
                changes: Vec::new(),
                up: false,
                held_by: None,
            };
            if let Some(c) = pc {
                let m = c.p.controller().unwrap_or("");
                if m != bridge_uuid && m != name {
                    // A master given as a profile name never activates; a master that
                    // is another duplicate profile is repointed too.
                    pp.changes
                        .push((st.controller_key.clone(), bridge_uuid.clone()));
                }
            }
            if let Some(a) = p.autoconnect {
                let want = if a { "yes" } else { "no" };
                if pc.is_some_and(|c| current(c, "connection.autoconnect") != want) {
                    pp.changes
                        .push(("connection.autoconnect".into(), want.into()));
                }
            }
            let active_ok = pc.is_some_and(|c| c.active_on(port)) && kernel_in;
            pp.up = !active_ok
                || !pp
                    .changes
                    .iter()
                    .all(|(k, _)| k == "connection.autoconnect");
            if p.port_profiles == "keep" {
                if let Some(h) = competitors.iter().find(|c| c.active_on(port)) {
                    if pp.up {
                        pp.up = false;
                        pp.held_by = Some(h.id().to_string());
                        ctx.warn(format!(
                            "port {port} is held by profile '{}' ({}) and cannot activate in {name} while port_profiles is keep",
                            h.id(),
                            h.uuid
                        ));
                    }
                }
            }
            if pp.up && !kernel_in {
                releases.push(port.clone());
            }
            // Competing profiles.
            for c in &competitors {
                if p.port_profiles == "keep" {
                    continue;
                }
                let before = snapshot(c, OTHER_PROFILE_TRACKED);
                let mut after = before.clone();
                if p.port_profiles == "delete" {
                    competitor_actions.push(Action::new(
                        format!("delete profile {} that would hold {port}", c.id()),
                        s(&["nmcli", "con", "delete", "uuid", &c.uuid]),
                    ));
                    competitor_diffs.push(Diff::new(header(c.id()), before, ""));
                    continue;
                }
                let mut changed = false;
                if c.autoconnect() {
                    competitor_actions.push(Action::new(
                        format!(
                            "switch off autoconnect of profile {} that would hold {port}",
                            c.id()
                        ),
                        s(&[
                            "nmcli",
                            "con",
                            "mod",
                            "uuid",
                            &c.uuid,
                            "connection.autoconnect",
                            "no",
                        ]),
                    ));
                    after.insert("connection.autoconnect".into(), json!("no"));
                    changed = true;
                }
                if c.active() {
                    if !pp.up || !c.active_on(port) {
                        competitor_actions.push(Action::new(
                            format!("deactivate profile {}", c.id()),
                            s(&["nmcli", "con", "down", "uuid", &c.uuid]),
                        ));
                    }
                    after.insert("state".into(), json!("inactive"));
                    changed = true;
                }
                if changed {
                    new_disabled.push(Disabled {
                        uuid: c.uuid.clone(),
                        id: c.id().to_string(),
                        port: port.clone(),
                        was_active: c.active_on(port),
                        had_autoconnect: c.autoconnect(),
                    });
                    competitor_diffs.push(Diff::new(header(c.id()), before, after));
                }
            }
            port_plans.push(pp);
        }
    }

    // Refuse to take over a port that carries a global address the task does not decide.
    if !releases.is_empty() {
        for port in &releases {
            let Some(l) = st.link(port) else { continue };
            let v4: Vec<String> = l
                .addr_info
                .iter()
                .filter(|a| a.family == "inet" && a.scope != "host" && a.scope != "link")
                .map(|a| format!("{}/{}", a.local, a.prefixlen))
                .collect();
            let v6: Vec<String> = l
                .addr_info
                .iter()
                .filter(|a| a.family == "inet6" && a.scope == "global")
                .map(|a| format!("{}/{}", a.local, a.prefixlen))
                .collect();
            let mut lost: Vec<String> = Vec::new();
            let mut opts: Vec<&str> = Vec::new();
            if !v4.is_empty() && p.ipv4.is_none() {
                lost.extend(v4);
                opts.push("ipv4");
            }
            if !v6.is_empty() && p.ipv6.is_none() {
                lost.extend(v6);
                opts.push("ipv6");
            }
            if !lost.is_empty() {
                return Err(Error::invalid(format!(
                    "refusing to make {port} a port of {name}: {port} carries {}, which it would lose (the host could lose its connection); set the bridge's {} explicitly to decide the bridge's addresses (for example the same address on {name}), or remove the address from {port} first",
                    lost.join(", "),
                    opts.join(" and ")
                ))
                .with("port", port.clone())
                .with("addresses", json!(lost)));
            }
        }
        // NetworkManager must manage each port it is to activate.
        let out = ctx.read(&["nmcli", "-t", "-f", "DEVICE,STATE", "device"])?;
        let devs = kvmnet_nmcli::parse_list(&out.stdout);
        for port in &releases {
            match devs.iter().find(|r| r.first() == Some(port)) {
                Some(r) if r.get(1).is_some_and(|s| s.starts_with("unmanaged")) => {
                    return Err(Error::not_supported(format!(
                        "NetworkManager does not manage {port} (device state unmanaged), so it cannot make it a port of {name}; let NetworkManager manage it first"
                    )));
                }
                None => {
                    return Err(Error::not_supported(format!(
                        "NetworkManager does not know the device {port}, so it cannot make it a port of {name}"
                    )));
                }
                _ => {}
            }
        }
    }

    // Competing profiles go first, so nothing re-takes a port we are about to activate.
    let mut restores: Vec<Disabled> = Vec::new();
    let mut removals: Vec<&Conn> = Vec::new();
    if let Some(list) = &ports {
        removals = st
            .conns
            .iter()
            .filter(|c| is_ours(c))
            .filter(|c| st.port_of(c).is_none_or(|x| !list.contains(&x)))
            .collect();
    }
    let mut memory: Option<Memory> = None;
    if !new_disabled.is_empty() || !removals.is_empty() {
        memory = Some(Memory::read(ctx, name)?);
    }
    for a in competitor_actions {
        b.push(a);
    }
    b.plan.diffs.extend(competitor_diffs);

    // Port profiles: create or repair.
    for pp in &port_plans {
        match &pp.existing {
            None => {
                let mut argv = s(&[
                    "nmcli",
                    "con",
                    "add",
                    "type",
                    "bridge-slave",
                    "ifname",
                    &pp.name,
                    "master",
                    &bridge_uuid,
                    "con-name",
                    &pp.conn_name,
                    "connection.uuid",
                    &pp.uuid,
                ]);
                if let Some(a) = p.autoconnect {
                    argv.push("connection.autoconnect".into());
                    argv.push(if a { "yes" } else { "no" }.into());
                }
                b.push(Action::new(
                    format!(
                        "create port profile {} for {} in {name}",
                        pp.conn_name, pp.name
                    ),
                    argv,
                ));
                let mut after = Map::new();
                after.insert("connection.id".into(), json!(pp.conn_name));
                after.insert("connection.type".into(), json!("802-3-ethernet"));
                after.insert("connection.interface-name".into(), json!(pp.name));
                after.insert(st.controller_key.clone(), json!(bridge_uuid));
                after.insert(st.port_type_key.clone(), json!("bridge"));
                if let Some(a) = p.autoconnect {
                    after.insert(
                        "connection.autoconnect".into(),
                        json!(if a { "yes" } else { "no" }),
                    );
                }
                after.insert(
                    "state".into(),
                    json!(if pp.held_by.is_some() {
                        "inactive"
                    } else {
                        "activated"
                    }),
                );
                b.plan
                    .diffs
                    .push(Diff::new(header(&pp.conn_name), "", after));
            }
            Some(c) => {
                let before = snapshot(c, &port_keys(st));
                let mut after = before.clone();
                if !pp.changes.is_empty() {
                    let mut argv = s(&["nmcli", "con", "mod", "uuid", &c.uuid]);
                    for (k, v) in &pp.changes {
                        argv.push(k.clone());
                        argv.push(v.clone());
                        after.insert(k.clone(), json!(v));
                    }
                    let repair = pp.changes.iter().any(|(k, _)| *k == st.controller_key);
                    let summary = if repair {
                        format!(
                            "repair port profile {}: its master '{}' is not usable, set it to {bridge_uuid}",
                            c.id(),
                            c.p.controller().unwrap_or("")
                        )
                    } else {
                        format!("set connection.autoconnect on port profile {}", c.id())
                    };
                    b.push(Action::new(summary, argv));
                }
                if pp.up || reactivate {
                    after.insert("state".into(), json!("activated"));
                }
                if before != after {
                    b.plan.diffs.push(Diff::new(header(c.id()), before, after));
                }
            }
        }
    }

    // Ports no longer listed: remove their profiles, give back what was switched off.
    for c in &removals {
        b.push(Action::new(
            format!(
                "delete port profile {} ({} is not in ports)",
                c.id(),
                st.port_of(c).unwrap_or_else(|| "no interface".into())
            ),
            s(&["nmcli", "con", "delete", "uuid", &c.uuid]),
        ));
        b.plan
            .diffs
            .push(Diff::new(header(c.id()), snapshot(c, &port_keys(st)), ""));
        if let (Some(m), Some(port)) = (memory.as_mut(), st.port_of(c)) {
            let (back, keep): (Vec<Disabled>, Vec<Disabled>) =
                m.disabled.drain(..).partition(|d| d.port == port);
            m.disabled = keep;
            restores.extend(back);
        }
    }
    restore_actions(st, &restores, b);

    if let Some(mut m) = memory {
        let before = m.clone();
        for d in new_disabled {
            if !m.disabled.iter().any(|x| x.uuid == d.uuid) {
                m.disabled.push(d);
            }
        }
        if m != before || !restores.is_empty() {
            for a in m.save(name) {
                b.push(a);
            }
        }
    }

    // Activation: settings of an active bridge must reach the kernel.
    let mut up_ports: Vec<&PortPlan> = port_plans
        .iter()
        .filter(|pp| pp.held_by.is_none() && (pp.up || reactivate))
        .collect();
    if bridge_active && reactivate {
        b.push(Action::new(
            format!("re-activate {conn_name} so that {name} takes the new MAC address"),
            s(&["nmcli", "con", "up", "uuid", &bridge_uuid]),
        ));
    } else if bridge_active && reapply {
        let ports_back: Vec<String> = port_plans
            .iter()
            .filter(|pp| pp.held_by.is_none())
            .map(|pp| pp.uuid.clone())
            .collect();
        b.push_with(
            Action::new(
                format!("apply the changed settings to {name}"),
                s(&["nmcli", "dev", "reapply", name]),
            ),
            OnFail::Reactivate {
                bridge: bridge_uuid.clone(),
                ports: ports_back,
            },
        );
    } else if !bridge_active {
        b.push(Action::new(
            format!("activate {conn_name}"),
            s(&["nmcli", "con", "up", "uuid", &bridge_uuid]),
        ));
        // Existing, unchanged ports came down with the bridge: bring them back too.
        up_ports = port_plans
            .iter()
            .filter(|pp| pp.held_by.is_none())
            .collect();
    }
    for pp in up_ports {
        b.push(Action::new(
            format!("activate port {} in {name}", pp.name),
            s(&["nmcli", "con", "up", "uuid", &pp.uuid]),
        ));
    }

    // Return values: the bridge and its ports as they will be.
    let check = ctx.check_mode();
    let uuid_or_null = |u: &str, exists: bool| -> Value {
        if exists || !check {
            json!(u)
        } else {
            Value::Null
        }
    };
    b.plan.set(
        "bridge",
        json!({"name": name, "uuid": uuid_or_null(&bridge_uuid, chosen.is_some()), "conn_name": conn_name}),
    );
    let port_values: Vec<Value> = match &ports {
        Some(_) => port_plans
            .iter()
            .map(|pp| {
                json!({"name": pp.name, "uuid": uuid_or_null(&pp.uuid, pp.existing.is_some()),
                       "conn_name": pp.conn_name, "active": pp.held_by.is_none()})
            })
            .collect(),
        None => st
            .conns
            .iter()
            .filter(|c| is_ours(c))
            .map(|c| {
                json!({"name": st.port_of(c), "uuid": c.uuid, "conn_name": c.id(),
                       "active": c.active()})
            })
            .collect(),
    };
    b.plan.set("ports", Value::Array(port_values));
    Ok(())
}

/// What the diff shows of another profile this module switches off, deletes or gives back.
const OTHER_PROFILE_TRACKED: &[&str] = &[
    "connection.id",
    "connection.type",
    "connection.interface-name",
    "connection.autoconnect",
];

fn restore_actions(st: &State, restores: &[Disabled], b: &mut Builder) {
    for d in restores {
        let Some(c) = st.conn(&d.uuid) else { continue };
        let before = snapshot(c, OTHER_PROFILE_TRACKED);
        let mut after = before.clone();
        if d.had_autoconnect && !c.autoconnect() {
            b.push(Action::new(
                format!("switch autoconnect of profile {} back on", c.id()),
                s(&[
                    "nmcli",
                    "con",
                    "mod",
                    "uuid",
                    &c.uuid,
                    "connection.autoconnect",
                    "yes",
                ]),
            ));
            after.insert("connection.autoconnect".into(), json!("yes"));
        }
        if d.was_active && !c.active() {
            b.push_with(
                Action::new(
                    format!("activate profile {} on {} again", c.id(), d.port),
                    s(&["nmcli", "con", "up", "uuid", &c.uuid]),
                ),
                OnFail::Warn,
            );
            after.insert("state".into(), json!("activated"));
        }
        if before != after {
            b.plan.diffs.push(Diff::new(header(c.id()), before, after));
        }
    }
}

fn absent(ctx: &mut Ctx, p: &Params, st: &State, b: &mut Builder) -> Result<()> {
    let name = p.name.as_str();
    let cands = st.bridges_for(name);
    let ports: Vec<&Conn> = st
        .conns
        .iter()
        .filter(|c| !c.external && cands.iter().any(|bc| is_port_of(c, bc, name)))
        .collect();
    let mut uuids: Vec<&str> = Vec::new();
    for c in cands.iter().chain(ports.iter()) {
        uuids.push(&c.uuid);
        let keys: Vec<&str> = if c.kind() == "bridge" {
            BRIDGE_TRACKED.to_vec()
        } else {
            port_keys(st)
        };
        b.plan
            .diffs
            .push(Diff::new(header(c.id()), snapshot(c, &keys), ""));
    }
    if !uuids.is_empty() {
        let mut argv = s(&["nmcli", "con", "delete"]);
        for u in &uuids {
            argv.push("uuid".into());
            argv.push(u.to_string());
        }
        let names: Vec<String> = cands
            .iter()
            .chain(ports.iter())
            .map(|c| c.id().to_string())
            .collect();
        b.push_with(
            Action::new(format!("delete profiles {}", names.join(", ")), argv),
            OnFail::Gone,
        );
    }
    let memory = Memory::read(ctx, name)?;
    if !memory.disabled.is_empty() {
        restore_actions(st, &memory.disabled, b);
        for a in Memory::default().save(name) {
            b.push(a);
        }
    }
    b.plan.set(
        "bridge",
        json!({"name": name, "uuid": Value::Null, "conn_name": Value::Null}),
    );
    b.plan.set("ports", json!([]));
    let restored: Vec<Value> = memory
        .disabled
        .iter()
        .filter(|d| st.conn(&d.uuid).is_some())
        .map(|d| json!({"name": d.port, "uuid": d.uuid, "conn_name": d.id}))
        .collect();
    b.plan.set("restored", Value::Array(restored));
    if !b.plan.changed() {
        b.plan.msg = Some(format!("no bridge profile for {name}: nothing to remove"));
    }
    Ok(())
}
