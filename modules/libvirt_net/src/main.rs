//! kvmnet.network.libvirt_net — a libvirt network in any forward mode, its definition
//! compared semantically with libvirt's, redefined only when it differs (keeping its
//! uuid), its running and autostart state handled in the same run.
//!
//! query: one virsh process (net-info, inactive and live XML); host devices the
//! definition names are checked in sysfs (no process). plan: define / destroy / start /
//! autostart / undefine as separate virsh commands. verify: one more virsh process.

mod options;
mod state;

use kvmnet_protocol::output::capitalise;
use kvmnet_protocol::{Action, Ctx, Diff, Error, Module, Plan, Result, Spec};
use kvmnet_virtxml::network;
use kvmnet_virtxml::Element;
use options::Params;
use serde_json::{json, Value};
use state::NetState;

struct LibvirtNet;

/// What query read.
pub struct Current {
    net: NetState,
}

fn virsh(uri: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec!["virsh".to_string(), "-c".into(), uri.into()];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// The `network` return value for a definition and state flags.
fn network_value(
    name: &str,
    uuid: Option<String>,
    def: Option<&Element>,
    active: bool,
    autostart: bool,
    persistent: bool,
    live_bridge: Option<&String>,
) -> Value {
    let forward = def.map(network::forward_mode);
    let bridge = def
        .and_then(network::bridge_name)
        .or_else(|| live_bridge.cloned());
    json!({
        "name": name,
        "uuid": uuid,
        "active": active,
        "autostart": autostart,
        "persistent": persistent,
        "forward": forward,
        "bridge": bridge,
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

/// Warn about host devices the definition names but the host lacks: libvirt accepts
/// such a definition (and even starts the network); guests fail later. Reads sysfs
/// (`/sys/class/net/DEV/uevent`: present for every link, `DEVTYPE=bridge` for bridges), so
/// the check spawns no command.
fn warn_missing_devices(ctx: &mut Ctx, name: &str, def: &Element) {
    for (what, dev) in network::referenced_devices(def) {
        let uevent = if dev.contains('/') || dev.starts_with('.') {
            None
        } else {
            ctx.read_file(&format!("/sys/class/net/{dev}/uevent"))
        };
        let problem = match (what, uevent) {
            (_, None) => "does not exist on this host",
            ("bridge", Some(u)) if !u.lines().any(|l| l.trim() == "DEVTYPE=bridge") => {
                "is not a bridge"
            }
            _ => continue,
        };
        let what = match what {
            "bridge" => "bridge",
            "pf" => "physical function",
            _ => "interface",
        };
        ctx.warn(format!(
            "libvirt network '{name}' uses {what} '{dev}', which {problem}: libvirt accepts the definition, but guests on this network will fail to start until it exists"
        ));
    }
}

fn plan_absent(ctx: &mut Ctx, p: &Params, cur: &Current) -> Plan {
    let n = &cur.net;
    let mut plan = Plan::default();
    let name = &p.name;
    if n.active {
        plan.push(Action::new(
            format!("stop network {name}"),
            virsh(&p.uri, &["net-destroy", "--network", name]),
        ));
    }
    if n.persistent {
        plan.push(Action::new(
            format!("undefine network {name}"),
            virsh(&p.uri, &["net-undefine", "--network", name]),
        ));
    }
    let header = format!("libvirt network {name}");
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
        let what: Vec<&str> = plan.actions.iter().map(|a| a.summary.as_str()).collect();
        plan.msg = Some(if ctx.check_mode() {
            format!("would {}", what.join(" and "))
        } else {
            capitalise(&what.join(" and "))
        });
    } else {
        plan.msg = Some(format!("network {name} is already absent"));
    }
    plan.set(
        "network",
        json!({"name": name, "uuid": null, "active": false, "autostart": false,
               "persistent": false, "forward": null, "bridge": null, "interfaces": [], "pf": null}),
    );
    plan.set("xml", Value::Null);
    plan
}

fn plan_present(ctx: &mut Ctx, p: &Params, cur: &Current) -> Result<Plan> {
    let n = &cur.net;
    let name = &p.name;
    let desired = options::desired(p)?;
    if !n.exists && desired.is_none() {
        return Err(Error::missing_option(
            "forward",
            &format!("libvirt network '{name}' does not exist; forward (or xml) describes the network to define"),
        ));
    }
    if let (Some(d), Some(have)) = (desired.as_ref().and_then(network::uuid), &n.uuid) {
        if !d.eq_ignore_ascii_case(have) {
            return Err(Error::invalid(format!(
                "option 'xml': its <uuid> is {d} but network '{name}' exists with uuid {have}; libvirt cannot change a network's uuid (leave <uuid> out, or undefine the network first)"
            )));
        }
    }
    // The definition to write, if any.
    let mut changed_paths: Vec<String> = Vec::new();
    let define: Option<Element> = match (&desired, &n.inactive) {
        (Some(d), None) => Some(d.clone()),
        (Some(d), Some(have)) => {
            let (dc, hc) = network::comparable(d, have);
            if dc != hc {
                changed_paths = network::differences(&hc, &dc);
                Some(network::carry_over(d, Some(have)))
            } else if !n.persistent {
                Some(network::carry_over(d, Some(have)))
            } else {
                None
            }
        }
        // A transient network becomes persistent with the definition it runs.
        (None, Some(have)) if !n.persistent => Some(have.clone()),
        _ => None,
    };
    let new_inactive: Option<&Element> = define.as_ref().or(n.inactive.as_ref());
    if let Some(def) = new_inactive {
        warn_missing_devices(ctx, name, def);
    }

    let want_active = match p.state.as_str() {
        "active" => Some(true),
        "inactive" => Some(false),
        _ => None,
    };
    let end_active = want_active.unwrap_or(n.active);
    let end_autostart = p.autostart.unwrap_or(n.exists && n.autostart);
    // Does the running network differ from the definition it will have?
    let stale = n.active
        && end_active
        && match (new_inactive, &n.live) {
            (Some(def), Some(live)) => !network::live_matches(live, def),
            _ => false,
        };

    let mut plan = Plan::default();
    if let Some(def) = &define {
        let summary = if !n.exists {
            format!("define network {name}")
        } else if !n.persistent {
            format!("define transient network {name} persistently")
        } else if changed_paths.is_empty() {
            format!("redefine network {name}")
        } else {
            format!(
                "redefine network {name} ({} changed)",
                changed_paths.join(", ")
            )
        };
        plan.push(
            Action::new(
                summary,
                virsh(&p.uri, &["net-define", "--file", "/dev/stdin"]),
            )
            .with_stdin(def.to_xml()),
        );
    }
    let restart = stale && p.restart;
    if n.active && (!end_active || restart) {
        plan.push(Action::new(
            if restart {
                format!("stop network {name} to apply its new definition")
            } else {
                format!("stop network {name}")
            },
            virsh(&p.uri, &["net-destroy", "--network", name]),
        ));
    }
    if end_active && (!n.active || restart) {
        plan.push(Action::new(
            if restart {
                format!("start network {name} again")
            } else {
                format!("start network {name}")
            },
            virsh(&p.uri, &["net-start", "--network", name]),
        ));
    }
    if end_autostart != (n.exists && n.persistent && n.autostart) {
        plan.push(Action::new(
            if end_autostart {
                format!("enable autostart of network {name}")
            } else {
                format!("disable autostart of network {name}")
            },
            if end_autostart {
                virsh(&p.uri, &["net-autostart", "--network", name])
            } else {
                virsh(&p.uri, &["net-autostart", "--network", name, "--disable"])
            },
        ));
    }
    let restart_required = stale && !p.restart;
    plan.restart_required = Some(restart_required);
    if restart_required {
        ctx.warn(format!(
            "libvirt network '{name}' is running with its previous definition; the new one takes effect when the network is restarted (restart: true, or virsh net-destroy + net-start), which briefly disconnects its guests"
        ));
    }

    let header = format!("libvirt network {name}");
    if plan.changed() {
        plan.diffs.push(Diff::new(
            format!("{header} (inactive XML)"),
            n.inactive
                .as_ref()
                .filter(|_| n.persistent)
                .map(Element::to_xml)
                .unwrap_or_default(),
            new_inactive.map(Element::to_xml).unwrap_or_default(),
        ));
        plan.diffs.push(Diff::new(
            format!("{header} (state)"),
            flags(n.exists, n.active, n.autostart, n.persistent),
            flags(true, end_active, end_autostart, true),
        ));
        let what: Vec<&str> = plan.actions.iter().map(|a| a.summary.as_str()).collect();
        let mut msg = if ctx.check_mode() {
            format!("would {}", what.join("; "))
        } else {
            capitalise(&what.join("; "))
        };
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
    let uuid = n
        .uuid
        .clone()
        .or_else(|| new_inactive.and_then(network::uuid));
    plan.set(
        "network",
        network_value(
            name,
            uuid,
            new_inactive,
            end_active,
            end_autostart,
            true,
            n.bridge.as_ref(),
        ),
    );
    // libvirt's own text when nothing is redefined, else what is handed to net-define.
    let xml = match &define {
        Some(def) => def.to_xml(),
        None => n.inactive_text.clone(),
    };
    plan.set("xml", xml);
    Ok(plan)
}

impl Module for LibvirtNet {
    const NAME: &'static str = "libvirt_net";
    type Params = Params;
    type State = Current;

    fn spec() -> Spec {
        options::spec()
    }

    fn validate(p: &Params) -> Result<()> {
        options::validate(p)
    }

    fn query(ctx: &mut Ctx, p: &Params) -> Result<Current> {
        let net = state::read(ctx, &p.uri, &p.name)?;
        Ok(Current { net })
    }

    fn plan(ctx: &mut Ctx, p: &Params, cur: &Current) -> Result<Plan> {
        if p.state == "absent" {
            Ok(plan_absent(ctx, p, cur))
        } else {
            plan_present(ctx, p, cur)
        }
    }

    fn verify(ctx: &mut Ctx, p: &Params, plan: &mut Plan) -> Result<()> {
        let n = state::read(ctx, &p.uri, &p.name)?;
        let name = &p.name;
        if p.state == "absent" {
            if n.exists {
                return Err(Error::verification(format!(
                    "network {name} still exists after net-destroy/net-undefine (active: {}, persistent: {})",
                    n.active, n.persistent
                )));
            }
            return Ok(());
        }
        let planned = plan.result.get("network").cloned().unwrap_or(Value::Null);
        let want = |k: &str| planned.get(k).and_then(Value::as_bool).unwrap_or(false);
        let (Some(inactive), Some(live)) = (&n.inactive, &n.live) else {
            return Err(Error::verification(format!(
                "network {name} does not exist after it was defined"
            )));
        };
        let mut wrong = Vec::new();
        if !n.persistent {
            wrong.push("not persistent".to_string());
        }
        if n.active != want("active") {
            wrong.push(format!("active (is {})", n.active));
        }
        if n.autostart != want("autostart") {
            wrong.push(format!("autostart (is {})", n.autostart));
        }
        if let Some(d) = options::desired(p)? {
            let (dc, hc) = network::comparable(&d, inactive);
            if dc != hc {
                wrong.push(format!(
                    "the definition libvirt stored differs in {} (libvirt drops or rewrites elements and values it does not know; write them as libvirt stores them)",
                    network::differences(&hc, &dc).join(", ")
                ));
            }
        }
        let stale = n.active && !network::live_matches(live, inactive);
        if stale && plan.restart_required != Some(true) {
            wrong.push("running definition (still the previous one)".into());
        }
        if !wrong.is_empty() {
            return Err(Error::verification(format!(
                "network {name} is not as requested after the change: {}",
                wrong.join("; ")
            ))
            .with("xml", n.inactive_text.clone()));
        }
        plan.restart_required = Some(stale);
        plan.set(
            "network",
            network_value(
                name,
                n.uuid.clone(),
                Some(inactive),
                n.active,
                n.autostart,
                n.persistent,
                n.bridge.as_ref(),
            ),
        );
        plan.set("xml", n.inactive_text.clone());
        let _ = ctx;
        Ok(())
    }
}

fn main() {
    kvmnet_protocol::run::<LibvirtNet>()
}

#[cfg(test)]
mod tests;
