//! After a real change: re-read NetworkManager and the kernel until what was asked is in
//! effect (activation is asynchronous), or report what is not, by dotted path.

use crate::params::{desired_bridge, norm_cidr, Params, MAC_PROP, MTU_PROP};
use crate::plan::current;
use crate::state::{self, is_port_of, State};
use kvmnet_iproute::normalize_mac;
use kvmnet_protocol::{Ctx, Error, Plan, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Static activation takes well under a second here; DHCP bridges stay "activating".
const WAIT: Duration = Duration::from_secs(20);
const STEP: Duration = Duration::from_millis(250);

pub fn verify(ctx: &mut Ctx, p: &Params, plan: &mut Plan) -> Result<()> {
    let start = Instant::now();
    loop {
        let st = state::read(ctx, None)?;
        let problems = if p.present() {
            check_present(p, &st, plan)
        } else {
            check_absent(p, &st)
        };
        if problems.is_empty() {
            if p.present() {
                refresh(p, &st, plan);
            }
            return Ok(());
        }
        if start.elapsed() >= WAIT {
            if !p.present() && problems.iter().all(|x| x.starts_with("kernel:")) {
                // The profiles are gone; a bridge link NM did not create stays.
                ctx.warn(format!(
                    "{} (NetworkManager did not remove it)",
                    problems.join("; ")
                ));
                return Ok(());
            }
            return Err(Error::verification(format!(
                "changes were applied but are not in effect after {} s: {}",
                WAIT.as_secs(),
                problems.join("; ")
            )));
        }
        std::thread::sleep(STEP);
    }
}

fn str_at<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn check_present(p: &Params, st: &State, plan: &Plan) -> Vec<String> {
    let name = p.name.as_str();
    let mut out = Vec::new();
    let bridge = plan.result.get("bridge").cloned().unwrap_or(Value::Null);
    let uuid = str_at(&bridge, "uuid").unwrap_or("");
    let Some(c) = st.conn(uuid) else {
        return vec![format!("{name}: bridge profile {uuid} does not exist")];
    };
    if Some(c.id()) != str_at(&bridge, "conn_name") {
        out.push(format!("{name}.connection.id: is '{}'", c.id()));
    }
    for (k, v) in desired_bridge(p) {
        let cur = current(c, k);
        if cur != v {
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
    let Some(link) = st.link(name) else {
        out.push(format!("kernel: {name} does not exist"));
        return out;
    };
    if link.kind() != Some("bridge") {
        out.push(format!("kernel: {name} is not a bridge"));
        return out;
    }
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
        let have = link.address.as_deref().and_then(normalize_mac);
        if have != normalize_mac(mac) {
            out.push(format!("kernel: {name}.{MAC_PROP} is {have:?}"));
        }
    }
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
    let ports = plan.result.get("ports").cloned().unwrap_or(json!([]));
    for pv in ports.as_array().into_iter().flatten() {
        if pv.get("active") != Some(&json!(true)) {
            continue;
        }
        let pname = str_at(pv, "name").unwrap_or("");
        let puuid = str_at(pv, "uuid").unwrap_or("");
        match st.conn(puuid) {
            None => out.push(format!("{pname}: port profile {puuid} does not exist")),
            Some(pc) => {
                if !is_port_of(pc, c, name) {
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
        let master = st.link(pname).and_then(|l| l.master.as_deref());
        if master != Some(name) {
            out.push(format!("kernel: {pname}.master is {master:?}, want {name}"));
        }
    }
    out
}

fn check_absent(p: &Params, st: &State) -> Vec<String> {
    let name = p.name.as_str();
    let mut out: Vec<String> = st
        .bridges_for(name)
        .iter()
        .map(|c| format!("{name}: profile '{}' ({}) still exists", c.id(), c.uuid))
        .collect();
    if out.is_empty() && st.link(name).is_some_and(|l| l.kind() == Some("bridge")) {
        out.push(format!("kernel: {name} still exists"));
    }
    out
}

/// Return values from what was read back.
fn refresh(p: &Params, st: &State, plan: &mut Plan) {
    let name = p.name.as_str();
    if let Some(Value::Array(ports)) = plan.result.get_mut("ports") {
        for pv in ports.iter_mut() {
            let pname = str_at(pv, "name").unwrap_or("").to_string();
            let puuid = str_at(pv, "uuid").unwrap_or("").to_string();
            if let Some(pc) = st.conn(&puuid) {
                let active = pc.active_on(&pname)
                    && st.link(&pname).and_then(|l| l.master.as_deref()) == Some(name);
                pv["active"] = json!(active);
                pv["conn_name"] = json!(pc.id());
            }
        }
    }
}
