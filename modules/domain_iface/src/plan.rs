//! Options + current state → the steps on the persistent definition and on the running
//! guest, the diff and the `interface` return value. Pure: what it knows of the host came
//! from `read`.

use crate::current::Current;
use crate::params::{Live, Params};
use kvmnet_protocol::{Diff, Env, Error, Result};
use kvmnet_virtxml::domain::DomainState;
use kvmnet_virtxml::interface::{self as iface, Backing, Facets, Wanted};
use kvmnet_virtxml::Element;
use serde_json::{json, Value};

pub use crate::apply::{Action, Op};

/// What the run aims at, for apply and verify.
#[derive(Debug, Clone)]
pub struct Desired {
    /// The interface's MAC (normalised).
    pub mac: String,
    /// Its facets in the persistent definition after the run; `None`: removed.
    pub interface: Option<Facets>,
    /// The model the task gave: the running guest's model is held to it only then.
    pub model: Option<String>,
}

pub type Plan = kvmnet_protocol::Plan<Desired, Action>;

pub fn plan(env: &mut Env, p: &Params, cur: &Current) -> Result<Plan> {
    let dom = &cur.dom;
    let mac = select(p, dom)?;
    let pers_if = iface::find(&dom.persistent, &mac);
    let live_if = dom.live.as_ref().and_then(|l| iface::find(l, &mac));
    if p.absent() {
        return Ok(absent(p, dom, mac, pers_if, live_if));
    }
    present(env, p, cur, mac, pers_if, live_if)
}

/// The running guest's interface: as it is and as it should be after the run.
struct LiveTarget {
    now: Option<Facets>,
    want: Facets,
    /// The guest runs and its interface differs from `want`.
    change: bool,
}

fn present(
    env: &mut Env,
    p: &Params,
    cur: &Current,
    mac: String,
    pers_if: Option<&Element>,
    live_if: Option<&Element>,
) -> Result<Plan> {
    let dom = &cur.dom;
    let now = pers_if.map(iface::facets);
    let base = now.clone().unwrap_or(Facets {
        mac: mac.clone(),
        ..Default::default()
    });
    let want = wanted(p).merged(&base);
    check_merged(p, dom, now.as_ref(), &want)?;
    let pers_new = match pers_if {
        Some(el) => iface::edit(el, &want),
        None => iface::new_interface(&want),
    };
    let pers_change = now.as_ref() != Some(&want);
    let live = live_target(p, dom, live_if, &want);
    if pers_change || (live.change && p.live() != Live::ConfigOnly) {
        check_source(env, p, cur, &want)?;
    }
    let live_new = live_element(env, p, dom, live_if, &live, &pers_new)?;
    let mut plan = Plan::new(Desired {
        mac: mac.clone(),
        interface: Some(want.clone()),
        model: p.model.clone(),
    });
    let step = |op| Action {
        uri: p.uri.clone(),
        domain: p.domain.clone(),
        op,
    };
    if pers_change {
        plan.push(step(config_op(now, &want, &pers_new)));
        plan.diffs
            .push(diff(p, &mac, "persistent", pers_if, &pers_new));
    }
    if let Some(l) = &live_new {
        plan.push(step(live_op(&live, l)));
        plan.diffs.push(diff(p, &mac, "live", live_if, l));
    }
    let live_after = if live_new.is_some() {
        Some(&live.want)
    } else {
        live.now.as_ref()
    };
    let restart_required = dom.live.is_some() && live_after != Some(&want);
    plan.restart_required = Some(restart_required);
    plan.set(
        "interface",
        result_value(&want, live_new.as_ref().or(live_if)),
    );
    if !plan.changed() && restart_required {
        plan.msg = Some(format!(
            "interface {mac} of domain {} is defined as requested; the running guest takes it when restarted",
            p.domain
        ));
    }
    Ok(plan)
}

/// The persistent step: update the interface, or add it.
fn config_op(now: Option<Facets>, want: &Facets, xml: &Element) -> Op {
    let (to, xml) = (want.clone(), xml.clone());
    match now {
        Some(from) => Op::UpdateConfig { from, to, xml },
        None => Op::AttachConfig { to, xml },
    }
}

/// The live step: update the running guest's interface, or hot-plug it.
fn live_op(live: &LiveTarget, xml: &Element) -> Op {
    let (to, xml) = (live.want.clone(), xml.clone());
    match &live.now {
        Some(from) => Op::UpdateLive {
            from: from.clone(),
            to,
            xml,
        },
        None => Op::AttachLive { to, xml },
    }
}

fn diff(p: &Params, mac: &str, which: &str, before: Option<&Element>, after: &Element) -> Diff {
    Diff::new(
        header(p, mac, which),
        before.map(Element::to_xml).unwrap_or_default(),
        after.to_xml(),
    )
}

/// What the running guest's interface should become. It goes where the definition goes;
/// its model changes only when the task asks for a model (a model change still pending is
/// not retried).
fn live_target(
    p: &Params,
    dom: &DomainState,
    live_if: Option<&Element>,
    want: &Facets,
) -> LiveTarget {
    let now = live_if.map(iface::facets);
    let want = match &now {
        Some(lc) => Facets {
            model: p.model.clone().or_else(|| lc.model.clone()),
            ..want.clone()
        },
        None => want.clone(),
    };
    let change = dom.live.is_some() && now.as_ref() != Some(&want);
    LiveTarget { now, want, change }
}

/// The element to put into the running guest now; `None` when it needs nothing now (not
/// running, unchanged, `live: false`) or when libvirt cannot do it (a warning; with
/// `live: true` an error before anything changes).
fn live_element(
    env: &mut Env,
    p: &Params,
    dom: &DomainState,
    live_if: Option<&Element>,
    live: &LiveTarget,
    pers_new: &Element,
) -> Result<Option<Element>> {
    if !live.change || p.live() == Live::ConfigOnly {
        return Ok(None);
    }
    // A new interface can always be hot-plugged.
    let refusal = live_if.and_then(|l| live_refusal(dom, l, &live.want));
    match (p.live(), refusal) {
        (Live::Must, Some(why)) => Err(Error::not_supported(format!(
            "live is true but {why}; nothing was changed (use live: auto to change the definition and restart the guest later)"
        ))),
        (_, Some(why)) => {
            // A change made now, or one still pending from an earlier run.
            env.warn(format!(
                "domain {}: {why}; the change applies when the guest is restarted",
                p.domain
            ));
            Ok(None)
        }
        (_, None) => Ok(Some(match live_if {
            Some(l) => iface::edit(l, &live.want),
            None => pers_new.clone(),
        })),
    }
}

fn absent(
    p: &Params,
    dom: &DomainState,
    mac: String,
    pers_if: Option<&Element>,
    live_if: Option<&Element>,
) -> Plan {
    let mut plan = Plan::new(Desired {
        mac: mac.clone(),
        interface: None,
        model: None,
    });
    let running = dom.live.is_some();
    let step = |op| Action {
        uri: p.uri.clone(),
        domain: p.domain.clone(),
        op,
    };
    if let Some(el) = pers_if {
        let kind = el.attr("type").unwrap_or("network");
        plan.push(step(Op::DetachConfig {
            mac: mac.clone(),
            kind: kind.to_string(),
        }));
        plan.diffs
            .push(Diff::new(header(p, &mac, "persistent"), el.to_xml(), ""));
        if let (true, Some(l), true) = (running, live_if, p.live() != Live::ConfigOnly) {
            plan.push(step(Op::DetachLive {
                mac: mac.clone(),
                kind: l.attr("type").unwrap_or(kind).to_string(),
            }));
            plan.diffs
                .push(Diff::new(header(p, &mac, "live"), l.to_xml(), ""));
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
    plan
}

/// "type source" or "type source (mode)", for messages.
pub fn describe(f: &Facets) -> String {
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

/// The MAC of the interface the task is about: `mac`, or the domain's only interface.
fn select(p: &Params, dom: &DomainState) -> Result<String> {
    if let Some(m) = p.mac() {
        return Ok(m);
    }
    let all = iface::interfaces(&dom.persistent);
    match all.len() {
        1 => Ok(iface::mac_of(all[0]).unwrap_or_default()),
        0 => Err(Error::missing_option(
            "mac",
            &format!(
                "domain '{}' has no interface; give the MAC of the interface to add (kvmnet never invents one)",
                p.domain
            ),
        )),
        n => Err(Error::missing_option(
            "mac",
            &format!(
                "domain '{}' has {n} interfaces, say which one: {}",
                p.domain,
                listing(&dom.persistent).join(", ")
            ),
        )),
    }
}

/// The wanted facets from the options.
fn wanted(p: &Params) -> Wanted {
    Wanted {
        kind: p.kind.map(|k| k.name().to_string()),
        source: p.source.clone(),
        mode: p.mode_name(),
        model: p.model.clone(),
    }
}

/// Check the merged facets make sense, with messages naming the option.
fn check_merged(p: &Params, dom: &DomainState, cur: Option<&Facets>, want: &Facets) -> Result<()> {
    if cur.is_none() && (p.kind.is_none() || p.source.is_none()) {
        let all = listing(&dom.persistent);
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
        let what = what_source(&want.kind);
        let why = match cur {
            Some(c) => format!(
                "changing interface {} from type {} to {} needs the {what} to use",
                want.mac, c.kind, want.kind
            ),
            None => format!("adding interface {} needs the {what} to use", want.mac),
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

/// Something an earlier task of the play may create (a network, a bridge): a warning in
/// check mode, an error otherwise.
fn maybe_planned(env: &mut Env, msg: String) -> Result<()> {
    if env.check_mode() {
        env.warn(format!("{msg}; assuming an earlier task creates it"));
        return Ok(());
    }
    Err(Error::invalid(msg))
}

/// Check that the source exists (networks from the batch read, devices from sysfs) and,
/// for type bridge, is a bridge.
fn check_source(env: &mut Env, p: &Params, cur: &Current, want: &Facets) -> Result<()> {
    let Some(src) = want.source.as_deref() else {
        return Ok(());
    };
    let nets = &cur.dom.networks;
    match (want.kind.as_str(), cur.device(src)) {
        ("network", _) if !nets.iter().any(|n| n == src) => {
            let defined = if nets.is_empty() {
                "none is defined".to_string()
            } else {
                format!("defined: {}", nets.join(", "))
            };
            maybe_planned(
                env,
                format!(
                    "option 'source': network '{src}' is not defined at {} ({defined})",
                    p.uri
                ),
            )
        }
        ("bridge", None) => maybe_planned(
            env,
            format!("option 'source': bridge '{src}' does not exist on this host"),
        ),
        // Linux bridges (DEVTYPE bridge) and Open vSwitch bridges (DEVTYPE openvswitch)
        // are both bridges here: libvirt attaches a guest's tap to either.
        ("bridge", Some(t)) if !(t.is_bridge() || t.is_openvswitch()) => {
            let what = if t.0.is_empty() { "network" } else { &t.0 };
            Err(Error::invalid(format!(
                "option 'source': '{src}' is not a bridge (it is a {what} device); use type direct to put the guest on a NIC"
            )))
        }
        ("direct", None) => Err(Error::invalid(format!(
            "option 'source': host device '{src}' does not exist on this host"
        ))),
        _ => Ok(()),
    }
}

/// How interfaces on the wanted source are backed on the host, when known.
fn backing(dom: &DomainState, want: &Facets) -> Option<Backing> {
    match want.kind.as_str() {
        "bridge" => Some(Backing::Bridge),
        "direct" => Some(Backing::Macvtap),
        "network" => dom
            .network
            .as_ref()
            .filter(|n| n.child("name").map(|x| x.text.as_str()) == want.source.as_deref())
            .map(iface::network_backing),
        _ => Some(Backing::Other),
    }
}

/// Why libvirt cannot make this change on the running guest (None: it can).
fn live_refusal(dom: &DomainState, live_if: &Element, want: &Facets) -> Option<String> {
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
    if let ("network", Some(n)) = (want.kind.as_str(), &want.source) {
        if !dom.active_networks.contains(n) {
            return Some(format!("network '{n}' is not active"));
        }
    }
    let from = iface::live_backing(live_if);
    let to = backing(dom, want);
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
