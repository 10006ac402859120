//! kvmnet.network.domain_iface — point one interface of an existing libvirt guest at a
//! network, a bridge or a host NIC (macvtap), in the persistent definition and, where
//! libvirt can, in the running guest; add or remove an interface by MAC.

mod params;
mod plan;
mod query;

use kvmnet_protocol::{Ctx, Error, Module, Plan, Result, Spec};
use kvmnet_virtxml::interface as iface;
use params::Params;
use query::State;

struct DomainIface;

impl Module for DomainIface {
    const NAME: &'static str = "domain_iface";
    type Params = Params;
    type State = State;

    fn spec() -> Spec {
        params::spec()
    }
    fn validate(p: &Params) -> Result<()> {
        params::validate(p)
    }
    fn query(ctx: &mut Ctx, p: &Params) -> Result<State> {
        query::query(ctx, p)
    }
    fn plan(ctx: &mut Ctx, p: &Params, st: &State) -> Result<Plan> {
        plan::plan(ctx, p, st)
    }

    /// Persistent step first, then the live one. A live attach uses the element libvirt
    /// just stored (with the PCI address it gave it) so that the guest sees the same
    /// device now and after a restart.
    fn apply(ctx: &mut Ctx, p: &Params, _st: &State, plan: &Plan) -> Result<()> {
        for a in &plan.actions {
            let live_attach = a.argv.iter().any(|x| x == "attach-device")
                && a.argv.last().map(String::as_str) == Some(plan::LIVE);
            let stdin = if live_attach {
                let (pers, _) = query::reread(ctx, p)?;
                let mac = plan
                    .result
                    .get("interface")
                    .and_then(|i| i["mac"].as_str())
                    .unwrap_or_default()
                    .to_string();
                match iface::find(&pers, &mac) {
                    Some(el) => Some(el.to_xml()),
                    None => a.stdin.clone(),
                }
            } else {
                a.stdin.clone()
            };
            ctx.write(&a.argv, stdin.as_deref())?;
        }
        Ok(())
    }

    /// Re-read both definitions; what was asked must be in the persistent one, and in
    /// the live one where a live step ran.
    fn verify(ctx: &mut Ctx, p: &Params, plan: &mut Plan) -> Result<()> {
        let (pers, live) = query::reread(ctx, p)?;
        let want = plan.result.get("interface").cloned().unwrap_or_default();
        let mac = want["mac"].as_str().unwrap_or_default().to_string();
        let live_step = plan
            .actions
            .iter()
            .any(|a| a.argv.last().map(String::as_str) == Some(plan::LIVE));
        let pers_if = iface::find(&pers, &mac);
        let live_if = live.as_ref().and_then(|l| iface::find(l, &mac));
        if p.absent() {
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
        }
        let pers_f = pers_if.map(iface::facets);
        let expected = |f: &iface::Facets, model: Option<&str>| {
            want["type"].as_str() == Some(f.kind.as_str())
                && want["source"].as_str() == f.source.as_deref()
                && want["mode"].as_str() == f.mode.as_deref()
                // No model asked for a new interface: libvirt picks its default.
                && (model.is_none() || model == f.model.as_deref())
        };
        if !pers_f
            .as_ref()
            .is_some_and(|f| expected(f, want["model"].as_str()))
        {
            return Err(Error::verification(format!(
                "after the change, interface {mac} in the persistent definition of domain {} is {} instead of {}",
                p.domain,
                pers_f
                    .map(|f| plan::result_value(&f, None).to_string())
                    .unwrap_or_else(|| "missing".into()),
                want
            )));
        }
        let live_f = live_if.map(iface::facets);
        if live_step {
            // The running guest's model changes only when the task gave one.
            let ok = live_f
                .as_ref()
                .is_some_and(|f| expected(f, p.model.as_deref().or(f.model.as_deref())));
            if !ok {
                return Err(Error::verification(format!(
                    "after the change, interface {mac} of the running domain {} is {} instead of {}",
                    p.domain,
                    live_f
                        .map(|f| plan::result_value(&f, None).to_string())
                        .unwrap_or_else(|| "missing".into()),
                    want
                )));
            }
        }
        if live.is_some() {
            plan.restart_required = Some(live_f != pers_f);
        }
        if let Some(f) = &pers_f {
            plan.set("interface", plan::result_value(f, live_if));
        }
        Ok(())
    }
}

fn main() {
    kvmnet_protocol::run::<DomainIface>()
}

#[cfg(test)]
mod tests;
