//! Is the host still reachable after a checkpointed change (guard.rs says what must
//! hold)? Its addresses on the device that now carries them, a default route of each
//! family it had one of, and the IPv4 gateway answering an ARP request there. And, after
//! a rollback, what NetworkManager does not put back itself.

use crate::arp;
use crate::checkpoint::marker_path;
use crate::current::{read_host, Current};
use crate::guard::Reach;
use crate::memory;
use crate::params::norm_cidr;
use crate::plan::Plan;
use kvmnet_iproute::{preferred_v4, read_default_routes, DefaultRoute};
use kvmnet_protocol::{Ctx, Error, Result};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::time::Duration;

/// How long one probe waits for the gateway's answer.
const ARP_WAIT: Duration = Duration::from_millis(700);
/// How long a rollback's report waits for the addresses to come back.
const BACK_WAIT: Duration = Duration::from_secs(15);

fn canonical(addrs: Vec<String>) -> Vec<String> {
    addrs
        .into_iter()
        .map(|a| norm_cidr(&a, a.contains(':')).unwrap_or(a))
        .collect()
}

/// The global addresses `dev` holds.
fn held(cur: &Current, dev: &str) -> Vec<String> {
    cur.link(dev)
        .map(|l| canonical(l.global_addresses()))
        .unwrap_or_default()
}

/// What does not hold yet, in words (empty: the host is reachable as before).
pub fn check(ctx: &mut Ctx, cur: &Current, reach: &Reach) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for h in &reach.holders {
        let have = held(cur, &h.device);
        for a in &h.addresses {
            if !have.contains(a) {
                out.push(format!("{} does not hold {a}", h.device));
            }
        }
    }
    let v4_on = |d: &String| held(cur, d).iter().any(|a| !a.contains(':'));
    if !reach.any_v4_on.is_empty() && !reach.any_v4_on.iter().any(v4_on) {
        out.push(match reach.any_v4_on.as_slice() {
            [one] => format!("{one} has no IPv4 address (no DHCP lease yet)"),
            many => format!(
                "none of {} has an IPv4 address (no DHCP lease yet)",
                many.join(", ")
            ),
        });
    }
    if !out.is_empty() {
        return Ok(out);
    }
    let now = read_default_routes(ctx)?;
    for (v6, fam) in [(false, "IPv4"), (true, "IPv6")] {
        let had = reach.routes_before.iter().any(|r| r.v6() == v6);
        if had && !now.iter().any(|r| r.v6() == v6) {
            out.push(format!("the host has no {fam} default route"));
        }
    }
    if out.is_empty() {
        out.extend(gateway(ctx, cur, reach, &now)?);
    }
    Ok(out)
}

/// The IPv4 gateway (where there was one) answers on the device of today's default route.
fn gateway(
    ctx: &mut Ctx,
    cur: &Current,
    reach: &Reach,
    now: &[DefaultRoute],
) -> Result<Option<String>> {
    if preferred_v4(&reach.routes_before)
        .and_then(|r| r.gateway.as_ref())
        .is_none()
    {
        return Ok(None);
    }
    let Some(r) = preferred_v4(now) else {
        return Ok(Some("the host has no IPv4 default route".into()));
    };
    let Some(gw) = r
        .gateway
        .as_deref()
        .and_then(|g| g.parse::<Ipv4Addr>().ok())
    else {
        return Ok(None); // a default route without a gateway: nothing to ask
    };
    let Some(link) = cur.link(&r.dev) else {
        return Ok(Some(format!(
            "{} (the default route's device) is gone",
            r.dev
        )));
    };
    let source: Ipv4Addr = link
        .addr_info
        .iter()
        .find(|a| a.family == "inet" && a.scope == "global")
        .and_then(|a| a.local.parse().ok())
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let probe = arp::Probe {
        ifindex: link.ifindex,
        mac: link
            .mac()
            .as_deref()
            .and_then(arp::mac_bytes)
            .unwrap_or([0; 6]),
        source,
        target: gw,
        wait: ARP_WAIT,
    };
    let what = format!("arp {gw} on {} from {source}", r.dev);
    let answer = ctx.probe(&what, || {
        arp::probe(&probe)
            .map(|m| m.map_or(Value::Null, Value::from))
            .map_err(|e| Error::bug(format!("probing the gateway {gw}: {e}")))
    })?;
    Ok(answer
        .is_null()
        .then(|| format!("the gateway {gw} does not answer on {}", r.dev)))
}

/// After a rollback: put back the memory file and remove the marker (NetworkManager
/// restores only its own state), re-attach guests' taps NetworkManager before 1.38
/// detached from the bridge, and wait a little for the addresses to come back. Returns
/// what to add to the message.
pub fn after_rollback(ctx: &mut Ctx, plan: &Plan) -> String {
    let Some(g) = plan.desired.guard.clone() else {
        return String::new();
    };
    let bridge = plan.desired.name.clone();
    if let Some(before) = &g.memory_before {
        let path = memory::path(&bridge);
        let r = match before {
            Some(text) => ctx.write(&["tee", path.as_str()], Some(text)).map(drop),
            None => ctx.write(&["rm", "-f", path.as_str()], None).map(drop),
        };
        if let Err(e) = r {
            ctx.warn(format!("could not restore {path}: {}", e.msg));
        }
    }
    if let Err(e) = ctx.write(&["rm", "-f", marker_path(&bridge).as_str()], None) {
        ctx.warn(format!(
            "could not remove {}: {}",
            marker_path(&bridge),
            e.msg
        ));
    }
    wait_back(ctx, &bridge, &g.external_ports, &g.reach.before)
}

fn wait_back(
    ctx: &mut Ctx,
    bridge: &str,
    taps: &[String],
    before: &[(String, Vec<String>)],
) -> String {
    let start = ctx.now();
    loop {
        let Ok(cur) = read_host(ctx) else {
            return String::new();
        };
        reattach(ctx, &cur, bridge, taps);
        let missing: Vec<String> = before
            .iter()
            .flat_map(|(dev, addrs)| {
                let have = held(&cur, dev);
                canonical(addrs.clone())
                    .into_iter()
                    .filter(move |a| !have.contains(a))
                    .map(move |a| format!("{a} on {dev}"))
            })
            .collect();
        let all: Vec<String> = before
            .iter()
            .map(|(d, a)| format!("{d} holds {}", a.join(", ")))
            .collect();
        if missing.is_empty() {
            return format!("; {} again", all.join("; "));
        }
        if ctx.now().saturating_sub(start) >= BACK_WAIT {
            return format!(
                "; not back yet after {} s: {}",
                BACK_WAIT.as_secs(),
                missing.join(", ")
            );
        }
        ctx.sleep(Duration::from_millis(500));
    }
}

/// Guests' taps that were in the bridge, back in it (NetworkManager before 1.38 detaches
/// ports it did not make when it rolls a bridge back).
fn reattach(ctx: &mut Ctx, cur: &Current, bridge: &str, taps: &[String]) {
    if cur.link(bridge).is_none() {
        return;
    }
    for t in taps {
        let Some(l) = cur.link(t) else { continue };
        if l.master.as_deref() == Some(bridge) {
            continue;
        }
        if let Err(e) = ctx.write(&["ip", "link", "set", "dev", t, "master", bridge], None) {
            ctx.warn(format!("could not put {t} back into {bridge}: {}", e.msg));
        }
    }
}
