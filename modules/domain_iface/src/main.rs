//! kvmnet.network.domain_iface — not implemented yet: speaks the protocol and fails honestly.

use kvmnet_protocol::{Ctx, Error, Module, Opt, Plan, Result, Spec};
use serde::Deserialize;

struct Stub;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Params {
    name: Option<String>,
}

impl Module for Stub {
    const NAME: &'static str = "domain_iface";
    type Params = Params;
    type State = ();
    fn spec() -> Spec {
        Spec::new().opt(Opt::str("name"))
    }
    fn query(_ctx: &mut Ctx, _p: &Params) -> Result<()> {
        Err(Error::not_supported(
            "kvmnet.network.domain_iface is not implemented yet",
        ))
    }
    fn plan(_ctx: &mut Ctx, _p: &Params, _s: &()) -> Result<Plan> {
        Err(Error::not_supported(
            "kvmnet.network.domain_iface is not implemented yet",
        ))
    }
}

fn main() {
    kvmnet_protocol::run::<Stub>()
}
