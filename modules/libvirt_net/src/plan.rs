//! Options + current state → the steps (define / stop / start / autostart / undefine),
//! the diff and the return values. Pure: what it knows of the host came from `read`.

use crate::current::{Current, HostDevice};
use crate::params::{definition, Params, State};
use kvmnet_protocol::output::capitalise;
use kvmnet_protocol::{Command, Diff, Env, Error, Result, Step};
use kvmnet_virtxml::netstate::NetState;
use kvmnet_virtxml::network;
use kvmnet_virtxml::Element;
use serde_json::{json, Value};

/// What the run aims at, for apply and verify.
#[derive(Debug, Clone)]
pub struct Desired {
    /// The definition the task describes; `None` leaves the definition as it is.
    pub definition: Option<Element>,
    pub absent: bool,
    pub active: bool,
    pub autostart: bool,
    /// The network as it was, to put back when a change does not hold.
    pub before: Before,
}

/// The network before the run (what a roll-back restores).
#[derive(Debug, Clone, Default)]
pub struct Before {
    pub exists: bool,
    pub persistent: bool,
    pub active: bool,
    pub autostart: bool,
    /// The persistent definition as libvirt printed it.
    pub xml: String,
}

impl Before {
    fn of(n: &NetState) -> Before {
        Before {
            exists: n.exists,
            persistent: n.persistent,
            active: n.active,
            autostart: n.autostart,
            xml: n.inactive_text.clone(),
        }
    }
}

pub type Plan = kvmnet_protocol::Plan<Desired, Action>;

/// Why a definition is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Define {
    New,
    /// A transient network becomes persistent.
    Persist,
    /// A persistent network gets a new definition; the dotted paths that change.
    Redefine(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Define {
        xml: String,
        why: Define,
    },
    /// `restart`: stopped to start again with the new definition.
    Stop {
        restart: bool,
    },
    Start {
        again: bool,
    },
    Autostart(bool),
    Undefine,
}

/// One virsh command on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub uri: String,
    pub name: String,
    pub op: Op,
}

impl Step for Action {
    fn summary(&self) -> String {
        let n = &self.name;
        match &self.op {
            Op::Define {
                why: Define::New, ..
            } => format!("define network {n}"),
            Op::Define {
                why: Define::Persist,
                ..
            } => {
                format!("define transient network {n} persistently")
            }
            Op::Define {
                why: Define::Redefine(p),
                ..
            } if p.is_empty() => {
                format!("redefine network {n}")
            }
            Op::Define {
                why: Define::Redefine(p),
                ..
            } => {
                format!("redefine network {n} ({} changed)", p.join(", "))
            }
            Op::Stop { restart: true } => format!("stop network {n} to apply its new definition"),
            Op::Stop { restart: false } => format!("stop network {n}"),
            Op::Start { again: true } => format!("start network {n} again"),
            Op::Start { again: false } => format!("start network {n}"),
            Op::Autostart(true) => format!("enable autostart of network {n}"),
            Op::Autostart(false) => format!("disable autostart of network {n}"),
            Op::Undefine => format!("undefine network {n}"),
        }
    }

    fn command(&self) -> Option<Command> {
        let virsh = |args: &[&str]| {
            let mut v = vec!["virsh", "-c", self.uri.as_str()];
            v.extend_from_slice(args);
            Command::new(v)
        };
        let n = self.name.as_str();
        Some(match &self.op {
            Op::Define { xml, .. } => {
                virsh(&["net-define", "--file", "/dev/stdin"]).with_stdin(xml.clone())
            }
            Op::Stop { .. } => virsh(&["net-destroy", "--network", n]),
            Op::Start { .. } => virsh(&["net-start", "--network", n]),
            Op::Autostart(true) => virsh(&["net-autostart", "--network", n]),
            Op::Autostart(false) => virsh(&["net-autostart", "--network", n, "--disable"]),
            Op::Undefine => virsh(&["net-undefine", "--network", n]),
        })
    }
}

/// The `network` return value for a definition and state flags.
pub fn network_value(
    name: &str,
    n: &NetState,
    def: Option<&Element>,
    active: bool,
    autostart: bool,
    persistent: bool,
) -> Value {
    let uuid = n.uuid.clone().or_else(|| def.and_then(network::uuid));
    json!({
        "name": name,
        "uuid": uuid,
        "active": active,
        "autostart": autostart,
        "persistent": persistent,
        "forward": def.map(network::forward_mode),
        "bridge": def.and_then(network::bridge_name).or_else(|| n.bridge.clone()),
        "interfaces": def.map(network::forward_interfaces).unwrap_or_default(),
        "pf": def.and_then(network::forward_pf),
    })
}

fn flags(exists: bool, active: bool, autostart: bool, persistent: bool) -> Value {
    if !exists {
        return json!({});
    }
    json!({"active": active, "autostart": autostart, "persistent": persistent})
}

/// Warn about host devices the definition names but the host lacks (or that are not the
/// kind it needs).
fn warn_devices(env: &mut Env, name: &str, devices: &[HostDevice]) {
    for d in devices {
        let problem = match (&d.kind, d.what) {
            (None, _) => "does not exist on this host",
            (Some(k), "bridge") if !(k.is_bridge() || k.is_openvswitch()) => "is not a bridge",
            _ => continue,
        };
        let what = match d.what {
            "bridge" => "bridge",
            "pf" => "physical function",
            _ => "interface",
        };
        env.warn(format!(
            "libvirt network '{name}' uses {what} '{}', which {problem}: libvirt accepts the definition, but guests on this network will fail to start until it exists",
            d.name
        ));
    }
}

fn message(env: &Env, plan: &Plan) -> String {
    let what: Vec<String> = plan.actions.iter().map(Step::summary).collect();
    if env.check_mode() {
        format!("would {}", what.join("; "))
    } else {
        capitalise(&what.join("; "))
    }
}

pub fn plan(env: &mut Env, p: &Params, cur: &Current) -> Result<Plan> {
    if p.state == State::Absent {
        Ok(absent(env, p, &cur.net))
    } else {
        present(env, p, cur)
    }
}

fn absent(env: &mut Env, p: &Params, n: &NetState) -> Plan {
    let mut plan = Plan::new(Desired {
        definition: None,
        absent: true,
        active: false,
        autostart: false,
        before: Before::of(n),
    });
    let act = |op| Action {
        uri: p.uri.clone(),
        name: p.name.clone(),
        op,
    };
    if n.active {
        plan.push(act(Op::Stop { restart: false }));
    }
    if n.persistent {
        plan.push(act(Op::Undefine));
    }
    let header = format!("libvirt network {}", p.name);
    if plan.changed() {
        plan.diffs.push(Diff::new(
            format!("{header} (inactive XML)"),
            n.inactive.as_ref().map(Element::to_xml).unwrap_or_default(),
            "",
        ));
        plan.diffs.push(Diff::new(
            format!("{header} (state)"),
            flags(true, n.active, n.autostart, n.persistent),
            json!({}),
        ));
        plan.msg = Some(message(env, &plan).replace("; ", " and "));
    } else {
        plan.msg = Some(format!("network {} is already absent", p.name));
    }
    plan.set(
        "network",
        json!({"name": p.name, "uuid": null, "active": false, "autostart": false,
               "persistent": false, "forward": null, "bridge": null, "interfaces": [], "pf": null}),
    );
    plan.set("xml", Value::Null);
    plan
}

/// The definition to write, if any, and why.
fn to_define(n: &NetState, desired: Option<&Element>) -> Option<(Element, Define)> {
    match (desired, &n.inactive) {
        (Some(d), None) => Some((d.clone(), Define::New)),
        (Some(d), Some(have)) => {
            let (dc, hc) = network::comparable(d, have);
            if dc != hc {
                let paths = network::differences(&hc, &dc);
                Some((network::carry_over(d, Some(have)), Define::Redefine(paths)))
            } else if !n.persistent {
                Some((network::carry_over(d, Some(have)), Define::Persist))
            } else {
                None
            }
        }
        // A transient network becomes persistent with the definition it runs.
        (None, Some(have)) if !n.persistent => Some((have.clone(), Define::Persist)),
        _ => None,
    }
}

fn check_uuid(p: &Params, n: &NetState, desired: Option<&Element>) -> Result<()> {
    if let (Some(d), Some(have)) = (desired.and_then(network::uuid), &n.uuid) {
        if !d.eq_ignore_ascii_case(have) {
            return Err(Error::invalid(format!(
                "option 'xml': its <uuid> is {d} but network '{}' exists with uuid {have}; libvirt cannot change a network's uuid (leave <uuid> out, or undefine the network first)",
                p.name
            )));
        }
    }
    Ok(())
}

fn present(env: &mut Env, p: &Params, cur: &Current) -> Result<Plan> {
    let n = &cur.net;
    let name = &p.name;
    let desired = definition(p)?;
    if !n.exists && desired.is_none() {
        return Err(Error::missing_option(
            "forward",
            &format!("libvirt network '{name}' does not exist; forward (or xml) describes the network to define"),
        ));
    }
    check_uuid(p, n, desired.as_ref())?;
    let define = to_define(n, desired.as_ref());
    let new_inactive: Option<&Element> = define.as_ref().map(|(d, _)| d).or(n.inactive.as_ref());
    warn_devices(env, name, &cur.devices);
    let end_active = p.state.running().unwrap_or(n.active);
    let end_autostart = p.autostart.unwrap_or(n.exists && n.autostart);
    // Does the running network differ from the definition it will have?
    let stale = n.active
        && end_active
        && match (new_inactive, &n.live) {
            (Some(def), Some(live)) => !network::live_matches(live, def),
            _ => false,
        };
    let mut plan = Plan::new(Desired {
        definition: desired.clone(),
        absent: false,
        active: end_active,
        autostart: end_autostart,
        before: Before::of(n),
    });
    let act = |op| Action {
        uri: p.uri.clone(),
        name: name.clone(),
        op,
    };
    if let Some((def, why)) = &define {
        plan.push(act(Op::Define {
            xml: def.to_xml(),
            why: why.clone(),
        }));
    }
    let restart = stale && p.restart;
    if n.active && (!end_active || restart) {
        plan.push(act(Op::Stop { restart }));
    }
    if end_active && (!n.active || restart) {
        plan.push(act(Op::Start { again: restart }));
    }
    if end_autostart != (n.exists && n.persistent && n.autostart) {
        plan.push(act(Op::Autostart(end_autostart)));
    }
    let restart_required = stale && !p.restart;
    plan.restart_required = Some(restart_required);
    if restart_required {
        env.warn(pending_warning(name));
    }
    report(env, p, n, &mut plan, new_inactive, restart_required);
    let xml = match &define {
        // What is handed to net-define; libvirt's own text when nothing is redefined.
        Some((def, _)) => def.to_xml(),
        None => n.inactive_text.clone(),
    };
    plan.set("xml", xml);
    Ok(plan)
}

/// The warning of a run that leaves a new definition pending on a running network.
pub fn pending_warning(name: &str) -> String {
    format!(
        "libvirt network '{name}' is running with its previous definition; the new one takes effect when the network is restarted (restart: true, or virsh net-destroy + net-start), which briefly disconnects its guests"
    )
}

/// A definition as libvirt will store it, laid out like the stored one (`stored`) so
/// that a diff shows only what changes.
fn libvirts_form(def: &Element, stored: Option<&Element>) -> Element {
    let spelled = network::respell(def);
    match stored {
        Some(s) => network::align(&spelled, s),
        None => network::libvirt_layout(&spelled),
    }
}

/// The diff, the message and the `network` return value of a present/active/inactive run.
fn report(
    env: &Env,
    p: &Params,
    n: &NetState,
    plan: &mut Plan,
    new_inactive: Option<&Element>,
    restart_required: bool,
) {
    let name = &p.name;
    let (end_active, end_autostart) = (plan.desired.active, plan.desired.autostart);
    let header = format!("libvirt network {name}");
    if plan.changed() {
        let stored = n.inactive.as_ref().filter(|_| n.persistent);
        plan.diffs.push(Diff::new(
            format!("{header} (inactive XML)"),
            stored.map(Element::to_xml).unwrap_or_default(),
            new_inactive
                .map(|d| libvirts_form(d, stored).to_xml())
                .unwrap_or_default(),
        ));
        plan.diffs.push(Diff::new(
            format!("{header} (state)"),
            flags(n.exists, n.active, n.autostart, n.persistent),
            flags(true, end_active, end_autostart, true),
        ));
        let mut msg = message(env, plan);
        if restart_required {
            msg.push_str("; the running network keeps its previous definition until restarted");
        }
        plan.msg = Some(msg);
    } else if restart_required {
        plan.msg = Some(format!(
            "network {name} is defined as requested, but it still runs its previous definition (restart required)"
        ));
    } else {
        plan.msg = Some(format!("network {name} is already in the requested state"));
    }
    let value = network_value(name, n, new_inactive, end_active, end_autostart, true);
    plan.set("network", value);
}
