//! kvmnet.network.macvtap_link — a macvtap link on a parent NIC, at runtime (`ip link`)
//! or persistent across reboots (a NetworkManager macvlan profile with `tap yes`).
//!
//! read: one `ip -j -d link show` (every link: the parent and its other macvlan/macvtap
//! links matter too) and, when NetworkManager is involved: for `persistent: true` on a
//! link NetworkManager manages, its device and profiles over D-Bus (current.rs
//! `read_quick`: 7 calls in four rounds, and the saved macvlan keyfiles as an index);
//! otherwise (`persistent: false`, `state: absent`, no link yet, or the quick read saw a
//! change) one `nmcli` list call whose FILENAME column leads to the macvlan profiles'
//! keyfiles (read directly; `con show` only for a profile stored another way).
//! A no-change run starts ONE process (ip), for a runtime and a persistent link alike;
//! TWO (ip, nmcli) for `persistent: false` or `state: absent`. plan: the `ip`/`nmcli` commands that make the
//! difference; a new profile's UUID is NetworkManager's, read from its answer in apply.
//! verify: the same reads again, compared with what was asked.

mod apply;
mod current;
mod params;
mod plan;
mod verify;

use kvmnet_protocol::{Ctx, Env, Module, Result, Spec};

struct MacvtapLink;

impl Module for MacvtapLink {
    const NAME: &'static str = "macvtap_link";
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
    fn read_quick(ctx: &mut Ctx, p: &Self::Params) -> Result<Option<Self::Current>> {
        current::read_quick(ctx, p)
    }
    fn plan(env: &mut Env, p: &Self::Params, cur: &Self::Current) -> Result<plan::Plan> {
        plan::plan(env, p, cur)
    }
    fn apply(
        ctx: &mut Ctx,
        p: &Self::Params,
        cur: &Self::Current,
        plan: &mut plan::Plan,
    ) -> Result<()> {
        apply::apply(ctx, p, cur, plan)
    }
    fn verify(ctx: &mut Ctx, p: &Self::Params, plan: &mut plan::Plan) -> Result<()> {
        verify::verify(ctx, p, plan)
    }
}

fn main() {
    kvmnet_protocol::run_bus::<MacvtapLink>(Box::new(kvmnet_nmdbus::SystemBus::default()))
}

#[cfg(test)]
mod tests;
