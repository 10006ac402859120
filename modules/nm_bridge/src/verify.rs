//! After a real change: re-read NetworkManager and the kernel (2 nmcli + 1 ip per round)
//! until what `plan.desired` holds is in effect (activation is asynchronous), or report
//! what is not, by dotted path. A change inside a checkpoint must also leave the host
//! reachable (reach.rs: one more `ip` and an ARP probe per round), within the checkpoint's
//! timeout less a margin; then it is committed, else rolled back at once.

use crate::checkpoint;
use crate::current::{read_host, Current};
use crate::params::{norm_cidr, Params, MAC_PROP, MTU_PROP};
use crate::plan::{current, set_values, Desired, Plan};
use kvmnet_iproute::{normalize_mac, Link};
use kvmnet_nmcli::conn::Conn;
use kvmnet_nmcli::is_port_of;
use kvmnet_protocol::{Ctx, Error, Result};
use serde_json::Value;
use std::time::Duration;

/// Static activation takes well under a second here; DHCP bridges stay "activating".
const WAIT: Duration = Duration::from_secs(20);
const STEP: Duration = Duration::from_millis(250);

pub fn verify(ctx: &mut Ctx, p: &Params, plan: &mut Plan) -> Result<()> {
    match verify_in_effect(ctx, p, plan) {
        Ok(()) => checkpoint::commit(ctx, plan),
        Err(e) => Err(checkpoint::roll_back(ctx, plan, e)),
    }
}

/// How long to wait, from when.
fn window(ctx: &Ctx, plan: &Plan) -> (Duration, Duration) {
    match &plan.desired.checkpoint {
        Some(t) => (t.started, t.verify_for()),
        None => (ctx.now(), WAIT),
    }
}

fn verify_in_effect(ctx: &mut Ctx, p: &Params, plan: &mut Plan) -> Result<()> {
    let (start, wait) = window(ctx, plan);
    let mut settled_at: Option<Duration> = None;
    loop {
        let cur = read_host(ctx)?;
        let want = &plan.desired;
        let mut problems = if want.present {
            check_present(p, &cur, want)
        } else {
            check_absent(&want.name, &cur)
        };
        let elapsed = ctx.now().saturating_sub(start);
        if !want.present && problems.iter().all(|x| x.starts_with("kernel:")) {
            // The profiles are gone; a bridge link NetworkManager did not create may stay.
            let since = *settled_at.get_or_insert(elapsed);
            if !problems.is_empty() && (elapsed >= wait || elapsed.saturating_sub(since) >= WAIT) {
                ctx.warn(format!(
                    "{} (NetworkManager did not remove it)",
                    problems.join("; ")
                ));
                problems.clear();
            }
        }
        if problems.is_empty() {
            if let Some(g) = &plan.desired.guard {
                problems = crate::reach::check(ctx, &cur, &g.reach)?;
            }
        }
        if problems.is_empty() {
            if plan.desired.present {
                refresh(&cur, plan);
            }
            return Ok(());
        }
        if elapsed >= wait {
            return Err(give_up(plan, wait, problems));
        }
        ctx.sleep(STEP);
    }
}

fn give_up(plan: &Plan, wait: Duration, problems: Vec<String>) -> Error {
    match plan.desired.checkpoint.is_some() {
        true => Error::verification(format!(
            "the host was not verified reachable within {} s: {}",
            wait.as_secs(),
            problems.join("; ")
        )),
        false => Error::verification(format!(
            "changes were applied but are not in effect after {} s: {}",
            wait.as_secs(),
            problems.join("; ")
        )),
    }
}

fn check_present(p: &Params, cur: &Current, want: &Desired) -> Vec<String> {
    let name = want.name.as_str();
    let uuid = want.bridge.uuid.as_deref().unwrap_or("");
    let Some(c) = cur.conn(uuid) else {
        return vec![format!("{name}: bridge profile {uuid} does not exist")];
    };
    let mut out = check_profile(c, want);
    let Some(link) = cur.link(name) else {
        out.push(format!("kernel: {name} does not exist"));
        return out;
    };
    if link.kind() != Some("bridge") {
        out.push(format!("kernel: {name} is not a bridge"));
        return out;
    }
    out.extend(check_kernel(p, name, link));
    out.extend(check_ports(cur, c, want));
    out
}

/// The bridge profile: its name, the asked settings, activated.
fn check_profile(c: &Conn, want: &Desired) -> Vec<String> {
    let name = want.name.as_str();
    let mut out = Vec::new();
    if c.id() != want.bridge.conn_name {
        out.push(format!("{name}.connection.id: is '{}'", c.id()));
    }
    for (k, v) in &want.bridge.settings {
        let cur = current(c, k);
        if cur != *v {
            out.push(format!("{name}.{k}: profile has '{cur}', want '{v}'"));
        }
    }
    // Activated; "activating" only while an automatic (DHCP/SLAAC) method waits.
    let waits = ["ipv4.method", "ipv6.method"]
        .iter()
        .any(|k| matches!(c.p.get(k), Some("auto" | "dhcp")));
    if !c.active_on(name) || (c.state != "activated" && !waits) {
        out.push(format!(
            "{name}: profile '{}' is not active (state '{}', device '{}')",
            c.id(),
            c.state,
            c.device
        ));
    }
    out
}

/// The bridge as the kernel has it.
fn check_kernel(p: &Params, name: &str, link: &Link) -> Vec<String> {
    let mut out = Vec::new();
    let num = |k: &str| link.info_data(k).and_then(Value::as_i64);
    if let Some(stp) = p.stp {
        let on = num("stp_state").unwrap_or(0) != 0;
        if on != stp {
            out.push(format!(
                "kernel: {name}.bridge.stp is {}",
                if on { "on" } else { "off" }
            ));
        }
    }
    if let Some(fd) = p.forward_delay {
        if num("forward_delay") != Some(fd * 100) {
            out.push(format!(
                "kernel: {name}.bridge.forward-delay is {:?} centiseconds, want {}",
                num("forward_delay"),
                fd * 100
            ));
        }
    }
    if let Some(pr) = p.priority {
        if num("priority") != Some(pr) {
            out.push(format!(
                "kernel: {name}.bridge.priority is {:?}",
                num("priority")
            ));
        }
    }
    if let Some(m) = p.mtu {
        if link.mtu.map(i64::from) != Some(m) {
            out.push(format!("kernel: {name}.{MTU_PROP} is {:?}", link.mtu));
        }
    }
    if let Some(mac) = &p.mac {
        let have = link.mac();
        if have != normalize_mac(mac) {
            out.push(format!("kernel: {name}.{MAC_PROP} is {have:?}"));
        }
    }
    out.extend(check_addresses(p, name, link));
    out
}

fn check_addresses(p: &Params, name: &str, link: &Link) -> Vec<String> {
    let mut out = Vec::new();
    for (ip, v6) in [(&p.ipv4, false), (&p.ipv6, true)] {
        let Some(ip) = ip else { continue };
        for a in ip.addresses.iter().flatten() {
            let want = norm_cidr(a, v6).unwrap_or_default();
            let has = link.addr_info.iter().any(|x| {
                norm_cidr(&format!("{}/{}", x.local, x.prefixlen), v6).as_deref() == Some(&want)
            });
            if !has {
                out.push(format!("kernel: {name} lacks address {want}"));
            }
        }
    }
    out
}

/// Every port expected active: its profile a port of the bridge, activated, and the
/// kernel's link in the bridge.
fn check_ports(cur: &Current, bridge: &Conn, want: &Desired) -> Vec<String> {
    let name = want.name.as_str();
    let mut out = Vec::new();
    for t in want.ports.iter().filter(|t| t.active) {
        let pname = t.name.as_deref().unwrap_or("");
        let puuid = t.uuid.as_deref().unwrap_or("");
        match cur.conn(puuid) {
            None => out.push(format!("{pname}: port profile {puuid} does not exist")),
            Some(pc) => {
                if !is_port_of(pc, bridge, name) {
                    out.push(format!(
                        "{pname}: profile '{}' is not a port of {name}",
                        pc.id()
                    ));
                }
                if !(pc.active_on(pname) && pc.state == "activated") {
                    out.push(format!(
                        "{pname}: port profile '{}' is not activated (state '{}')",
                        pc.id(),
                        pc.state
                    ));
                }
            }
        }
        let master = cur.link(pname).and_then(|l| l.master.as_deref());
        if master != Some(name) {
            out.push(format!("kernel: {pname}.master is {master:?}, want {name}"));
        }
    }
    out
}

fn check_absent(name: &str, cur: &Current) -> Vec<String> {
    let mut out: Vec<String> = cur
        .conns
        .bridges_for(name)
        .iter()
        .map(|c| format!("{name}: profile '{}' ({}) still exists", c.id(), c.uuid))
        .collect();
    if out.is_empty() && cur.link(name).is_some_and(|l| l.kind() == Some("bridge")) {
        out.push(format!("kernel: {name} still exists"));
    }
    out
}

/// Return values from what was read back.
fn refresh(cur: &Current, plan: &mut Plan) {
    let name = plan.desired.name.clone();
    for t in plan.desired.ports.iter_mut() {
        let pname = t.name.clone().unwrap_or_default();
        if let Some(pc) = t.uuid.as_deref().and_then(|u| cur.conn(u)) {
            t.active = pc.active_on(&pname)
                && cur.link(&pname).and_then(|l| l.master.as_deref()) == Some(name.as_str());
            t.conn_name = pc.id().to_string();
        }
    }
    set_values(plan);
}
