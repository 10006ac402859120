//! After a change: read the network back (one virsh process) and check what was asked.

use crate::apply::put_back;
use crate::params::Params;
use crate::plan::{network_value, Plan};
use kvmnet_protocol::{Ctx, Error, Result};
use kvmnet_virtxml::netstate;
use kvmnet_virtxml::network;

pub fn verify(ctx: &mut Ctx, p: &Params, plan: &mut Plan) -> Result<()> {
    let n = netstate::read(ctx, &p.uri, &p.name)?;
    let name = &p.name;
    let want = &plan.desired;
    if want.absent {
        if n.exists {
            return Err(Error::verification(format!(
                "network {name} still exists after net-destroy/net-undefine (active: {}, persistent: {})",
                n.active, n.persistent
            )));
        }
        return Ok(());
    }
    let (Some(inactive), Some(live)) = (&n.inactive, &n.live) else {
        let err = Error::verification(format!(
            "network {name} does not exist after it was defined"
        ));
        return Err(put_back(ctx, p, plan, err, Some(n.clone())));
    };
    let mut wrong = Vec::new();
    if !n.persistent {
        wrong.push("not persistent".to_string());
    }
    if n.active != want.active {
        wrong.push(format!("active (is {})", n.active));
    }
    if n.autostart != want.autostart {
        wrong.push(format!("autostart (is {})", n.autostart));
    }
    if let Some(d) = &want.definition {
        let (dc, hc) = network::comparable(d, inactive);
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
        let err = Error::verification(format!(
            "network {name} is not as requested after the change: {}",
            wrong.join("; ")
        ))
        .with("xml", n.inactive_text.clone());
        return Err(put_back(ctx, p, plan, err, Some(n.clone())));
    }
    plan.restart_required = Some(stale);
    let value = network_value(
        name,
        &n,
        Some(inactive),
        n.active,
        n.autostart,
        n.persistent,
    );
    plan.set("network", value);
    plan.set("xml", n.inactive_text.clone());
    Ok(())
}
