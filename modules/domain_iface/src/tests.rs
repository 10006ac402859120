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
