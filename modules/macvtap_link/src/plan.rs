//! From the current state and what the task asks to the list of commands, the diff and
//! the `link` return value.

use crate::model::{self, find, LinkView, Mode, Prof};
use crate::Params;
use kvmnet_iproute::normalize_mac;
use kvmnet_protocol::{Action, Diff, Error, Plan, Result};
use serde_json::{json, Map, Value};

/// What the host holds before the change.
#[derive(Debug, Clone)]
pub struct State {
    pub links: Vec<LinkView>,
    /// NetworkManager's macvlan profiles for this interface name; `None` when not read
    /// (`persistent` omitted, or no NetworkManager on a host where that is fine).
    pub profiles: Option<Vec<Prof>>,
}

/// The link as the task wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub parent: String,
    pub mode: Mode,
    /// The address to give the link; for passthrough, the parent's (the kernel makes
    /// the link inherit it).
    pub mac: Option<String>,
    pub up: bool,
}

fn s(v: &str) -> String {
    v.to_string()
}

fn ip(args: &[&str]) -> Vec<String> {
    std::iter::once("ip")
        .chain(args.iter().copied())
        .map(s)
        .collect()
}

fn nmcli(args: &[&str]) -> Vec<String> {
    std::iter::once("nmcli")
        .chain(args.iter().copied())
        .map(s)
        .collect()
}

/// `ip link add` for the wanted link.
fn add_link(name: &str, d: &Desired) -> Action {
    let mut argv = ip(&["link", "add", "link", &d.parent, "name", name]);
    if let (false, Some(mac)) = (d.mode.is_passthrough(), &d.mac) {
        argv.extend([s("address"), mac.clone()]);
    }
    argv.extend([s("type"), s("macvtap"), s("mode"), s(d.mode.kernel())]);
    Action::new(
        format!(
            "create macvtap {name} on {} (mode {})",
            d.parent,
            d.mode.name()
        ),
        argv,
    )
}

/// Whether the link must be deleted and made again: the kernel changes neither the
/// parent nor a mode to or from passthru in place.
pub fn needs_recreate(cur: &LinkView, d: &Desired) -> bool {
    let cur_pt = cur.mode.as_ref().is_some_and(Mode::is_passthrough);
    cur.parent.as_deref() != Some(d.parent.as_str()) || cur_pt != d.mode.is_passthrough()
}

/// The `ip` commands that bring link `name` from `cur` to `d`. With `nm_owned`, the
/// profile's activation creates the link and brings it up, so a missing link gets no
/// `ip link add`.
pub fn link_actions(
    name: &str,
    cur: Option<&LinkView>,
    d: &Desired,
    nm_owned: bool,
) -> Vec<Action> {
    let mut out = Vec::new();
    let up = |out: &mut Vec<Action>| {
        out.push(Action::new(
            format!("bring {name} up"),
            ip(&["link", "set", "dev", name, "up"]),
        ))
    };
    match cur {
        None => {
            if !nm_owned {
                out.push(add_link(name, d));
                if d.up {
                    up(&mut out);
                }
            }
        }
        Some(c) if needs_recreate(c, d) => {
            out.push(Action::new(
                format!(
                    "delete macvtap {name} (on {}, mode {}) to make it again",
                    c.parent.as_deref().unwrap_or("?"),
                    c.mode.as_ref().map(Mode::name).unwrap_or("?")
                ),
                ip(&["link", "del", "dev", name]),
            ));
            if !nm_owned {
                out.push(add_link(name, d));
                if d.up {
                    up(&mut out);
                }
            }
        }
        Some(c) => {
            if c.mode.as_ref() != Some(&d.mode) {
                out.push(Action::new(
                    format!(
                        "change the mode of {name} from {} to {}",
                        c.mode.as_ref().map(Mode::name).unwrap_or("?"),
                        d.mode.name()
                    ),
                    ip(&[
                        "link",
                        "set",
                        "dev",
                        name,
                        "type",
                        "macvtap",
                        "mode",
                        d.mode.kernel(),
                    ]),
                ));
            }
            if let (false, Some(mac)) = (d.mode.is_passthrough(), &d.mac) {
                if c.mac.as_ref() != Some(mac) {
                    out.push(Action::new(
                        format!("set the address of {name} to {mac}"),
                        ip(&["link", "set", "dev", name, "address", mac]),
                    ));
                }
            }
            if c.up != d.up {
                if d.up {
                    up(&mut out);
                } else {
                    out.push(Action::new(
                        format!("bring {name} down"),
                        ip(&["link", "set", "dev", name, "down"]),
                    ));
                }
            }
        }
    }
    out
}

/// The profile settings the task wants, as `(property, value)` in nmcli's spelling.
fn profile_props(d: &Desired) -> Vec<(&'static str, String)> {
    vec![
        ("connection.autoconnect", s("yes")),
        ("macvlan.parent", d.parent.clone()),
        ("macvlan.mode", s(d.mode.kernel())),
        ("macvlan.tap", s("yes")),
        ("ipv4.method", s("disabled")),
        ("ipv6.method", s("disabled")),
        (
            "802-3-ethernet.cloned-mac-address",
            if d.mode.is_passthrough() {
                String::new()
            } else {
                d.mac.clone().unwrap_or_default()
            },
        ),
    ]
}

/// The properties of `p` that differ from the wanted ones.
fn profile_changes(p: &Prof, d: &Desired) -> Vec<(&'static str, String)> {
    profile_props(d)
        .into_iter()
        .filter(|(k, v)| match *k {
            "connection.autoconnect" => !p.autoconnect,
            "macvlan.parent" => p.parent != *v,
            "macvlan.mode" => p.mode.as_ref() != Some(&d.mode),
            "macvlan.tap" => !p.tap,
            "ipv4.method" => p.ipv4_method != *v,
            "ipv6.method" => p.ipv6_method != *v,
            "802-3-ethernet.cloned-mac-address" => p.mac.clone().unwrap_or_default() != *v,
            _ => true,
        })
        .collect()
}

/// The profile to keep among several for one interface: the one named `conn_name`, else
/// the active one, else the first.
fn select_profile<'a>(
    profiles: &'a [Prof],
    name: &str,
    conn_name: Option<&str>,
) -> Option<&'a Prof> {
    profiles
        .iter()
        .find(|p| conn_name.is_some_and(|c| p.id == c))
        .or_else(|| profiles.iter().find(|p| p.active_on(name)))
        .or_else(|| profiles.first())
}

fn describe(l: Option<&LinkView>, prof: Option<&Prof>, nm_read: bool) -> Value {
    let mut m = Map::new();
    if let Some(l) = l {
        m.insert("kind".into(), json!(l.kind));
        m.insert("parent".into(), json!(l.parent));
        m.insert("mode".into(), json!(l.mode.as_ref().map(Mode::name)));
        m.insert("mac".into(), json!(l.mac));
        m.insert("up".into(), json!(l.up));
    }
    if nm_read && (l.is_some() || prof.is_some()) {
        m.insert("persistent".into(), json!(prof.is_some()));
        if let Some(p) = prof {
            m.insert("conn_name".into(), json!(p.id));
        }
    }
    Value::Object(m)
}

fn profiles_to_delete(profiles: &[&Prof]) -> Option<Action> {
    if profiles.is_empty() {
        return None;
    }
    let names: Vec<String> = profiles.iter().map(|p| p.id.clone()).collect();
    let mut argv = nmcli(&["con", "delete"]);
    for p in profiles {
        argv.extend([s("uuid"), p.uuid.clone()]);
    }
    Some(Action::new(
        format!("delete NetworkManager profile {}", names.join(", ")),
        argv,
    ))
}

fn header(name: &str) -> String {
    format!("macvtap link {name}")
}

/// Refuse what the kernel would refuse, before anything changes.
fn check_parent(st: &State, p: &Params, parent: &str, mode: &Mode) -> Result<()> {
    let par = find(&st.links, parent).ok_or_else(|| {
        Error::invalid(format!(
            "option 'link': the parent interface '{parent}' does not exist on this host"
        ))
    })?;
    if par.is_macvlan_family() {
        return Err(Error::invalid(format!(
            "option 'link': '{parent}' is itself a {} link; give the NIC it sits on ({})",
            par.kind.as_deref().unwrap_or("?"),
            par.parent.as_deref().unwrap_or("unknown")
        )));
    }
    if let Some(m) = &par.master {
        return Err(Error::not_supported(format!(
            "option 'link': '{parent}' is a port of {} '{m}'; the kernel refuses a macvtap on it (EBUSY): \
             a NIC carries either a bridge (method 1) or macvtap links (method 2), not both",
            par.master_kind.as_deref().unwrap_or("controller")
        )));
    }
    let siblings: Vec<&LinkView> = st
        .links
        .iter()
        .filter(|l| {
            l.is_macvlan_family() && l.parent.as_deref() == Some(parent) && l.name != p.name
        })
        .collect();
    if mode.is_passthrough() && !siblings.is_empty() {
        let names: Vec<&str> = siblings.iter().map(|l| l.name.as_str()).collect();
        return Err(Error::not_supported(format!(
            "option 'mode': passthrough needs '{parent}' to itself, but it already carries macvlan/macvtap link(s) {}",
            names.join(", ")
        )));
    }
    if let Some(pt) = siblings
        .iter()
        .find(|l| l.mode.as_ref().is_some_and(Mode::is_passthrough))
    {
        return Err(Error::not_supported(format!(
            "option 'link': '{parent}' already carries the passthrough link '{}'; no other macvlan/macvtap can share that parent",
            pt.name
        )));
    }
    Ok(())
}

/// The address the link will have: the task's, else the one it (or its profile) has,
/// else a new random one (chosen here so the profile can pin it); passthrough inherits
/// the parent's.
fn desired_mac(
    st: &State,
    p: &Params,
    cur: Option<&LinkView>,
    prof: Option<&Prof>,
    mode: &Mode,
    parent: &str,
) -> Result<Option<String>> {
    let parent_mac = find(&st.links, parent).and_then(|l| l.mac.clone());
    if mode.is_passthrough() {
        return Ok(parent_mac);
    }
    if let Some(m) = p.mac.as_deref().and_then(normalize_mac) {
        let m = &m;
        if parent_mac.as_ref() == Some(m) {
            return Err(Error::invalid(format!(
                "option 'mac': {m} is the address of the parent '{parent}'; a macvtap needs an address of its own"
            )));
        }
        if let Some(o) = st.links.iter().find(|l| {
            l.name != p.name
                && l.is_macvlan_family()
                && l.parent.as_deref() == Some(parent)
                && l.mac.as_ref() == Some(m)
        }) {
            return Err(Error::invalid(format!(
                "option 'mac': {m} is already used by '{}' on the same parent '{parent}'",
                o.name
            )));
        }
        return Ok(Some(m.clone()));
    }
    // A link coming out of passthrough carries its parent's address, which the kernel
    // refuses for a non-passthrough link: it gets a new one.
    let keep = cur
        .filter(|c| !c.mode.as_ref().is_some_and(Mode::is_passthrough))
        .and_then(|c| c.mac.clone())
        .or_else(|| prof.and_then(|p| p.mac.clone()));
    match keep {
        Some(m) if parent_mac.as_ref() != Some(&m) => Ok(Some(m)),
        _ => Ok(Some(model::random_mac()?)),
    }
}

fn planned_link_json(
    p: &Params,
    cur: Option<&LinkView>,
    d: &Desired,
    recreate: bool,
    prof_after: Option<(String, String)>,
) -> Value {
    let ifindex = cur.filter(|_| !recreate).map(|c| c.ifindex);
    let mut v = json!({
        "name": p.name,
        "ifindex": ifindex,
        "mac": d.mac,
        "mode": d.mode.name(),
        "parent": d.parent,
        "up": d.up,
        "tap_device": ifindex.map(|i| format!("/dev/tap{i}")),
    });
    if p.persistent.is_some() {
        v["persistent"] = json!(prof_after.is_some());
        v["conn_name"] = json!(prof_after.as_ref().map(|x| x.0.clone()));
        v["conn_uuid"] = json!(prof_after.as_ref().map(|x| x.1.clone()));
    }
    v
}

pub fn plan(p: &Params, st: &State) -> Result<Plan> {
    let cur = find(&st.links, &p.name);
    if let Some(c) = cur {
        if c.kind.as_deref() != Some("macvtap") {
            return Err(Error::not_supported(format!(
                "option 'name': '{}' already exists and is a {}, not a macvtap; it is left alone (choose another name)",
                p.name,
                c.describe_kind()
            )));
        }
    }
    let profiles: Vec<Prof> = st.profiles.clone().unwrap_or_default();
    let nm_read = st.profiles.is_some();
    let mut plan = Plan::default();
    if p.state == "absent" {
        let prof = select_profile(&profiles, &p.name, p.conn_name.as_deref());
        if let Some(a) = profiles_to_delete(&profiles.iter().collect::<Vec<_>>()) {
            plan.push(a);
        }
        if let Some(c) = cur {
            plan.push(Action::new(
                format!("delete macvtap {}", p.name),
                ip(&["link", "del", "dev", &c.name]),
            ));
        }
        plan.diffs.push(Diff::new(
            header(&p.name),
            describe(cur, prof, nm_read),
            json!({}),
        ));
        plan.set("link", Value::Null);
        if !plan.changed() {
            plan.msg = Some(format!("macvtap {} is already absent", p.name));
        }
        return Ok(plan);
    }

    // state: present (the spec makes link and mode required).
    let parent = p.link.clone().unwrap_or_default();
    let mode = Mode::parse(p.mode.as_deref().unwrap_or_default());
    check_parent(st, p, &parent, &mode)?;
    let keep = if p.persistent == Some(true) {
        select_profile(&profiles, &p.name, p.conn_name.as_deref())
    } else {
        None
    };
    let d = Desired {
        mac: desired_mac(st, p, cur, keep, &mode, &parent)?,
        parent,
        mode,
        up: p.up,
    };
    let recreate = cur.is_some_and(|c| needs_recreate(c, &d));
    let mut prof_after: Option<(String, String)> = None;

    match p.persistent {
        Some(true) => {
            let extras: Vec<&Prof> = profiles
                .iter()
                .filter(|x| keep.is_none_or(|k| k.uuid != x.uuid))
                .collect();
            // Deleting a profile active on our link may take the link with it.
            let extra_active = extras.iter().any(|x| x.active_on(&p.name));
            if let Some(a) = profiles_to_delete(&extras) {
                plan.push(a);
            }
            let (uuid, new) = match keep {
                None => {
                    let uuid = kvmnet_nmcli::new_uuid()?;
                    let id = p.conn_name.clone().unwrap_or(format!("macvlan-{}", p.name));
                    let mut argv = nmcli(&[
                        "con",
                        "add",
                        "type",
                        "macvlan",
                        "con-name",
                        &id,
                        "ifname",
                        &p.name,
                        "connection.uuid",
                        &uuid,
                    ]);
                    for (k, v) in profile_props(&d) {
                        if !v.is_empty() {
                            argv.extend([s(k), v]);
                        }
                    }
                    plan.push(Action::new(
                        format!("create NetworkManager profile {id}"),
                        argv,
                    ));
                    prof_after = Some((id, uuid.clone()));
                    (uuid, true)
                }
                Some(k) => {
                    let mut changes = profile_changes(k, &d);
                    let mut id = k.id.clone();
                    if let Some(c) = p.conn_name.as_ref().filter(|c| **c != k.id) {
                        changes.insert(0, ("connection.id", c.clone()));
                        id = c.clone();
                    }
                    if !changes.is_empty() {
                        let what: Vec<&str> = changes.iter().map(|(k, _)| *k).collect();
                        let mut argv = nmcli(&["con", "mod", "uuid", &k.uuid]);
                        for (k, v) in changes.iter() {
                            argv.extend([s(k), v.clone()]);
                        }
                        plan.push(Action::new(
                            format!(
                                "update NetworkManager profile {} ({})",
                                k.id,
                                what.join(", ")
                            ),
                            argv,
                        ));
                    }
                    prof_after = Some((id, k.uuid.clone()));
                    (k.uuid.clone(), false)
                }
            };
            let mut link = link_actions(&p.name, cur, &d, true);
            if extra_active && cur.is_some() && !recreate {
                // The link may go with the profile that was active on it; the next
                // activation makes it again.
                link = vec![Action::new(
                    format!("delete macvtap {} to let its profile make it again", p.name),
                    ip(&["link", "del", "dev", &p.name]),
                )];
            }
            plan.actions.extend(link);
            let active = keep.is_some_and(|k| k.active_on(&p.name));
            if new || cur.is_none() || recreate || extra_active || !active {
                plan.push(Action::new(
                    format!(
                        "activate NetworkManager profile {}",
                        prof_after.as_ref().map(|x| x.0.as_str()).unwrap_or("")
                    ),
                    nmcli(&["con", "up", "uuid", &uuid]),
                ));
            }
        }
        Some(false) => {
            if let Some(a) = profiles_to_delete(&profiles.iter().collect::<Vec<_>>()) {
                plan.push(a);
            }
            plan.actions.extend(link_actions(&p.name, cur, &d, false));
        }
        None => plan.actions.extend(link_actions(&p.name, cur, &d, false)),
    }

    let mut after = json!({
        "kind": "macvtap",
        "parent": d.parent,
        "mode": d.mode.name(),
        "mac": d.mac,
        "up": d.up,
    });
    if let Some(pers) = p.persistent {
        after["persistent"] = json!(pers);
        if let Some((id, _)) = &prof_after {
            after["conn_name"] = json!(id);
        }
    }
    plan.diffs.push(Diff::new(
        header(&p.name),
        describe(
            cur,
            keep.or(select_profile(&profiles, &p.name, None)),
            nm_read,
        ),
        after,
    ));
    plan.set("link", planned_link_json(p, cur, &d, recreate, prof_after));
    if !plan.changed() {
        plan.msg = Some(format!(
            "macvtap {} is already in the requested state",
            p.name
        ));
    }
    Ok(plan)
}

/// What does not match the request in a freshly read state (empty: all is in effect).
pub fn mismatches(p: &Params, st: &State, want: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let cur = find(&st.links, &p.name);
    let profiles = st.profiles.clone().unwrap_or_default();
    if p.state == "absent" {
        if cur.is_some() {
            bad.push(format!("{} still exists", p.name));
        }
        for x in &profiles {
            bad.push(format!(
                "NetworkManager profile {} ({}) still exists",
                x.id, x.uuid
            ));
        }
        return bad;
    }
    let Some(c) = cur else {
        bad.push(format!("{} does not exist", p.name));
        return bad;
    };
    let field = |k: &str| want.get(k).and_then(Value::as_str).map(str::to_string);
    if c.kind.as_deref() != Some("macvtap") {
        bad.push(format!(
            "{} is a {}, not a macvtap",
            p.name,
            c.describe_kind()
        ));
    }
    if c.parent != field("parent") {
        bad.push(format!(
            "{}'s parent is {:?}, not {:?}",
            p.name,
            c.parent,
            field("parent")
        ));
    }
    let mode = c.mode.as_ref().map(|m| m.name().to_string());
    if mode != field("mode") {
        bad.push(format!(
            "{}'s mode is {:?}, not {:?}",
            p.name,
            mode,
            field("mode")
        ));
    }
    if field("mode").as_deref() != Some("passthrough") && c.mac != field("mac") {
        bad.push(format!(
            "{}'s address is {:?}, not {:?}",
            p.name,
            c.mac,
            field("mac")
        ));
    }
    if c.up != p.up {
        bad.push(format!(
            "{} is {}",
            p.name,
            if c.up { "up" } else { "down" }
        ));
    }
    match p.persistent {
        Some(true) => {
            if profiles.len() != 1 {
                bad.push(format!(
                    "{} NetworkManager profiles for {} (want one)",
                    profiles.len(),
                    p.name
                ));
            }
            if let Some(x) = profiles.first() {
                if !x.active_on(&p.name) {
                    bad.push(format!(
                        "NetworkManager profile {} is not active on {}",
                        x.id, p.name
                    ));
                }
                let d = Desired {
                    parent: field("parent").unwrap_or_default(),
                    mode: Mode::parse(&field("mode").unwrap_or_default()),
                    mac: field("mac"),
                    up: true,
                };
                let ch: Vec<&str> = profile_changes(x, &d).iter().map(|(k, _)| *k).collect();
                if !ch.is_empty() {
                    bad.push(format!(
                        "NetworkManager profile {} differs in {}",
                        x.id,
                        ch.join(", ")
                    ));
                }
            }
        }
        Some(false) => {
            for x in &profiles {
                bad.push(format!(
                    "NetworkManager profile {} ({}) still exists",
                    x.id, x.uuid
                ));
            }
        }
        None => {}
    }
    bad
}

/// The `link` return value from a freshly read state.
pub fn result_json(p: &Params, st: &State) -> Value {
    match find(&st.links, &p.name) {
        None => Value::Null,
        Some(l) => {
            let profiles = st.profiles.clone().unwrap_or_default();
            let prof = select_profile(&profiles, &p.name, p.conn_name.as_deref());
            model::link_json(l, prof, st.profiles.is_some())
        }
    }
}
