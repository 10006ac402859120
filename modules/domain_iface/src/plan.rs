//! Compare what was asked with the persistent and live definitions; list the steps.

use crate::params::{Live, Params};
use crate::query::State;
use kvmnet_iproute::parse_links;
use kvmnet_protocol::{Action, Ctx, Diff, Error, Plan, Result};
use kvmnet_virtxml::interface::{self as iface, Backing, Facets, Wanted};
use kvmnet_virtxml::Element;
use serde_json::{json, Value};

/// Where a step applies.
pub const CONFIG: &str = "--config";
pub const LIVE: &str = "--live";

fn virsh(p: &Params, args: &[&str]) -> Vec<String> {
    let mut v = vec!["virsh".to_string(), "-c".into(), p.uri.clone()];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// `virsh update-device|attach-device --domain DOMAIN --file /dev/stdin --config|--live`,
/// XML on stdin. The domain is the value of `--domain`: never read as an option.
pub fn device_action(p: &Params, verb: &str, flag: &str, summary: String, xml: &Element) -> Action {
    Action::new(
        summary,
        virsh(
            p,
            &[verb, "--domain", &p.domain, "--file", "/dev/stdin", flag],
        ),
    )
    .with_stdin(xml.to_xml())
}

fn describe(f: &Facets) -> String {
    let src = f.source.as_deref().unwrap_or("?");
    match f.mode.as_deref() {
        Some(m) => format!("{} {src} ({m})", f.kind),
        None => format!("{} {src}", f.kind),
    }
}

/// The `interface` return value.
pub fn result_value(f: &Facets, live: Option<&Element>) -> Value {
    let mut v = json!({
        "mac": f.mac, "type": f.kind, "source": f.source, "mode": f.mode, "model": f.model,
        "state": "present",
    });
    if let Some(dev) = live.and_then(iface::target_dev) {
        v["target"] = json!(dev);
    }
    v
}

fn header(p: &Params, mac: &str, which: &str) -> String {
    format!("domain {} interface {mac} ({which})", p.domain)
}

/// Each interface as "MAC (type source)", for messages.
fn listing(domain: &Element) -> Vec<String> {
    iface::interfaces(domain)
        .iter()
        .map(|i| {
            let f = iface::facets(i);
            format!("{} ({})", f.mac, describe(&f))
        })
        .collect()
}

/// Pick the interface the task is about.
fn select(p: &Params, st: &State) -> Result<Option<String>> {
    if let Some(m) = p.mac() {
        return Ok(Some(m));
    }
    let all = iface::interfaces(&st.persistent);
    match all.len() {
        1 => Ok(iface::mac_of(all[0])),
        0 => Err(Error::missing_option(
            "mac",
            &format!(
                "domain '{}' has no interface; give the MAC of the interface to add (kvmnet never invents one)",
                p.domain
            ),
        )),
        n => {
            let list = listing(&st.persistent);
            Err(Error::missing_option(
                "mac",
                &format!(
                    "domain '{}' has {n} interfaces, say which one: {}",
                    p.domain,
                    list.join(", ")
                ),
            ))
        }
    }
}

/// The wanted facets from the options.
fn wanted(p: &Params) -> Wanted {
    Wanted {
        kind: p.kind.clone(),
        source: p.source.clone(),
        mode: p.mode.clone(),
        model: p.model.clone(),
    }
}

/// Check the merged facets make sense, with messages naming the option.
fn check_merged(p: &Params, st: &State, cur: Option<&Facets>, want: &Facets) -> Result<()> {
    if cur.is_none() && (p.kind.is_none() || p.source.is_none()) {
        let all = listing(&st.persistent);
        let has = if all.is_empty() {
            "it has no interface".to_string()
        } else {
            format!("its interfaces: {}", all.join(", "))
        };
        return Err(Error::invalid(format!(
            "option 'mac': domain '{}' has no interface with MAC {} ({has}); to add one, give 'type' and 'source' too",
            p.domain, want.mac
        )));
    }
    if !iface::TYPES.contains(&want.kind.as_str()) {
        if p.source.is_some() || p.mode.is_some() {
            return Err(Error::missing_option(
                "type",
                &format!(
                    "interface {} is of type '{}', which kvmnet does not manage; give type network, bridge or direct",
                    want.mac, want.kind
                ),
            ));
        }
        return Ok(());
    }
    if want.source.is_none() {
        let why = match cur {
            Some(c) => format!(
                "changing interface {} from type {} to {} needs the {} to use",
                want.mac,
                c.kind,
                want.kind,
                what_source(&want.kind)
            ),
            None => format!(
                "adding interface {} needs the {} to use",
                want.mac,
                what_source(&want.kind)
            ),
        };
        return Err(Error::missing_option("source", &why));
    }
    if p.mode.is_some() && want.kind != "direct" {
        return Err(Error::invalid(format!(
            "option 'mode' applies to type 'direct' only; interface {} is of type '{}'",
            want.mac, want.kind
        )));
    }
    if want.kind == "direct" && p.mode.is_none() && cur.is_none_or(|c| c.kind != "direct") {
        return Err(Error::missing_option(
            "mode",
            "type 'direct' needs a macvtap mode: bridge, private, vepa or passthrough",
        ));
    }
    Ok(())
}

fn what_source(kind: &str) -> &'static str {
    match kind {
        "network" => "network name",
        "bridge" => "bridge name",
        _ => "host device",
    }
}

/// Check that the source exists (networks from the batch read, devices with `ip`).
/// A network or bridge that an earlier task may create is a warning in check mode.
fn check_source(ctx: &mut Ctx, p: &Params, st: &State, want: &Facets) -> Result<()> {
    let Some(src) = want.source.as_deref() else {
        return Ok(());
    };
    let missing = |what: String| -> Result<()> { Err(Error::invalid(what)) };
    match want.kind.as_str() {
        "network" if !st.networks.iter().any(|n| n == src) => {
            let defined = if st.networks.is_empty() {
                "none is defined".to_string()
            } else {
                format!("defined: {}", st.networks.join(", "))
            };
            let msg = format!(
                "option 'source': network '{src}' is not defined at {} ({defined})",
                p.uri
            );
            if ctx.check_mode() {
                ctx.warn(format!("{msg}; assuming an earlier task creates it"));
                return Ok(());
            }
            return missing(msg);
        }
        "bridge" | "direct" => {
            let out = ctx.read_any(&["ip", "-j", "-d", "link", "show", "dev", src])?;
            let link = if out.success() {
                parse_links(&out.stdout)?.into_iter().next()
            } else {
                None
            };
            match (want.kind.as_str(), link) {
                ("bridge", None) => {
                    let msg =
                        format!("option 'source': bridge '{src}' does not exist on this host");
                    if ctx.check_mode() {
                        ctx.warn(format!("{msg}; assuming an earlier task creates it"));
                        return Ok(());
                    }
                    return missing(msg);
                }
                ("bridge", Some(l)) if !matches!(l.kind(), Some("bridge" | "openvswitch")) => {
                    return missing(format!(
                        "option 'source': '{src}' is not a bridge (it is a {} device); use type direct to put the guest on a NIC",
                        l.kind().unwrap_or("network")
                    ));
                }
                (_, None) => {
                    return missing(format!(
                        "option 'source': host device '{src}' does not exist on this host"
                    ))
                }
                _ => {}
            }
        }
        _ => {}
    }
    Ok(())
}

/// How interfaces on the wanted source are backed on the host, when known.
fn backing(st: &State, want: &Facets) -> Option<Backing> {
    match want.kind.as_str() {
        "bridge" => Some(Backing::Bridge),
        "direct" => Some(Backing::Macvtap),
        "network" => st
            .source_network
            .as_ref()
            .filter(|n| n.child("name").map(|x| x.text.as_str()) == want.source.as_deref())
            .map(iface::network_backing),
        _ => Some(Backing::Other),
    }
}

/// Why libvirt cannot make this change on the running guest (None: it can).
fn live_refusal(st: &State, live_if: &Element, want: &Facets) -> Option<String> {
    let cur = iface::facets(live_if);
    if cur.model != want.model {
        return Some(format!(
            "libvirt cannot change the model of a running guest's interface ({} to {})",
            cur.model.as_deref().unwrap_or("default"),
            want.model.as_deref().unwrap_or("default")
        ));
    }
    if cur.kind == want.kind && cur.source == want.source && cur.mode == want.mode {
        return None;
    }
    if want.kind == "network" {
        if let Some(n) = &want.source {
            if !st.active_networks.contains(n) {
                return Some(format!("network '{n}' is not active"));
            }
        }
    }
    let from = iface::live_backing(live_if);
    let to = backing(st, want);
    if from == Backing::Bridge && to == Some(Backing::Bridge) {
        return None;
    }
    let name = |b: Option<Backing>| match b {
        Some(Backing::Bridge) => "a bridge",
        Some(Backing::Macvtap) => "a macvtap device",
        Some(Backing::Other) => "a non-bridge backend",
        None => "an unknown backend",
    };
    Some(format!(
        "libvirt cannot move a running guest's interface from {} to {} (only between bridge-backed sources)",
        name(Some(from)),
        name(to)
    ))
}

pub fn plan(ctx: &mut Ctx, p: &Params, st: &State) -> Result<Plan> {
    let mac = select(p, st)?.unwrap_or_default();
    let pers_if = iface::find(&st.persistent, &mac).cloned();
    let live_if = st.live.as_ref().and_then(|l| iface::find(l, &mac)).cloned();
    if p.absent() {
        return plan_absent(p, st, &mac, pers_if.as_ref(), live_if.as_ref());
    }
    let live_mode = p.live();
    let mut plan = Plan::default();
    let cur = pers_if.as_ref().map(iface::facets);
    let base = cur.clone().unwrap_or(Facets {
        mac: mac.clone(),
        ..Default::default()
    });
    let want = wanted(p).merged(&base);
    check_merged(p, st, cur.as_ref(), &want)?;

    // The persistent step.
    let mut steps: Vec<Action> = Vec::new();
    let pers_new = match &pers_if {
        Some(el) => iface::edit(el, &want),
        None => iface::new_interface(&want),
    };
    let pers_change = cur.as_ref() != Some(&want);
    // The live step, when the guest runs.
    let running = st.live.is_some();
    let live_cur = live_if.as_ref().map(iface::facets);
    // The running guest goes where the definition goes; its model changes only when
    // the task asks for a model (a model change still pending is not retried).
    let live_want = match &live_cur {
        Some(lc) => Facets {
            model: p.model.clone().or_else(|| lc.model.clone()),
            ..want.clone()
        },
        None => want.clone(),
    };
    let live_change = running && live_cur.as_ref() != Some(&live_want);
    if pers_change || (live_change && live_mode != Live::ConfigOnly) {
        check_source(ctx, p, st, &want)?;
    }
    let mut live_new: Option<Element> = None;
    if live_change && live_mode != Live::ConfigOnly {
        let refusal = match &live_if {
            Some(l) => live_refusal(st, l, &live_want),
            None => None, // hotplug: a new interface can be attached live
        };
        match (live_mode, refusal) {
            (Live::Must, Some(why)) => {
                return Err(Error::not_supported(format!(
                    "live is true but {why}; nothing was changed (use live: auto to change the definition and restart the guest later)"
                )))
            }
            (_, Some(why)) => {
                // A change made now, or one still pending from an earlier run.
                ctx.warn(format!(
                    "domain {}: {why}; the change applies when the guest is restarted",
                    p.domain
                ));
            }
            (_, None) => {
                live_new = Some(match &live_if {
                    Some(l) => iface::edit(l, &live_want),
                    None => pers_new.clone(),
                });
            }
        }
    }
    let live_after = match (&live_new, &live_cur) {
        (Some(_), _) => Some(live_want.clone()),
        (None, lc) => lc.clone(),
    };
    let restart_required = running && live_after.as_ref() != Some(&want);
    let what = |from: Option<&Facets>, to: &Facets, which: &str| match from {
        None => format!(
            "add interface {mac} ({}) to domain {} {which}",
            describe(to),
            p.domain
        ),
        Some(c) if c.kind != to.kind || c.source != to.source || c.mode != to.mode => {
            format!(
                "point interface {mac} of domain {} from {} to {} {which}",
                p.domain,
                describe(c),
                describe(to)
            )
        }
        Some(_) => format!(
            "set the model of interface {mac} of domain {} to {} {which}",
            p.domain,
            to.model.as_deref().unwrap_or("default")
        ),
    };
    if pers_change {
        let verb = if pers_if.is_some() {
            "update-device"
        } else {
            "attach-device"
        };
        steps.push(device_action(
            p,
            verb,
            CONFIG,
            what(cur.as_ref(), &want, "in the persistent definition"),
            &pers_new,
        ));
        plan.diffs.push(Diff::new(
            header(p, &mac, "persistent"),
            pers_if.as_ref().map(Element::to_xml).unwrap_or_default(),
            pers_new.to_xml(),
        ));
    }
    if let Some(l) = &live_new {
        let verb = if live_if.is_some() {
            "update-device"
        } else {
            "attach-device"
        };
        steps.push(device_action(
            p,
            verb,
            LIVE,
            what(live_cur.as_ref(), &live_want, "in the running guest"),
            l,
        ));
        plan.diffs.push(Diff::new(
            header(p, &mac, "live"),
            live_if.as_ref().map(Element::to_xml).unwrap_or_default(),
            l.to_xml(),
        ));
    }
    plan.actions = steps;
    plan.restart_required = Some(restart_required);
    let live_after = live_new.as_ref().or(live_if.as_ref());
    plan.set("interface", result_value(&want, live_after));
    if !plan.changed() && restart_required {
        plan.msg = Some(format!(
            "interface {mac} of domain {} is defined as requested; the running guest takes it when restarted",
            p.domain
        ));
    }
    Ok(plan)
}

fn plan_absent(
    p: &Params,
    st: &State,
    mac: &str,
    pers_if: Option<&Element>,
    live_if: Option<&Element>,
) -> Result<Plan> {
    let mut plan = Plan::default();
    let running = st.live.is_some();
    if let Some(el) = pers_if {
        let kind = el.attr("type").unwrap_or("network");
        plan.push(Action::new(
            format!(
                "remove interface {mac} from the persistent definition of domain {}",
                p.domain
            ),
            virsh(
                p,
                &[
                    "detach-interface",
                    "--domain",
                    &p.domain,
                    "--type",
                    kind,
                    "--mac",
                    mac,
                    CONFIG,
                ],
            ),
        ));
        plan.diffs
            .push(Diff::new(header(p, mac, "persistent"), el.to_xml(), ""));
        if let (true, Some(l)) = (running, live_if) {
            if p.live() != Live::ConfigOnly {
                let kind = l.attr("type").unwrap_or(kind);
                plan.push(Action::new(
                    format!("remove interface {mac} from the running guest {}", p.domain),
                    virsh(
                        p,
                        &[
                            "detach-interface",
                            "--domain",
                            &p.domain,
                            "--type",
                            kind,
                            "--mac",
                            mac,
                            LIVE,
                        ],
                    ),
                ));
                plan.diffs
                    .push(Diff::new(header(p, mac, "live"), l.to_xml(), ""));
            }
        }
    }
    // Until the guest lets go of it (or is restarted), the running guest still has it.
    let pending = running && live_if.is_some();
    plan.restart_required = Some(pending && (pers_if.is_none() || p.live() == Live::ConfigOnly));
    plan.set("interface", json!({"mac": mac, "state": "absent"}));
    if !plan.changed() && pending {
        plan.msg = Some(format!(
            "interface {mac} is no longer in the definition of domain {}; the running guest still has it until it is restarted",
            p.domain
        ));
    }
    Ok(plan)
}
