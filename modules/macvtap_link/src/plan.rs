//! Options + current state → the steps (`ip link` and `nmcli` commands), the diff and the
//! `link` return value. Pure: what it knows of the host came from `read`; the address of
//! a new link comes from `env.random_bytes`.

use crate::current::{Current, MacvlanProfile};
use crate::params::{Params, Persistence, State};
use kvmnet_iproute::{random_mac, Link, MacvlanMode};
use kvmnet_protocol::{Command, Diff, Env, Error, Result, Step};
use serde_json::{json, Map, Value};

/// The link as the task wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkWant {
    pub parent: String,
    pub mode: MacvlanMode,
    /// The address to give the link; for passthrough, the parent's (the kernel makes the
    /// link inherit it).
    pub mac: Option<String>,
    pub up: bool,
}

/// What the run aims at, for apply and verify.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired {
    /// No link, and no macvlan profile for the name (where NetworkManager was read).
    Absent,
    /// The link as wanted, with the profiles `persistent` asks for.
    Present {
        link: LinkWant,
        persistence: Persistence,
    },
}

pub type Plan = kvmnet_protocol::Plan<Desired, Action>;

/// Why a link is deleted.
#[derive(Debug, Clone, PartialEq)]
pub enum Delete {
    /// `state: absent`.
    Absent,
    /// The kernel changes neither the parent nor a mode to or from passthru in place:
    /// the link goes (it was on `parent` in `mode`) and is made again.
    Recreate {
        parent: Option<String>,
        mode: Option<MacvlanMode>,
    },
    /// A profile that was active on the link is deleted; activating the profile kept
    /// makes the link again.
    ForProfile,
}

/// A NetworkManager profile a step names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRef {
    pub id: String,
    pub uuid: String,
}

/// One step: one `ip` or `nmcli` command.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `ip link add ... type macvtap` (a runtime link, or one no profile makes).
    AddLink {
        name: String,
        want: LinkWant,
    },
    SetMode {
        name: String,
        from: Option<MacvlanMode>,
        to: MacvlanMode,
    },
    SetMac {
        name: String,
        mac: String,
    },
    SetUp {
        name: String,
        up: bool,
    },
    DeleteLink {
        name: String,
        why: Delete,
    },
    /// `nmcli con delete`. With `keep_link` (`persistent: false`), the link is to stay as
    /// a runtime link: NetworkManager removes a link it made together with its profile,
    /// so apply waits for NetworkManager to settle and then brings the link to what the
    /// plan wants from what is there (see apply.rs).
    DeleteProfiles {
        profiles: Vec<ProfileRef>,
        keep_link: bool,
    },
    /// `nmcli con add`: NetworkManager picks the UUID (before 1.42 it refuses one given
    /// as `connection.uuid`); apply reads it from nmcli's answer.
    AddProfile {
        id: String,
        name: String,
        props: Vec<(&'static str, String)>,
    },
    ModifyProfile {
        profile: ProfileRef,
        changes: Vec<(&'static str, String)>,
    },
    /// `nmcli con up uuid U`; `uuid: None` for the profile `AddProfile` makes in this run
    /// (its planned command shows a placeholder).
    UpProfile {
        id: String,
        uuid: Option<String>,
    },
}

fn mode_name(m: Option<&MacvlanMode>) -> &str {
    m.map(MacvlanMode::name).unwrap_or("?")
}

impl Step for Action {
    fn summary(&self) -> String {
        match self {
            Action::AddLink { name, want } => format!(
                "create macvtap {name} on {} (mode {})",
                want.parent,
                want.mode.name()
            ),
            Action::SetMode { name, from, to } => format!(
                "change the mode of {name} from {} to {}",
                mode_name(from.as_ref()),
                to.name()
            ),
            Action::SetMac { name, mac } => format!("set the address of {name} to {mac}"),
            Action::SetUp { name, up: true } => format!("bring {name} up"),
            Action::SetUp { name, up: false } => format!("bring {name} down"),
            Action::DeleteLink { name, why } => match why {
                Delete::Absent => format!("delete macvtap {name}"),
                Delete::Recreate { parent, mode } => format!(
                    "delete macvtap {name} (on {}, mode {}) to make it again",
                    parent.as_deref().unwrap_or("?"),
                    mode_name(mode.as_ref())
                ),
                Delete::ForProfile => {
                    format!("delete macvtap {name} to let its profile make it again")
                }
            },
            Action::DeleteProfiles { profiles, .. } => {
                let ids: Vec<&str> = profiles.iter().map(|p| p.id.as_str()).collect();
                format!("delete NetworkManager profile {}", ids.join(", "))
            }
            Action::AddProfile { id, .. } => format!("create NetworkManager profile {id}"),
            Action::ModifyProfile { profile, changes } => {
                let what: Vec<&str> = changes.iter().map(|(k, _)| *k).collect();
                format!(
                    "update NetworkManager profile {} ({})",
                    profile.id,
                    what.join(", ")
                )
            }
            Action::UpProfile { id, .. } => format!("activate NetworkManager profile {id}"),
        }
    }

    fn command(&self) -> Option<Command> {
        Some(match self {
            Action::AddLink { name, want } => add_link_command(name, want),
            Action::SetMode { name, to, .. } => {
                ip_set(name, &["type", "macvtap", "mode", to.kernel()])
            }
            Action::SetMac { name, mac } => ip_set(name, &["address", mac]),
            Action::SetUp { name, up } => ip_set(name, &[if *up { "up" } else { "down" }]),
            Action::DeleteLink { name, .. } => Command::new(["ip", "link", "del", "dev", name]),
            Action::DeleteProfiles { profiles, .. } => {
                let mut argv = vec!["nmcli", "con", "delete"];
                for p in profiles {
                    argv.extend(["uuid", p.uuid.as_str()]);
                }
                Command::new(argv)
            }
            Action::AddProfile { id, name, props } => with_props(
                vec![
                    "nmcli", "con", "add", "type", "macvlan", "con-name", id, "ifname", name,
                ],
                props,
            ),
            Action::ModifyProfile { profile, changes } => with_props(
                vec!["nmcli", "con", "mod", "uuid", profile.uuid.as_str()],
                changes,
            ),
            Action::UpProfile { id, uuid } => match uuid {
                Some(u) => up_profile_command(u),
                None => up_profile_command(&format!("<uuid of {id}>")),
            },
        })
    }
}

/// `ip link set dev NAME ARGS...`
fn ip_set(name: &str, args: &[&str]) -> Command {
    Command::new(["ip", "link", "set", "dev", name].iter().chain(args))
}

/// `argv` followed by each property and its value.
fn with_props<'a>(mut argv: Vec<&'a str>, props: &'a [(&'static str, String)]) -> Command {
    for (k, v) in props {
        argv.extend([*k, v.as_str()]);
    }
    Command::new(argv)
}

/// `nmcli con up uuid U`.
pub fn up_profile_command(uuid: &str) -> Command {
    Command::new(["nmcli", "con", "up", "uuid", uuid])
}

fn add_link_command(name: &str, want: &LinkWant) -> Command {
    let mut argv = vec!["ip", "link", "add", "link", &want.parent, "name", name];
    if let (false, Some(mac)) = (want.mode.is_passthrough(), &want.mac) {
        argv.extend(["address", mac.as_str()]);
    }
    argv.extend(["type", "macvtap", "mode", want.mode.kernel()]);
    Command::new(argv)
}

/// Whether the link must be deleted and made again: the kernel changes neither the
/// parent nor a mode to or from passthru in place.
pub fn needs_recreate(cur: &Link, want: &LinkWant) -> bool {
    let cur_pt = cur
        .macvlan_mode()
        .is_some_and(|m| MacvlanMode::is_passthrough(&m));
    cur.link.as_deref() != Some(want.parent.as_str()) || cur_pt != want.mode.is_passthrough()
}

/// The steps that bring link `name` from `cur` to `want`. With `nm_owned`, the profile's
/// activation creates the link and brings it up, so a missing link gets no `ip link add`.
pub fn link_actions(
    name: &str,
    cur: Option<&Link>,
    want: &LinkWant,
    nm_owned: bool,
) -> Vec<Action> {
    let name = name.to_string();
    let mut out = Vec::new();
    let make = |out: &mut Vec<Action>| {
        if !nm_owned {
            out.push(Action::AddLink {
                name: name.clone(),
                want: want.clone(),
            });
            if want.up {
                out.push(Action::SetUp {
                    name: name.clone(),
                    up: true,
                });
            }
        }
    };
    match cur {
        None => make(&mut out),
        Some(c) if needs_recreate(c, want) => {
            out.push(Action::DeleteLink {
                name: name.clone(),
                why: Delete::Recreate {
                    parent: c.link.clone(),
                    mode: c.macvlan_mode(),
                },
            });
            make(&mut out);
        }
        Some(c) => {
            if c.macvlan_mode().as_ref() != Some(&want.mode) {
                out.push(Action::SetMode {
                    name: name.clone(),
                    from: c.macvlan_mode(),
                    to: want.mode.clone(),
                });
            }
            if let (false, Some(mac)) = (want.mode.is_passthrough(), &want.mac) {
                if c.mac().as_ref() != Some(mac) {
                    out.push(Action::SetMac {
                        name: name.clone(),
                        mac: mac.clone(),
                    });
                }
            }
            if c.is_up() != want.up {
                out.push(Action::SetUp { name, up: want.up });
            }
        }
    }
    out
}

/// The profile settings the task wants, as `(property, value)` in nmcli's spelling, each
/// with whether profile `have` differs in it (every one for a new profile).
fn profile_settings(
    want: &LinkWant,
    have: Option<&MacvlanProfile>,
) -> Vec<(&'static str, String, bool)> {
    let mac = match (&want.mac, want.mode.is_passthrough()) {
        (Some(m), false) => m.clone(),
        _ => String::new(),
    };
    let differs = |f: &dyn Fn(&MacvlanProfile) -> bool| have.is_none_or(f);
    vec![
        (
            "connection.autoconnect",
            "yes".into(),
            differs(&|p| !p.autoconnect),
        ),
        (
            "macvlan.parent",
            want.parent.clone(),
            differs(&|p| p.parent != want.parent),
        ),
        (
            "macvlan.mode",
            want.mode.kernel().into(),
            differs(&|p| p.mode.as_ref() != Some(&want.mode)),
        ),
        ("macvlan.tap", "yes".into(), differs(&|p| !p.tap)),
        (
            "ipv4.method",
            "disabled".into(),
            differs(&|p| p.ipv4_method != "disabled"),
        ),
        (
            "ipv6.method",
            "disabled".into(),
            differs(&|p| p.ipv6_method != "disabled"),
        ),
        (
            "802-3-ethernet.cloned-mac-address",
            mac.clone(),
            differs(&|p| p.mac.clone().unwrap_or_default() != mac),
        ),
    ]
}

/// The settings of a new profile (those with a value).
fn new_profile_props(want: &LinkWant) -> Vec<(&'static str, String)> {
    profile_settings(want, None)
        .into_iter()
        .filter(|(_, v, _)| !v.is_empty())
        .map(|(k, v, _)| (k, v))
        .collect()
}

/// The properties of profile `p` that differ from the wanted ones.
pub fn profile_changes(p: &MacvlanProfile, want: &LinkWant) -> Vec<(&'static str, String)> {
    profile_settings(want, Some(p))
        .into_iter()
        .filter(|(_, _, differs)| *differs)
        .map(|(k, v, _)| (k, v))
        .collect()
}

/// The profile to keep among several for one interface: the one named `conn_name`, else
/// the active one, else the first.
pub fn select_profile<'a>(
    profiles: &'a [MacvlanProfile],
    name: &str,
    conn_name: Option<&str>,
) -> Option<&'a MacvlanProfile> {
    profiles
        .iter()
        .find(|p| conn_name.is_some_and(|c| p.id == c))
        .or_else(|| profiles.iter().find(|p| p.active_on(name)))
        .or_else(|| profiles.first())
}

fn delete_profiles<'a>(
    profiles: impl IntoIterator<Item = &'a MacvlanProfile>,
    keep_link: bool,
) -> Option<Action> {
    let profiles: Vec<ProfileRef> = profiles
        .into_iter()
        .map(|p| ProfileRef {
            id: p.id.clone(),
            uuid: p.uuid.clone(),
        })
        .collect();
    (!profiles.is_empty()).then_some(Action::DeleteProfiles {
        profiles,
        keep_link,
    })
}

/// The diff's view of the link and its profile.
fn describe(l: Option<&Link>, prof: Option<&MacvlanProfile>, nm_read: bool) -> Value {
    let mut m = Map::new();
    if let Some(l) = l {
        m.insert("kind".into(), json!(l.kind()));
        m.insert("parent".into(), json!(l.link));
        m.insert(
            "mode".into(),
            json!(l.macvlan_mode().as_ref().map(MacvlanMode::name)),
        );
        m.insert("mac".into(), json!(l.mac()));
        m.insert("up".into(), json!(l.is_up()));
    }
    if nm_read && (l.is_some() || prof.is_some()) {
        m.insert("persistent".into(), json!(prof.is_some()));
        if let Some(p) = prof {
            m.insert("conn_name".into(), json!(p.id));
        }
    }
    Value::Object(m)
}

fn header(name: &str) -> String {
    format!("macvtap link {name}")
}

/// The `link` return value for a link read from the host.
pub fn link_value(l: &Link, prof: Option<&MacvlanProfile>, nm_read: bool) -> Value {
    let mut v = json!({
        "name": l.ifname,
        "ifindex": l.ifindex,
        "mac": l.mac(),
        "mode": l.macvlan_mode().as_ref().map(MacvlanMode::name),
        "parent": l.link,
        "up": l.is_up(),
        "tap_device": format!("/dev/tap{}", l.ifindex),
    });
    if nm_read {
        v["persistent"] = json!(prof.is_some());
        v["conn_name"] = json!(prof.map(|p| p.id.clone()));
        v["conn_uuid"] = json!(prof.map(|p| p.uuid.clone()));
    }
    v
}

pub fn plan(env: &mut Env, p: &Params, cur: &Current) -> Result<Plan> {
    if let Some(l) = cur.link(&p.name) {
        if l.kind() != Some("macvtap") {
            return Err(Error::not_supported(format!(
                "option 'name': '{}' already exists and is a {}, not a macvtap; it is left alone (choose another name)",
                p.name,
                l.describe_kind()
            )));
        }
    }
    match p.state {
        State::Absent => Ok(absent(p, cur)),
        State::Present => present(env, p, cur),
    }
}

fn absent(p: &Params, cur: &Current) -> Plan {
    let mut plan = Plan::new(Desired::Absent);
    let link = cur.link(&p.name);
    if let Some(a) = delete_profiles(cur.profiles(), false) {
        plan.push(a);
    }
    if link.is_some() {
        plan.push(Action::DeleteLink {
            name: p.name.clone(),
            why: Delete::Absent,
        });
    }
    let prof = select_profile(cur.profiles(), &p.name, p.conn_name.as_deref());
    plan.diffs.push(Diff::new(
        header(&p.name),
        describe(link, prof, cur.nm_read()),
        json!({}),
    ));
    plan.set("link", Value::Null);
    if !plan.changed() {
        plan.msg = Some(format!("macvtap {} is already absent", p.name));
    }
    plan
}

/// The profile the link will have after the run: its name and UUID (`None`: the one
/// this run creates, whose UUID NetworkManager picks).
type ProfileAfter = (String, Option<String>);

fn present(env: &mut Env, p: &Params, cur: &Current) -> Result<Plan> {
    let (Some(parent), Some(mode)) = (&p.link, &p.mode) else {
        return Err(Error::bug(
            "state present without link and mode (the spec requires both)",
        ));
    };
    check_parent(cur, p, parent, mode)?;
    let link = cur.link(&p.name);
    let keep = match p.persistence() {
        Persistence::Profile => select_profile(cur.profiles(), &p.name, p.conn_name.as_deref()),
        _ => None,
    };
    let want = LinkWant {
        mac: desired_mac(env, cur, p, keep, mode, parent)?,
        parent: parent.clone(),
        mode: mode.clone(),
        up: p.up,
    };
    let recreate = link.is_some_and(|c| needs_recreate(c, &want));
    let mut plan = Plan::new(Desired::Present {
        link: want.clone(),
        persistence: p.persistence(),
    });
    let mut after = None;
    match p.persistence() {
        Persistence::Profile => {
            after = Some(persistent_steps(&mut plan, p, cur, keep, &want, recreate));
        }
        Persistence::NoProfile => {
            if let Some(a) = delete_profiles(cur.profiles(), true) {
                plan.push(a);
            }
            plan.actions
                .extend(link_actions(&p.name, link, &want, false));
        }
        Persistence::Untouched => plan
            .actions
            .extend(link_actions(&p.name, link, &want, false)),
    }
    report(&mut plan, p, cur, keep, &want, recreate, after);
    Ok(plan)
}

/// The steps of `persistent: true`: extra profiles deleted, the kept one created or
/// corrected, the link handled as its profile's activation needs, the profile activated.
fn persistent_steps(
    plan: &mut Plan,
    p: &Params,
    cur: &Current,
    keep: Option<&MacvlanProfile>,
    want: &LinkWant,
    recreate: bool,
) -> ProfileAfter {
    let link = cur.link(&p.name);
    let extras: Vec<&MacvlanProfile> = cur
        .profiles()
        .iter()
        .filter(|x| keep.is_none_or(|k| k.uuid != x.uuid))
        .collect();
    // Deleting a profile active on our link may take the link with it.
    let extra_active = extras.iter().any(|x| x.active_on(&p.name));
    if let Some(a) = delete_profiles(extras, false) {
        plan.push(a);
    }
    let (id, uuid) = match keep {
        None => {
            let id = p.new_conn_name();
            plan.push(Action::AddProfile {
                id: id.clone(),
                name: p.name.clone(),
                props: new_profile_props(want),
            });
            (id, None)
        }
        Some(k) => {
            let mut changes = profile_changes(k, want);
            let mut id = k.id.clone();
            if let Some(c) = p.conn_name.as_ref().filter(|c| **c != k.id) {
                changes.insert(0, ("connection.id", c.clone()));
                id = c.clone();
            }
            if !changes.is_empty() {
                plan.push(Action::ModifyProfile {
                    profile: ProfileRef {
                        id: k.id.clone(),
                        uuid: k.uuid.clone(),
                    },
                    changes,
                });
            }
            (id, Some(k.uuid.clone()))
        }
    };
    let mut steps = link_actions(&p.name, link, want, true);
    if extra_active && link.is_some() && !recreate {
        // The link may go with the profile that was active on it; the next activation
        // makes it again.
        steps = vec![Action::DeleteLink {
            name: p.name.clone(),
            why: Delete::ForProfile,
        }];
    }
    plan.actions.extend(steps);
    let active = keep.is_some_and(|k| k.active_on(&p.name));
    if uuid.is_none() || link.is_none() || recreate || extra_active || !active {
        plan.push(Action::UpProfile {
            id: id.clone(),
            uuid: uuid.clone(),
        });
    }
    (id, uuid)
}

/// The diff, the planned `link` return value and the no-change message.
fn report(
    plan: &mut Plan,
    p: &Params,
    cur: &Current,
    keep: Option<&MacvlanProfile>,
    want: &LinkWant,
    recreate: bool,
    after: Option<ProfileAfter>,
) {
    let link = cur.link(&p.name);
    let mut to = json!({
        "kind": "macvtap",
        "parent": want.parent,
        "mode": want.mode.name(),
        "mac": want.mac,
        "up": want.up,
    });
    if let Some(pers) = p.persistent {
        to["persistent"] = json!(pers);
        if let Some((id, _)) = &after {
            to["conn_name"] = json!(id);
        }
    }
    let shown = keep.or(select_profile(cur.profiles(), &p.name, None));
    plan.diffs.push(Diff::new(
        header(&p.name),
        describe(link, shown, cur.nm_read()),
        to,
    ));
    let ifindex = link.filter(|_| !recreate).map(|c| c.ifindex);
    let mut v = json!({
        "name": p.name,
        "ifindex": ifindex,
        "mac": want.mac,
        "mode": want.mode.name(),
        "parent": want.parent,
        "up": want.up,
        "tap_device": ifindex.map(|i| format!("/dev/tap{i}")),
    });
    if p.persistent.is_some() {
        v["persistent"] = json!(after.is_some());
        v["conn_name"] = json!(after.as_ref().map(|x| x.0.clone()));
        v["conn_uuid"] = json!(after.as_ref().and_then(|x| x.1.clone()));
    }
    plan.set("link", v);
    if !plan.changed() {
        plan.msg = Some(format!(
            "macvtap {} is already in the requested state",
            p.name
        ));
    }
}

/// Refuse what the kernel would refuse, before anything changes.
fn check_parent(cur: &Current, p: &Params, parent: &str, mode: &MacvlanMode) -> Result<()> {
    let par = cur.link(parent).ok_or_else(|| {
        Error::invalid(format!(
            "option 'link': the parent interface '{parent}' does not exist on this host"
        ))
    })?;
    if par.is_macvlan_family() {
        return Err(Error::invalid(format!(
            "option 'link': '{parent}' is itself a {} link; give the NIC it sits on ({})",
            par.kind().unwrap_or("?"),
            par.link.as_deref().unwrap_or("unknown")
        )));
    }
    if let Some(m) = &par.master {
        return Err(Error::not_supported(format!(
            "option 'link': '{parent}' is a port of {} '{m}'; the kernel refuses a macvtap on it (EBUSY): \
             a NIC carries either a bridge (method 1) or macvtap links (method 2), not both",
            par.slave_kind().unwrap_or("controller")
        )));
    }
    let siblings: Vec<&Link> = cur
        .links
        .iter()
        .filter(|l| {
            l.is_macvlan_family() && l.link.as_deref() == Some(parent) && l.ifname != p.name
        })
        .collect();
    if mode.is_passthrough() && !siblings.is_empty() {
        let names: Vec<&str> = siblings.iter().map(|l| l.ifname.as_str()).collect();
        return Err(Error::not_supported(format!(
            "option 'mode': passthrough needs '{parent}' to itself, but it already carries macvlan/macvtap link(s) {}",
            names.join(", ")
        )));
    }
    if let Some(pt) = siblings
        .iter()
        .find(|l| l.macvlan_mode().is_some_and(|m| m.is_passthrough()))
    {
        return Err(Error::not_supported(format!(
            "option 'link': '{parent}' already carries the passthrough link '{}'; no other macvlan/macvtap can share that parent",
            pt.ifname
        )));
    }
    Ok(())
}

/// The address the link will have: the task's, else the one it (or its profile) has,
/// else a new random one (chosen here so the profile can pin it); passthrough inherits
/// the parent's.
fn desired_mac(
    env: &mut Env,
    cur: &Current,
    p: &Params,
    prof: Option<&MacvlanProfile>,
    mode: &MacvlanMode,
    parent: &str,
) -> Result<Option<String>> {
    let parent_mac = cur.link(parent).and_then(Link::mac);
    if mode.is_passthrough() {
        return Ok(parent_mac);
    }
    if let Some(m) = p.mac() {
        if parent_mac.as_ref() == Some(&m) {
            return Err(Error::invalid(format!(
                "option 'mac': {m} is the address of the parent '{parent}'; a macvtap needs an address of its own"
            )));
        }
        if let Some(o) = cur.links.iter().find(|l| {
            l.ifname != p.name
                && l.is_macvlan_family()
                && l.link.as_deref() == Some(parent)
                && l.mac().as_ref() == Some(&m)
        }) {
            return Err(Error::invalid(format!(
                "option 'mac': {m} is already used by '{}' on the same parent '{parent}'",
                o.ifname
            )));
        }
        return Ok(Some(m));
    }
    // A link coming out of passthrough carries its parent's address, which the kernel
    // refuses for a non-passthrough link: it gets a new one.
    let keep = cur
        .link(&p.name)
        .filter(|c| !c.macvlan_mode().is_some_and(|m| m.is_passthrough()))
        .and_then(Link::mac)
        .or_else(|| prof.and_then(|x| x.mac.clone()));
    match keep {
        Some(m) if parent_mac.as_ref() != Some(&m) => Ok(Some(m)),
        _ => Ok(Some(random_mac(&env.random_bytes(6)?))),
    }
}
