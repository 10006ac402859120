//! kvmnet.network.nm_bridge — a NetworkManager bridge and its ports as declared state.
//!
//! query (2 nmcli calls + `ip -j -d addr show`) → plan (nmcli commands by UUID, diff,
//! return values) → apply → verify against NetworkManager and the kernel.

mod memory;
mod params;
mod plan;
mod state;
mod verify;

use kvmnet_protocol::{Ctx, Module, Plan, Result, Spec};
use params::Params;
use state::{OnFail, State};

struct NmBridge;

impl Module for NmBridge {
    const NAME: &'static str = "nm_bridge";
    type Params = Params;
    type State = State;

    fn spec() -> Spec {
        params::spec()
    }
    fn validate(p: &Params) -> Result<()> {
        params::validate(p)
    }
    fn query(ctx: &mut Ctx, _p: &Params) -> Result<State> {
        state::read(ctx, None)
    }
    fn plan(ctx: &mut Ctx, p: &Params, st: &State) -> Result<Plan> {
        plan::plan(ctx, p, st)
    }
    fn apply(ctx: &mut Ctx, _p: &Params, st: &State, plan: &Plan) -> Result<()> {
        let on_fail = st.on_fail.borrow().clone();
        for (i, a) in plan.actions.iter().enumerate() {
            if a.argv.is_empty() {
                continue;
            }
            let gone_is_done = on_fail.get(i) == Some(&OnFail::Gone);
            let Err(e) = ctx.write_accepting(&a.argv, a.stdin.as_deref(), |out| {
                gone_is_done && out.rc == 10
            }) else {
                continue;
            };
            match on_fail.get(i) {
                Some(OnFail::Warn) => ctx.warn(format!("could not {}: {}", a.summary, e.msg)),
                Some(OnFail::Reactivate { bridge, ports }) => {
                    // NM refuses to reapply some settings: re-activate instead.
                    ctx.write(&["nmcli", "con", "up", "uuid", bridge], None)?;
                    for p in ports {
                        ctx.write(&["nmcli", "con", "up", "uuid", p], None)?;
                    }
                }
                _ => return Err(e),
            }
        }
        Ok(())
    }
    fn verify(ctx: &mut Ctx, p: &Params, plan: &mut Plan) -> Result<()> {
        verify::verify(ctx, p, plan)
    }
}

fn main() {
    kvmnet_protocol::run::<NmBridge>()
}

#[cfg(test)]
mod tests;
