//! The Ansible binary-module protocol, shared by every kvmnet module.
//!
//! A module binary is `fn main() { kvmnet_protocol::run::<MyModule>() }`. The library
//! reads the args file, splits off `_ansible_*` keys, validates the options against the
//! module's [`Spec`] (aliases, coercions, choices, state-dependent required-ness), then
//! drives the module through read → plan → apply → verify and prints exactly one JSON
//! object whatever happens, a panic included. modules/README.md shows the anatomy.

pub mod args;
pub mod bus;
pub mod ctx;
pub mod error;
pub mod lock;
pub mod module;
pub mod output;
pub mod plan;
pub mod record;
pub mod runner;
pub mod spec;
pub mod testing;

pub use args::{AnsibleFlags, Invocation};
pub use bus::{Bus, BusCall, BusError, BusReply};
pub use ctx::{Ctx, Env};
pub use error::{Error, ErrorKind, Result};
pub use module::{run, run_bus, run_with, Module};
pub use plan::{Action, Command, Diff, Plan, Step};
pub use runner::{Output, Runner, SystemRunner};
pub use spec::{Opt, Spec};
