//! kvmnet.network.domain_iface — point one interface of an existing libvirt guest at a
//! network, a bridge or a host NIC (macvtap), in the persistent definition and, where
//! libvirt can, in the running guest; add or remove an interface by MAC.
//!
//! read: ONE virsh process (both definitions of the domain, the defined and active
//! networks, the definition of the network `source` names); the bridge or NIC an
//! interface goes on is checked in sysfs (no process). A no-change run starts ONE
//! process, and a change run starts no `ip` either. plan: update-device / attach-device /
//! detach-interface, persistent step first, then the live one; a live attach reads the
//! stored element back first (one more virsh process). verify: one more virsh process.

mod apply;
mod current;
mod params;
mod plan;
mod verify;

use kvmnet_protocol::{Ctx, Env, Module, Result, Spec};

struct DomainIface;

impl Module for DomainIface {
    const NAME: &'static str = "domain_iface";
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
        _: &Self::Current,
        plan: &mut plan::Plan,
    ) -> Result<()> {
        apply::apply(ctx, p, plan)
    }
    fn verify(ctx: &mut Ctx, p: &Self::Params, plan: &mut plan::Plan) -> Result<()> {
        verify::verify(ctx, p, plan)
    }
}

fn main() {
    kvmnet_protocol::run::<DomainIface>()
}

#[cfg(test)]
mod tests;
