//! kvmnet.network.net_info — what a KVM host has for putting guests on the LAN, as facts
//! (`ansible_facts.kvmnet_net`): bridges with their ports, macvtap links, libvirt networks,
//! and every guest's interfaces with the method each amounts to. Read-only: no lock, the
//! same in check mode, never `changed`.
//!
//! read, each only when a gathered part needs it (`gather`, default all):
//!   bridges, macvtaps: ONE nmcli (the profile list; properties from the keyfiles, no
//!     process; a profile stored another way, e.g. EL8's ifcfg, costs a second nmcli)
//!   bridges, macvtaps, guests: ONE ip (`ip -j -d addr show`)
//!   networks, guests: TWO virsh (the names, then one batch of every network's and
//!     guest's state and definitions; none for the batch when there is nothing to read)
//! A full run starts FOUR processes (1 nmcli + 1 ip + 2 virsh), whatever the host holds.
//! plan: the facts, built from what was read; no steps.

mod current;
mod params;
mod plan;

use kvmnet_protocol::{Ctx, Env, Module, Result, Spec};

struct NetInfo;

impl Module for NetInfo {
    const NAME: &'static str = "net_info";
    const READ_ONLY: bool = true;
    type Params = params::Params;
    type Current = current::Current;
    type Desired = ();
    type Action = plan::Never;

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
}

fn main() {
    kvmnet_protocol::run::<NetInfo>()
}

#[cfg(test)]
mod tests;
