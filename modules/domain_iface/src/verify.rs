//! After a change: read both definitions back (one virsh process) and check them against
//! `plan.desired`: what was asked must be in the persistent definition, and in the live
//! one where a live step ran.

use crate::params::Params;
use crate::plan::{result_value, Plan};
use kvmnet_protocol::{Ctx, Error, Result};
use kvmnet_virtxml::domain;
use kvmnet_virtxml::interface::{self as iface, Facets};

pub fn verify(ctx: &mut Ctx, p: &Params, plan: &mut Plan) -> Result<()> {
    let (pers, live) = domain::reread(ctx, &p.uri, &p.domain)?;
    let mac = plan.desired.mac.clone();
    let live_step = plan.actions.iter().any(|a| a.op.is_live());
    let pers_if = iface::find(&pers, &mac);
    let live_if = live.as_ref().and_then(|l| iface::find(l, &mac));
    let Some(want) = plan.desired.interface.clone() else {
        if pers_if.is_some() {
            return Err(Error::verification(format!(
                "interface {mac} is still in the persistent definition of domain {}",
                p.domain
            )));
        }
        if live_step && live_if.is_some() {
            ctx.warn(format!(
                "domain {}: the guest has not released interface {mac} (no guest OS acknowledged the unplug); it goes when the guest is restarted",
                p.domain
            ));
            plan.restart_required = Some(true);
        }
        return Ok(());
    };
    let pers_f = pers_if.map(iface::facets);
    // No model asked for a new interface: libvirt picks its default.
    let pers_ok = pers_f
        .as_ref()
        .is_some_and(|f| matches(&want, f, want.model.as_deref()));
    if !pers_ok {
        return Err(mismatch(
            p,
            &want,
            pers_f.as_ref(),
            "in the persistent definition of",
        ));
    }
    let live_f = live_if.map(iface::facets);
    if live_step {
        // The running guest's model changes only when the task gave one.
        let model = plan.desired.model.as_deref();
        let ok = live_f
            .as_ref()
            .is_some_and(|f| matches(&want, f, model.or(f.model.as_deref())));
        if !ok {
            return Err(mismatch(p, &want, live_f.as_ref(), "of the running domain"));
        }
    }
    if live.is_some() {
        plan.restart_required = Some(live_f != pers_f);
    }
    if let Some(f) = &pers_f {
        plan.set("interface", result_value(f, live_if));
    }
    Ok(())
}

/// `have` is what was asked: type, source and mode, and the model when one is given.
fn matches(want: &Facets, have: &Facets, model: Option<&str>) -> bool {
    want.kind == have.kind
        && want.source == have.source
        && want.mode == have.mode
        && (model.is_none() || model == have.model.as_deref())
}

fn mismatch(p: &Params, want: &Facets, have: Option<&Facets>, which: &str) -> Error {
    Error::verification(format!(
        "after the change, interface {} {which} domain {} is {} instead of {}",
        want.mac,
        p.domain,
        have.map(|f| result_value(f, None).to_string())
            .unwrap_or_else(|| "missing".into()),
        result_value(want, None)
    ))
}
