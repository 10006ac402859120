//! Pure: the options and what current.rs read -> the typed desired state, the steps
//! (apply.rs), the diff and the return values. It never reads the host.

use crate::apply::{Action, Ref, Repair};
use crate::checkpoint::Taken;
use crate::current::Current;
use crate::guard::{self, Guard};
use crate::inherit::{self, Source};
use crate::memory::{Disabled, Memory, TakenOver};
use crate::params::{desired_bridge, norm_value, Params, PortProfiles, State, MAC_PROP, MTU_PROP};
use crate::takeover;
use kvmnet_nmcli::conn::Conn;
use kvmnet_nmcli::is_port_of;
use kvmnet_protocol::{Diff, Env, Error, Result};
use serde_json::{json, Map, Value};

pub type Plan = kvmnet_protocol::Plan<Desired, Action>;

/// What the run aims at, for apply, verify and the return values.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub name: String,
    pub present: bool,
    /// `state: present`: the bridge profile.
    pub bridge: BridgeTarget,
    /// `state: present`: the ports (the listed ones, or the existing ones when `ports` is
    /// not given).
    pub ports: Vec<PortTarget>,
    /// `state: absent`: plain profiles made for ports whose old profile was deleted.
    pub given_back: Vec<PortTarget>,
    /// The change can cut the host off: it runs inside a checkpoint, and this must hold.
    pub guard: Option<Guard>,
    /// The checkpoint apply took (until verify commits or rolls back).
    pub checkpoint: Option<Taken>,
    /// `state: absent`: every profile to delete was already gone when apply came to it
    /// (another actor deleted them since the read): that step changed nothing.
    pub already_gone: bool,
}

#[derive(Debug, Clone, Default)]
pub struct BridgeTarget {
    /// `None` until NetworkManager assigns it to the profile this run creates.
    pub uuid: Option<String>,
    pub conn_name: String,
    /// The properties the task asks for: (NM property, normalised value).
    pub settings: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct PortTarget {
    /// The interface (`None`: an existing port profile bound to nothing found).
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub conn_name: String,
    /// Expected active in the bridge (verify checks it).
    pub active: bool,
}

pub fn plan(env: &mut Env, p: &Params, cur: &Current) -> Result<Plan> {
    if let Some(pending) = &cur.pending {
        return Err(pending.error("taken by an earlier run that did not finish"));
    }
    let mut plan = match p.state {
        State::Present => present(env, p, cur)?,
        State::Absent => absent(env, p, cur)?,
    };
    if let Some(left) = &cur.leftover {
        takeover::put_back(env, p, cur, left, &mut plan);
    }
    Ok(plan)
}

// ---------------------------------------------------------------------------------------
// Comparable values, snapshots, headers

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

/// What the diff shows of another profile this module switches off, deletes or gives back.
const OTHER_PROFILE_TRACKED: &[&str] = &[
    "connection.id",
    "connection.type",
    "connection.interface-name",
    "connection.autoconnect",
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

fn activation(c: &Conn) -> &'static str {
    match c.state.as_str() {
        "activated" => "activated",
        "activating" => "activating",
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
    m.insert("state".into(), json!(activation(c)));
    m
}

fn port_keys(cur: &Current) -> Vec<&'static str> {
    vec![
        "connection.id",
        "connection.type",
        "connection.interface-name",
        cur.conns.controller_key(),
        cur.conns.port_type_key(),
        "connection.autoconnect",
    ]
}

fn header(id: &str) -> String {
    format!("nm profile {id}")
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

// ---------------------------------------------------------------------------------------
// Refusals

/// NICs a port could be: every link except loopback and bridges.
fn nic_names(cur: &Current, bridge: &str) -> String {
    let names: Vec<&str> = cur
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

/// Ports must be NICs that exist (in every mode), not bridges, and not held by a
/// controller no NetworkManager profile can take them from.
fn check_ports(cur: &Current, name: &str, ports: &[String]) -> Result<()> {
    let missing: Vec<&str> = ports
        .iter()
        .filter(|x| cur.link(x).is_none())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "option 'ports': {} does not exist on this host (NICs that do: {})",
            missing.join(", "),
            nic_names(cur, name)
        )));
    }
    for port in ports {
        if cur.link(port).is_some_and(|l| l.kind() == Some("bridge")) {
            return Err(Error::invalid(format!(
                "option 'ports': {port} is itself a bridge; nm_bridge does not nest bridges"
            )));
        }
        foreign_controller(cur, name, port)?;
    }
    Ok(())
}

/// Refuse a port that the kernel has in another controller (a bridge or bond) that no
/// NetworkManager profile of ours can take it from: a bridge made with `ip link` or by
/// another tool. Taking the port would silently break that bridge; the plan could not
/// even show it. A port held by another NM profile is different: the plan switches that
/// profile off, visibly.
fn foreign_controller(cur: &Current, name: &str, port: &str) -> Result<()> {
    let Some(l) = cur.link(port) else {
        return Ok(());
    };
    let Some(m) = l.master.as_deref().filter(|m| *m != name) else {
        return Ok(());
    };
    let held_by_profile = cur
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

/// Refuse to take over a port that carries a global address the task does not decide
/// (`inherit` decides: the bridge takes it over).
fn check_addresses(p: &Params, cur: &Current, taken: &[String]) -> Result<()> {
    let name = &p.name;
    if p.inherit {
        return Ok(());
    }
    for port in taken {
        let Some(l) = cur.link(port) else { continue };
        let of = |v6: bool| -> Vec<String> {
            l.addr_info
                .iter()
                .filter(|a| match v6 {
                    false => a.family == "inet" && a.scope != "host" && a.scope != "link",
                    true => a.family == "inet6" && a.scope == "global",
                })
                .map(|a| format!("{}/{}", a.local, a.prefixlen))
                .collect()
        };
        let (v4, v6) = (of(false), of(true));
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
                "refusing to make {port} a port of {name}: {port} carries {}, which it would lose (the host could lose its connection); set inherit: true to move {port}'s IP configuration and MAC address to {name}, or set the bridge's {} explicitly to decide the bridge's addresses (for example the same address on {name}), or remove the address from {port} first",
                lost.join(", "),
                opts.join(" and ")
            ))
            .with("port", port.clone())
            .with("addresses", json!(lost)));
        }
    }
    Ok(())
}

/// NetworkManager must manage each port it is to activate.
fn check_managed(cur: &Current, name: &str, taken: &[String]) -> Result<()> {
    if taken.is_empty() {
        return Ok(());
    }
    let Some(devs) = &cur.devices else {
        return Err(Error::bug(
            "NetworkManager's devices were not read, yet a port is to be taken into the bridge",
        ));
    };
    for port in taken {
        match devs.iter().find(|d| d.name == *port) {
            Some(d) if !d.managed() => {
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
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The bridge profile

/// The bridge profile to manage, and the name it will have.
struct Chosen<'a> {
    /// Every bridge profile for the interface.
    cands: Vec<&'a Conn>,
    conn: Option<&'a Conn>,
    conn_name: String,
}

impl Chosen<'_> {
    fn reference(&self) -> Ref {
        match self.conn {
            Some(c) => Ref::Uuid(c.uuid.clone()),
            None => Ref::NewBridge(self.conn_name.clone()),
        }
    }
    /// Whether `c` is a port profile of the chosen bridge (guests' generated ones never).
    fn owns(&self, c: &Conn, name: &str) -> bool {
        !c.external && self.conn.is_some_and(|o| is_port_of(c, o, name))
    }
}

/// By interface name, preferring conn_name, then the active one.
fn choose_bridge<'a>(p: &Params, cur: &'a Current) -> Chosen<'a> {
    let name = p.name.as_str();
    let cands = cur.conns.bridges_for(name);
    let conn: Option<&Conn> = p
        .conn_name
        .as_ref()
        .and_then(|cn| cands.iter().copied().find(|c| c.id() == cn))
        .or_else(|| cands.iter().copied().find(|c| c.active_on(name)))
        .or_else(|| cands.first().copied());
    let conn_name = match (conn, &p.conn_name) {
        (_, Some(cn)) => cn.clone(),
        (Some(c), None) => c.id().to_string(),
        (None, None) => p.default_conn_name(),
    };
    Chosen {
        cands,
        conn,
        conn_name,
    }
}

/// Other bridge profiles that make the same interface are left alone, said so.
fn duplicates_warning(ch: &Chosen, name: &str) -> Option<String> {
    let c = ch.conn?;
    let others: Vec<String> = ch
        .cands
        .iter()
        .filter(|o| o.uuid != c.uuid)
        .map(|o| format!("'{}' ({})", o.id(), o.uuid))
        .collect();
    (!others.is_empty()).then(|| {
        format!(
            "other bridge profiles also make {name}: {}; nm_bridge manages '{}' ({}) and leaves them as they are",
            others.join(", "),
            c.id(),
            c.uuid
        )
    })
}

/// The profile name the bridge will have must not belong to another profile.
fn check_conn_name(cur: &Current, name: &str, ch: &Chosen) -> Result<()> {
    let cn = &ch.conn_name;
    if ch.conn.is_some_and(|c| c.id() == cn) {
        return Ok(());
    }
    let Some(other) = cur
        .conns
        .conns
        .iter()
        .find(|c| c.id() == cn && ch.conn.is_none_or(|x| x.uuid != c.uuid))
    else {
        return Ok(());
    };
    Err(Error::invalid(format!(
        "option 'conn_name': profile '{cn}' already exists ({}, type {}, interface {}) and is not a bridge profile for {name}; choose another conn_name",
        other.uuid,
        other.kind(),
        other.ifname().unwrap_or("any")
    )))
}

/// The bridge profile's step and diff, and how an active bridge takes the change.
#[derive(Default)]
struct BridgeChange {
    action: Option<Action>,
    diff: Option<Diff>,
    /// A new MAC: the bridge must be re-activated.
    reactivate: bool,
    /// Other settings: reapplied to the running bridge (NetworkManager's Device.Reapply).
    reapply: bool,
}

fn create_bridge(p: &Params, ch: &Chosen, settings: &[(&'static str, String)]) -> BridgeChange {
    let pairs: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let mut after = Map::new();
    after.insert("connection.id".into(), json!(ch.conn_name));
    after.insert("connection.type".into(), json!("bridge"));
    after.insert("connection.interface-name".into(), json!(p.name));
    for (k, v) in &pairs {
        after.insert(k.clone(), json!(v));
    }
    after.insert("state".into(), json!("activated"));
    BridgeChange {
        action: Some(Action::CreateBridge {
            name: p.name.clone(),
            conn_name: ch.conn_name.clone(),
            settings: pairs,
        }),
        diff: Some(Diff::new(header(&ch.conn_name), "", after)),
        ..BridgeChange::default()
    }
}

fn modify_bridge(c: &Conn, conn_name: &str, settings: &[(&'static str, String)]) -> BridgeChange {
    let mut bc = BridgeChange::default();
    let mut changes: Vec<(String, String)> = Vec::new();
    if c.id() != conn_name {
        changes.push(("connection.id".into(), conn_name.to_string()));
    }
    for (k, v) in settings {
        if current(c, k) == *v {
            continue;
        }
        changes.push((k.to_string(), v.clone()));
        if *k == MAC_PROP {
            bc.reactivate = true;
            if !norm_value(MAC_PROP, c.p.get("bridge.mac-address").unwrap_or("")).is_empty() {
                changes.push(("bridge.mac-address".into(), String::new()));
            }
        } else if *k != "connection.autoconnect" {
            bc.reapply = true;
        }
    }
    let before = snapshot(c, BRIDGE_TRACKED);
    let mut after = before.clone();
    for (k, v) in changes.iter().filter(|(k, _)| k != "bridge.mac-address") {
        after.insert(k.clone(), json!(v));
    }
    after.insert("state".into(), json!("activated"));
    if !changes.is_empty() {
        bc.action = Some(Action::ModifyBridge {
            uuid: c.uuid.clone(),
            conn_name: conn_name.to_string(),
            changes,
        });
    }
    if before != after {
        bc.diff = Some(Diff::new(header(c.id()), before, after));
    }
    bc
}

// ---------------------------------------------------------------------------------------
// Ports

/// What becomes of one listed port.
struct PortPlan<'a> {
    name: String,
    existing: Option<&'a Conn>,
    conn_name: String,
    /// Changes to an existing port profile.
    changes: Vec<(String, String)>,
    /// Its controller is repointed (what it was).
    repair: Option<String>,
    /// To be activated.
    up: bool,
    /// Kept out of the bridge by this profile (`port_profiles: keep`).
    held_by: Option<&'a Conn>,
    /// The kernel already has it in the bridge.
    kernel_in: bool,
    /// Other profiles that would hold it.
    competitors: Vec<&'a Conn>,
}

impl PortPlan<'_> {
    fn reference(&self) -> Ref {
        match self.existing {
            Some(c) => Ref::Uuid(c.uuid.clone()),
            None => Ref::NewPort {
                port: self.name.clone(),
                conn_name: self.conn_name.clone(),
            },
        }
    }
    /// Taken into the bridge by this run.
    fn taken(&self) -> bool {
        self.up && !self.kernel_in
    }
}

fn analyse_ports<'a>(
    p: &Params,
    cur: &'a Current,
    ch: &Chosen<'a>,
    list: &[String],
) -> Vec<PortPlan<'a>> {
    list.iter()
        .map(|port| analyse_port(p, cur, ch, port))
        .collect()
}

fn analyse_port<'a>(p: &Params, cur: &'a Current, ch: &Chosen<'a>, port: &str) -> PortPlan<'a> {
    let name = p.name.as_str();
    let mine: Vec<&Conn> = cur
        .conns
        .conns
        .iter()
        .filter(|c| ch.owns(c, name) && cur.port_of(c).as_deref() == Some(port))
        .collect();
    let pc: Option<&Conn> = mine
        .iter()
        .copied()
        .find(|c| c.active_on(port))
        .or_else(|| mine.first().copied());
    let competitors: Vec<&Conn> = cur
        .bound_to(port)
        .into_iter()
        .filter(|c| pc.is_none_or(|x| x.uuid != c.uuid))
        .filter(|c| !ch.cands.iter().any(|bc| bc.uuid == c.uuid))
        .collect();
    let kernel_in = cur.link(port).and_then(|l| l.master.as_deref()) == Some(name);
    let mut pp = PortPlan {
        name: port.to_string(),
        existing: pc,
        conn_name: pc
            .map(|c| c.id().to_string())
            .unwrap_or_else(|| format!("bridge-slave-{port}")),
        changes: Vec::new(),
        repair: None,
        up: false,
        held_by: None,
        kernel_in,
        competitors,
    };
    if let (Some(c), Some(bridge)) = (pc, ch.conn) {
        let m = c.p.controller().unwrap_or("");
        if m != bridge.uuid && m != name {
            // A master given as a profile name never activates; a master that is another
            // duplicate profile is repointed too.
            pp.changes
                .push((cur.conns.controller_key().into(), bridge.uuid.clone()));
            pp.repair = Some(m.to_string());
        }
    }
    if let (Some(a), Some(c)) = (p.autoconnect, pc) {
        if current(c, "connection.autoconnect") != yes_no(a) {
            pp.changes
                .push(("connection.autoconnect".into(), yes_no(a).into()));
        }
    }
    let active_ok = pc.is_some_and(|c| c.active_on(port)) && kernel_in;
    pp.up = !active_ok || pp.repair.is_some();
    if p.port_profiles == PortProfiles::Keep && pp.up {
        if let Some(h) = pp.competitors.iter().find(|c| c.active_on(port)) {
            pp.up = false;
            pp.held_by = Some(h);
        }
    }
    pp
}

/// The ports this run takes into the bridge, when the task can go that far: current.rs
/// reads NetworkManager's devices only when this is not empty (a no-change run, or one
/// refused before, needs no device list).
pub fn ports_to_take(p: &Params, cur: &Current) -> Vec<String> {
    let Some(list) = p.port_list().filter(|_| p.present()) else {
        return Vec::new();
    };
    if check_ports(cur, &p.name, &list).is_err() {
        return Vec::new();
    }
    let ch = choose_bridge(p, cur);
    if check_conn_name(cur, &p.name, &ch).is_err() {
        return Vec::new();
    }
    let taken = taken(&analyse_ports(p, cur, &ch, &list));
    if check_addresses(p, cur, &taken).is_err() {
        return Vec::new();
    }
    taken
}

fn taken(pps: &[PortPlan]) -> Vec<String> {
    pps.iter()
        .filter(|pp| pp.taken())
        .map(|pp| pp.name.clone())
        .collect()
}

/// Steps and diffs for the other profiles that would hold the ports, and what is to be
/// remembered of the ones switched off.
#[derive(Default)]
struct Competition {
    actions: Vec<Action>,
    diffs: Vec<Diff>,
    disabled: Vec<Disabled>,
}

fn compete(p: &Params, pps: &[PortPlan]) -> Competition {
    let mut out = Competition::default();
    if p.port_profiles == PortProfiles::Keep {
        return out;
    }
    for pp in pps {
        for c in &pp.competitors {
            let before = snapshot(c, OTHER_PROFILE_TRACKED);
            if p.port_profiles == PortProfiles::Delete {
                out.actions.push(Action::DeleteProfile {
                    uuid: c.uuid.clone(),
                    id: c.id().to_string(),
                    port: pp.name.clone(),
                });
                out.diffs.push(Diff::new(header(c.id()), before, ""));
                continue;
            }
            switch_off(c, pp, before, &mut out);
        }
    }
    out
}

/// `port_profiles: disable`: autoconnect off and deactivated (unless activating the port
/// takes the device from it anyway), remembered.
fn switch_off(c: &Conn, pp: &PortPlan, before: Map<String, Value>, out: &mut Competition) {
    let mut after = before.clone();
    if c.autoconnect() {
        out.actions.push(Action::DisableProfile {
            uuid: c.uuid.clone(),
            id: c.id().to_string(),
            port: pp.name.clone(),
        });
        after.insert("connection.autoconnect".into(), json!("no"));
    }
    if c.active() {
        if !pp.up || !c.active_on(&pp.name) {
            out.actions.push(Action::DeactivateProfile {
                uuid: c.uuid.clone(),
                id: c.id().to_string(),
            });
        }
        after.insert("state".into(), json!("inactive"));
    }
    if c.autoconnect() || c.active() {
        out.disabled.push(Disabled {
            uuid: c.uuid.clone(),
            id: c.id().to_string(),
            port: pp.name.clone(),
            was_active: c.active_on(&pp.name),
            had_autoconnect: c.autoconnect(),
        });
        out.diffs.push(Diff::new(header(c.id()), before, after));
    }
}

/// A new port profile, or the changes to an existing one.
fn port_step(
    cur: &Current,
    p: &Params,
    ch: &Chosen,
    pp: &PortPlan,
    reactivate: bool,
    plan: &mut Plan,
) {
    let Some(c) = pp.existing else {
        return create_port(cur, p, ch, pp, plan);
    };
    let before = snapshot(c, &port_keys(cur));
    let mut after = before.clone();
    if !pp.changes.is_empty() {
        for (k, v) in &pp.changes {
            after.insert(k.clone(), json!(v));
        }
        plan.push(Action::ModifyPort {
            uuid: c.uuid.clone(),
            id: c.id().to_string(),
            changes: pp.changes.clone(),
            repair: pp.repair.as_ref().map(|was| Repair {
                was: was.clone(),
                bridge_uuid: ch.reference().shown(),
            }),
        });
    }
    if pp.up || reactivate {
        after.insert("state".into(), json!("activated"));
    }
    if before != after {
        plan.diffs.push(Diff::new(header(c.id()), before, after));
    }
}

fn create_port(cur: &Current, p: &Params, ch: &Chosen, pp: &PortPlan, plan: &mut Plan) {
    let mut after = Map::new();
    after.insert("connection.id".into(), json!(pp.conn_name));
    after.insert("connection.type".into(), json!("802-3-ethernet"));
    after.insert("connection.interface-name".into(), json!(pp.name));
    after.insert(
        cur.conns.controller_key().into(),
        json!(ch.reference().shown()),
    );
    after.insert(cur.conns.port_type_key().into(), json!("bridge"));
    if let Some(a) = p.autoconnect {
        after.insert("connection.autoconnect".into(), json!(yes_no(a)));
    }
    let state = if pp.held_by.is_some() {
        "inactive"
    } else {
        "activated"
    };
    after.insert("state".into(), json!(state));
    plan.push(Action::CreatePort {
        port: pp.name.clone(),
        bridge_name: p.name.clone(),
        conn_name: pp.conn_name.clone(),
        master: ch.reference(),
        autoconnect: p.autoconnect,
    });
    plan.diffs.push(Diff::new(header(&pp.conn_name), "", after));
}

/// Port profiles of the bridge whose interface is no longer listed.
fn removals<'a>(cur: &'a Current, ch: &Chosen, name: &str, list: &[String]) -> Vec<&'a Conn> {
    cur.conns
        .conns
        .iter()
        .filter(|c| ch.owns(c, name))
        .filter(|c| cur.port_of(c).is_none_or(|x| !list.contains(&x)))
        .collect()
}

/// Delete the unlisted port profiles, give back what was switched off for their ports,
/// and keep the memory file up to date.
fn remove_and_remember(
    env: &mut Env,
    cur: &Current,
    name: &str,
    removed: &[&Conn],
    remember: (Vec<Disabled>, Option<TakenOver>),
    plan: &mut Plan,
) {
    let (disabled, taken_over) = remember;
    if disabled.is_empty() && removed.is_empty() && taken_over.is_none() {
        return;
    }
    if let Some(w) = cur.remembered.warning(name) {
        env.warn(w);
    }
    let mut m: Memory = cur.remembered.memory.clone();
    let mut restores: Vec<Disabled> = Vec::new();
    for c in removed {
        let port = cur.port_of(c);
        plan.push(Action::DeletePort {
            uuid: c.uuid.clone(),
            id: c.id().to_string(),
            port: port.clone(),
        });
        plan.diffs
            .push(Diff::new(header(c.id()), snapshot(c, &port_keys(cur)), ""));
        if let Some(port) = port {
            let (back, keep): (Vec<Disabled>, Vec<Disabled>) =
                m.disabled.drain(..).partition(|d| d.port == port);
            m.disabled = keep;
            m.taken_over.retain(|t| t.port != port);
            restores.extend(back);
        }
    }
    restore(cur, &restores, plan);
    let before = m.clone();
    for d in disabled {
        if !m.disabled.iter().any(|x| x.uuid == d.uuid) {
            m.disabled.push(d);
        }
    }
    if let Some(t) = taken_over {
        m.taken_over.retain(|x| x.port != t.port);
        m.taken_over.push(t);
    }
    if m != before || !restores.is_empty() {
        save(name, &m, plan);
    }
}

/// Give back profiles switched off earlier (those still on the host).
fn restore(cur: &Current, restores: &[Disabled], plan: &mut Plan) {
    for d in restores {
        let Some(c) = cur.conn(&d.uuid) else { continue };
        let before = snapshot(c, OTHER_PROFILE_TRACKED);
        let mut after = before.clone();
        if d.had_autoconnect && !c.autoconnect() {
            plan.push(Action::EnableProfile {
                uuid: c.uuid.clone(),
                id: c.id().to_string(),
            });
            after.insert("connection.autoconnect".into(), json!("yes"));
        }
        if d.was_active && !c.active() {
            plan.push(Action::RestoreProfile {
                uuid: c.uuid.clone(),
                id: c.id().to_string(),
                port: d.port.clone(),
            });
            after.insert("state".into(), json!("activated"));
        }
        if before != after {
            plan.diffs.push(Diff::new(header(c.id()), before, after));
        }
    }
}

/// Write the memory file, or remove it when it would be empty.
fn save(name: &str, m: &Memory, plan: &mut Plan) {
    if m.is_empty() {
        plan.push(Action::Forget {
            bridge: name.to_string(),
        });
        return;
    }
    plan.push(Action::MakeMemoryDir);
    plan.push(Action::Remember {
        bridge: name.to_string(),
        body: m.body(),
    });
}

/// Settings of an active bridge must reach the kernel; ports come up in the bridge. A
/// bridge activated again takes its ports down: the listed ones, or, when the task lists
/// none, the ones active now (`others`: profile and interface), are activated again after
/// it.
fn activate(
    ch: &Chosen,
    name: &str,
    pps: &[PortPlan],
    others: &[(Ref, String)],
    bc: &BridgeChange,
    plan: &mut Plan,
) {
    let free: Vec<&PortPlan> = pps.iter().filter(|pp| pp.held_by.is_none()).collect();
    let mut up: Vec<(Ref, String)> = free
        .iter()
        .filter(|pp| pp.up || bc.reactivate)
        .map(|pp| (pp.reference(), pp.name.clone()))
        .collect();
    let all: Vec<(Ref, String)> = free
        .iter()
        .map(|pp| (pp.reference(), pp.name.clone()))
        .chain(others.iter().cloned())
        .collect();
    let bridge_up = |new_mac| Action::ActivateBridge {
        bridge: ch.reference(),
        conn_name: ch.conn_name.clone(),
        name: name.to_string(),
        new_mac,
    };
    match (
        ch.conn.filter(|c| c.active_on(name)),
        bc.reactivate,
        bc.reapply,
    ) {
        (Some(_), true, _) => {
            plan.push(bridge_up(true));
            up.extend(others.iter().cloned());
        }
        (Some(c), false, true) => plan.push(Action::Reapply {
            name: name.to_string(),
            bridge: c.uuid.clone(),
            ports: all.into_iter().map(|(r, _)| r).collect(),
        }),
        (Some(_), false, false) => {}
        (None, _, _) => {
            plan.push(bridge_up(false));
            // Existing, unchanged ports came down with the bridge: bring them back too.
            up = all;
        }
    }
    for (port, ifname) in up {
        plan.push(Action::ActivatePort {
            port,
            ifname,
            bridge_name: name.to_string(),
        });
    }
}

/// With no `ports` given: the port profiles of the bridge active now, which come down
/// with it if it is activated again.
fn active_ports(p: &Params, cur: &Current, ch: &Chosen) -> Vec<(Ref, String)> {
    if p.port_list().is_some() {
        return Vec::new();
    }
    cur.conns
        .conns
        .iter()
        .filter(|c| ch.owns(c, &p.name) && c.active())
        .filter_map(|c| Some((Ref::Uuid(c.uuid.clone()), cur.port_of(c)?)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// state: present

fn present(env: &mut Env, p: &Params, cur: &Current) -> Result<Plan> {
    let name = p.name.as_str();
    let list = p.port_list();
    if let Some(list) = &list {
        check_ports(cur, name, list)?;
    }
    let ch = choose_bridge(p, cur);
    if let Some(w) = duplicates_warning(&ch, name) {
        env.warn(w);
    }
    check_conn_name(cur, name, &ch)?;
    let pps = match &list {
        Some(l) => analyse_ports(p, cur, &ch, l),
        None => Vec::new(),
    };
    warn_held(env, name, &pps);
    let taken = taken(&pps);
    check_addresses(p, cur, &taken)?;
    check_managed(cur, name, &taken)?;
    let source = match p.inherit {
        true => inherit::source(cur, name, &taken)?,
        false => None,
    };
    let settings = match &source {
        Some(s) => inherit::merge(p, desired_bridge(p), s),
        None => desired_bridge(p),
    };
    let bc = match ch.conn {
        None => create_bridge(p, &ch, &settings),
        Some(c) => modify_bridge(c, &ch.conn_name, &settings),
    };
    let removed = match &list {
        Some(l) => removals(cur, &ch, name, l),
        None => Vec::new(),
    };
    let desired = desired(p, cur, &ch, &pps, settings.clone(), list.is_some());
    let mut plan = Plan::new(desired);
    let parts = Parts {
        ch: &ch,
        pps: &pps,
        bc: &bc,
        removed: &removed,
        source: source.as_ref(),
    };
    present_steps(env, p, cur, &parts, &mut plan);
    let touched = guard::Touched {
        taken: &taken,
        leaving: removed.iter().filter_map(|c| cur.port_of(c)).collect(),
        bridge_live: plan.actions.iter().any(Action::runs_the_bridge),
        settings: &settings,
        method_now: ch.conn.and_then(|c| c.p.get("ipv4.method")),
        source: source.as_ref(),
    };
    if let Some(g) = guard::present(p, cur, &touched) {
        takeover::guarded(env, cur, g, &mut plan);
    }
    takeover::values(env, p, source.as_ref(), &mut plan);
    set_values(&mut plan);
    Ok(plan)
}

/// What present() has decided, for the steps.
struct Parts<'a> {
    ch: &'a Chosen<'a>,
    pps: &'a [PortPlan<'a>],
    bc: &'a BridgeChange,
    removed: &'a [&'a Conn],
    source: Option<&'a Source<'a>>,
}

fn present_steps(env: &mut Env, p: &Params, cur: &Current, x: &Parts, plan: &mut Plan) {
    plan.actions.extend(x.bc.action.clone());
    plan.diffs.extend(x.bc.diff.clone());
    let comp = compete(p, x.pps);
    plan.actions.extend(comp.actions);
    plan.diffs.extend(comp.diffs);
    for pp in x.pps {
        port_step(cur, p, x.ch, pp, x.bc.reactivate, plan);
    }
    let taken_over = x.source.and_then(|s| {
        let c = s.conn?;
        Some(TakenOver {
            port: s.port.clone(),
            uuid: c.uuid.clone(),
            id: c.id().to_string(),
            settings: s
                .settings()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        })
    });
    let remember = (comp.disabled, taken_over);
    remove_and_remember(env, cur, &p.name, x.removed, remember, plan);
    let others = active_ports(p, cur, x.ch);
    activate(x.ch, &p.name, x.pps, &others, x.bc, plan);
}

fn warn_held(env: &mut Env, name: &str, pps: &[PortPlan]) {
    for pp in pps {
        if let Some(h) = pp.held_by {
            env.warn(format!(
                "port {} is held by profile '{}' ({}) and cannot activate in {name} while port_profiles is keep",
                pp.name,
                h.id(),
                h.uuid
            ));
        }
    }
}

fn desired(
    p: &Params,
    cur: &Current,
    ch: &Chosen,
    pps: &[PortPlan],
    settings: Vec<(&'static str, String)>,
    listed: bool,
) -> Desired {
    let ports = if listed {
        pps.iter()
            .map(|pp| PortTarget {
                name: Some(pp.name.clone()),
                uuid: pp.existing.map(|c| c.uuid.clone()),
                conn_name: pp.conn_name.clone(),
                active: pp.held_by.is_none(),
            })
            .collect()
    } else {
        cur.conns
            .conns
            .iter()
            .filter(|c| ch.owns(c, &p.name))
            .map(|c| PortTarget {
                name: cur.port_of(c),
                uuid: Some(c.uuid.clone()),
                conn_name: c.id().to_string(),
                active: c.active(),
            })
            .collect()
    };
    Desired {
        name: p.name.clone(),
        present: true,
        bridge: BridgeTarget {
            uuid: ch.conn.map(|c| c.uuid.clone()),
            conn_name: ch.conn_name.clone(),
            settings,
        },
        ports,
        ..Desired::default()
    }
}

/// The return values `bridge` and `ports` from the desired state (a UUID not assigned
/// yet, as in check mode, is null); after apply, the diff's placeholders get the UUIDs
/// NetworkManager assigned.
pub fn set_values(plan: &mut Plan) {
    let d = &plan.desired;
    if !d.present {
        let back: Vec<Value> = d
            .given_back
            .iter()
            .map(|t| json!({"name": t.name, "uuid": t.uuid, "conn_name": t.conn_name}))
            .collect();
        if let Some(Value::Array(r)) = plan.result.get_mut("restored") {
            let keep = r.len() - back.len().min(r.len());
            r.truncate(keep);
            r.extend(back);
        }
        return;
    }
    let bridge = json!({"name": d.name, "uuid": d.bridge.uuid, "conn_name": d.bridge.conn_name});
    let ports: Vec<Value> = d
        .ports
        .iter()
        .map(|t| json!({"name": t.name, "uuid": t.uuid, "conn_name": t.conn_name, "active": t.active}))
        .collect();
    let mut assigned: Vec<(String, String)> = Vec::new();
    if let Some(u) = &d.bridge.uuid {
        assigned.push((
            Ref::NewBridge(d.bridge.conn_name.clone()).shown(),
            u.clone(),
        ));
    }
    plan.set("bridge", bridge);
    plan.set("ports", Value::Array(ports));
    for diff in &mut plan.diffs {
        for (placeholder, uuid) in &assigned {
            fill(&mut diff.after, placeholder, uuid);
        }
    }
}

fn fill(v: &mut Value, placeholder: &str, uuid: &str) {
    match v {
        Value::String(s) if s == placeholder => *s = uuid.to_string(),
        Value::Object(m) => m.values_mut().for_each(|x| fill(x, placeholder, uuid)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// state: absent

fn absent(env: &mut Env, p: &Params, cur: &Current) -> Result<Plan> {
    let name = p.name.as_str();
    let mut plan = Plan::new(Desired {
        name: name.to_string(),
        ..Desired::default()
    });
    delete_all(cur, name, &mut plan);
    if let Some(w) = cur.remembered.warning(name) {
        env.warn(w);
    }
    let memory = &cur.remembered.memory;
    let mut back = Vec::new();
    if !memory.is_empty() {
        restore(cur, &memory.disabled, &mut plan);
        back = give_back(cur, memory, &mut plan);
        save(name, &Memory::default(), &mut plan);
    }
    plan.set(
        "bridge",
        json!({"name": name, "uuid": Value::Null, "conn_name": Value::Null}),
    );
    plan.set("ports", json!([]));
    let mut restored: Vec<Value> = memory
        .disabled
        .iter()
        .filter(|d| cur.conn(&d.uuid).is_some())
        .map(|d| json!({"name": d.port, "uuid": d.uuid, "conn_name": d.id}))
        .collect();
    for t in &plan.desired.given_back {
        restored.push(json!({"name": t.name, "uuid": t.uuid, "conn_name": t.conn_name}));
    }
    plan.set("restored", Value::Array(restored));
    if let Some(g) = guard::absent(p, cur, &back) {
        takeover::guarded(env, cur, g, &mut plan);
    }
    if !plan.changed() {
        plan.msg = Some(format!("no bridge profile for {name}: nothing to remove"));
    }
    Ok(plan)
}

/// Delete every bridge profile for the interface and their port profiles, in one call.
fn delete_all(cur: &Current, name: &str, plan: &mut Plan) {
    let cands = cur.conns.bridges_for(name);
    let ports: Vec<&Conn> = cur
        .conns
        .conns
        .iter()
        .filter(|c| !c.external && cands.iter().any(|bc| is_port_of(c, bc, name)))
        .collect();
    let all: Vec<&Conn> = cands.iter().chain(ports.iter()).copied().collect();
    for c in &all {
        let keys: Vec<&str> = if c.kind() == "bridge" {
            BRIDGE_TRACKED.to_vec()
        } else {
            port_keys(cur)
        };
        plan.diffs
            .push(Diff::new(header(c.id()), snapshot(c, &keys), ""));
    }
    if !all.is_empty() {
        plan.push(Action::DeleteAll {
            uuids: all.iter().map(|c| c.uuid.clone()).collect(),
            ids: all.iter().map(|c| c.id().to_string()).collect(),
        });
    }
}

/// The IP settings a given-back profile defines, as guard.rs reads them.
const GIVEN_BACK_KEYS: &[&str] = &[
    "ipv4.method",
    "ipv4.addresses",
    "ipv6.method",
    "ipv6.addresses",
];

/// The ports `state: absent` gives a profile back: the ones switched off (restore()
/// activates them), and, for a port whose profile the bridge took over and that was
/// deleted since, a plain profile carrying what the bridge had inherited.
fn give_back<'a>(cur: &'a Current, m: &'a Memory, plan: &mut Plan) -> Vec<guard::GivenBack<'a>> {
    let mut back = Vec::new();
    for d in m.disabled.iter().filter(|d| d.was_active) {
        let Some(c) = cur.conn(&d.uuid) else { continue };
        let settings = GIVEN_BACK_KEYS
            .iter()
            .filter_map(|k| Some((*k, norm_value(k, c.p.get(k)?))))
            .collect();
        back.push(guard::GivenBack {
            port: d.port.clone(),
            settings,
        });
    }
    for t in &m.taken_over {
        if cur.conn(&t.uuid).is_some() || back.iter().any(|b| b.port == t.port) {
            continue;
        }
        let after: Map<String, Value> = t
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        plan.diffs.push(Diff::new(header(&t.id), "", after));
        plan.push(Action::GiveBack {
            port: t.port.clone(),
            conn_name: t.id.clone(),
            settings: t.settings.clone(),
        });
        plan.push(Action::ActivateGivenBack {
            profile: Ref::NewProfile {
                port: t.port.clone(),
                conn_name: t.id.clone(),
            },
            port: t.port.clone(),
        });
        plan.desired.given_back.push(PortTarget {
            name: Some(t.port.clone()),
            uuid: None,
            conn_name: t.id.clone(),
            active: true,
        });
        back.push(guard::GivenBack {
            port: t.port.clone(),
            settings: t
                .settings
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect(),
        });
    }
    back
}
