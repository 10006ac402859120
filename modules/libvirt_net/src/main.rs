//! kvmnet.network.libvirt_net — a libvirt network in any forward mode, its definition
//! compared semantically with libvirt's, redefined only when it differs (keeping its
//! uuid), its running and autostart state handled in the same run.
//!
//! read: one virsh process (net-info, inactive and live XML); the host devices the
//! definition names are checked in sysfs (no process). A no-change run starts ONE
//! process. plan: define / stop / start / autostart / undefine, one virsh command each.
//! verify: one more virsh process; a change that does not hold (libvirt dropped part of
//! the definition) or a step that fails after the definition changed is rolled back.

mod apply;
mod current;
mod params;
mod plan;
mod verify;

use kvmnet_protocol::{Ctx, Env, Module, Result, Spec};

struct LibvirtNet;

impl Module for LibvirtNet {
    const NAME: &'static str = "libvirt_net";
    type Params = params::Params;
    type Current = current::Current;
    type Desired = plan::Desired;
    type Action = plan::Action;

    fn spec() -> Spec {
        params::spec()
    }
    fn validate(p: &Self::Params) -> Result<()> {
        params::validate(p)
    }
    fn read(ctx: &mut Ctx, p: &Self::Params) -> Result<Self::Current> {
        current::read(ctx, p)
    }
    fn plan(env: &mut Env, p: &Self::Params, cur: &Self::Current) -> Result<plan::Plan> {
        plan::plan(env, p, cur)
    }
    fn apply(
        ctx: &mut Ctx,
        p: &Self::Params,
        _cur: &Self::Current,
        plan: &mut plan::Plan,
    ) -> Result<()> {
        apply::apply(ctx, p, plan)
    }
    fn verify(ctx: &mut Ctx, p: &Self::Params, plan: &mut plan::Plan) -> Result<()> {
        verify::verify(ctx, p, plan)
    }
}

fn main() {
    kvmnet_protocol::run::<LibvirtNet>()
}

#[cfg(test)]
mod tests;
