//! Golden cases (tests/cases/, see modules/README.md) and the unit tests that do not fit
//! a case folder.

use super::DomainIface;

/// Every folder under tests/cases/.
#[test]
fn golden_cases() {
    kvmnet_protocol::testing::run_cases::<DomainIface>(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/cases"
    ));
}

/// Any args file, any shape: one well-formed result (kvmnet_protocol::testing::props).
mod props {
    use kvmnet_protocol::testing::props::{any_args, one_result, option_names};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_args_give_one_result(args in any_args(option_names::<crate::DomainIface>())) {
            one_result::<crate::DomainIface>(args)?;
        }
    }
}
