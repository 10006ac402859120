//! kvmnet.network.nm_bridge — a NetworkManager bridge and its ports as declared state.
//!
//! read, quick (quick.rs), what decides a no-change run: ONE process (`ip -j -d addr
//! show`), NetworkManager over D-Bus (the bridge's device, then four rounds of calls sent
//! at once: the devices of the bridge, the listed ports and the host's NICs, their active
//! connections, the profiles they can activate, the saved bridge and port keyfiles read as
//! an index, 15 calls on a host with two NICs, whatever the number of profiles or guests' taps), the memory file
//! and the marker read directly. A no-change run starts ONE process and no nmcli.
//! read, full (current.rs), when the quick read finds a change or cannot tell: 2 nmcli
//! calls (the profile list, then every profile's settings in one `con show`) and one `ip`.
//! Only a run that takes a port into the bridge asks NetworkManager for its devices (one
//! more nmcli); only while a marker says an interrupted run's checkpoint may be pending is
//! NetworkManager asked about it over D-Bus.
//! plan: nmcli commands by UUID; a profile this run creates gets its UUID from
//! NetworkManager's answer, shown as `<uuid of NAME>` in the planned commands. Settings
//! changed on a running bridge reach it by D-Bus (`Device.Reapply` on the device
//! `GetDeviceByIpIface` names: no interface name is ever an nmcli word). `inherit` hands
//! the bridge the IP configuration and MAC address of the port it takes over.
//! apply: a change that can cut the host off (guard.rs) runs inside a NetworkManager
//! checkpoint: one `ip -j route show table all default`, D-Bus calls for the devices and
//! the checkpoint, a marker file; a failing step rolls back at once.
//! verify: 2 nmcli + 1 ip per round until NetworkManager and the kernel agree (at most
//! 20 s); inside a checkpoint also one `ip route` and an ARP probe of the gateway per round
//! until the host is reachable (at most the rollback timeout less a margin), then commit
//! (D-Bus) or roll back.

mod apply;
mod arp;
mod checkpoint;
mod current;
mod guard;
mod inherit;
mod memory;
mod params;
mod plan;
mod quick;
mod reach;
mod takeover;
mod verify;

use kvmnet_protocol::{Ctx, Env, Module, Result, Spec};

struct NmBridge;

impl Module for NmBridge {
    const NAME: &'static str = "nm_bridge";
    type Params = params::Params;
    type Current = current::Current;
    type Desired = plan::Desired;
    type Action = apply::Action;

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
        quick::read(ctx, p)
    }
    fn plan(env: &mut Env, p: &Self::Params, cur: &Self::Current) -> Result<plan::Plan> {
        plan::plan(env, p, cur)
    }
    fn apply(
        ctx: &mut Ctx,
        _p: &Self::Params,
        _cur: &Self::Current,
        plan: &mut plan::Plan,
    ) -> Result<()> {
        apply::apply(ctx, plan)
    }
    fn verify(ctx: &mut Ctx, p: &Self::Params, plan: &mut plan::Plan) -> Result<()> {
        verify::verify(ctx, p, plan)
    }
}

fn main() {
    kvmnet_protocol::run_bus::<NmBridge>(Box::new(kvmnet_nmdbus::SystemBus::default()))
}

#[cfg(test)]
mod tests;
