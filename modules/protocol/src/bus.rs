//! Calls to a service on the system bus (NetworkManager's D-Bus API), seen the way the
//! modules see commands: a [`BusCall`] is data (destination, object path, interface,
//! member, arguments as JSON), its answer is JSON, and every call goes through
//! [`Ctx`](crate::Ctx) (a call that changes something is refused in check mode, recorded in
//! `commands` and scripted in the test double like a command).
//!
//! The protocol crate speaks no D-Bus itself: a module that needs the bus hands the
//! driver a [`Bus`] (the `kvmnet_nmdbus` crate's client, which translates these calls into
//! typed D-Bus messages) with [`run_with_bus`](crate::module::run_with_bus). A module that
//! never calls the bus links no D-Bus code.

use crate::error::Result;
use serde_json::Value;

/// One D-Bus method call.
#[derive(Debug, Clone, PartialEq)]
pub struct BusCall {
    /// The bus name, e.g. `org.freedesktop.NetworkManager`.
    pub destination: String,
    /// The object path, e.g. `/org/freedesktop/NetworkManager`.
    pub path: String,
    /// The interface, e.g. `org.freedesktop.NetworkManager`.
    pub interface: String,
    /// The method, e.g. `CheckpointCreate`.
    pub member: String,
    /// The arguments in order, as JSON (strings, object paths as strings, numbers,
    /// arrays); the [`Bus`] knows each method's D-Bus signature.
    pub args: Vec<Value>,
}

impl BusCall {
    pub fn new(
        destination: impl Into<String>,
        path: impl Into<String>,
        interface: impl Into<String>,
        member: impl Into<String>,
        args: Vec<Value>,
    ) -> Self {
        BusCall {
            destination: destination.into(),
            path: path.into(),
            interface: interface.into(),
            member: member.into(),
            args,
        }
    }

    /// `interface.member`, as messages name the method.
    pub fn method(&self) -> String {
        format!("{}.{}", self.interface, self.member)
    }

    /// How `commands` (and `calls`) show the call: `["dbus", DESTINATION, PATH,
    /// INTERFACE.MEMBER, ARGS-AS-JSON]`. Not a command line: nothing is run as a program.
    pub fn record(&self) -> Vec<String> {
        vec![
            "dbus".to_string(),
            self.destination.clone(),
            self.path.clone(),
            self.method(),
            Value::Array(self.args.clone()).to_string(),
        ]
    }
}

/// A D-Bus error reply: its name and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusError {
    /// e.g. `org.freedesktop.NetworkManager.InvalidArguments`
    pub name: String,
    pub message: String,
}

/// What the service answered: the reply's values in order, or its error.
pub type BusReply = std::result::Result<Vec<Value>, BusError>;

/// A connection to the system bus. The real one connects on its first call (so a run
/// that makes no call opens no connection); the test double replays scripted replies.
pub trait Bus {
    /// Make the call and wait for the answer. `Err` only when no answer could be had
    /// (no system bus, a method this client cannot type): a D-Bus error reply is an
    /// `Ok(Err(BusError))`.
    fn call(&mut self, call: &BusCall) -> Result<BusReply>;
    /// Make calls that do not depend on each other's answers, and wait for all the
    /// answers, in the order of the calls. The real client sends them all before it waits
    /// (one wait for the service instead of one per call); this default makes them one
    /// after the other.
    fn call_all(&mut self, calls: &[BusCall]) -> Result<Vec<BusReply>> {
        calls.iter().map(|c| self.call(c)).collect()
    }
}

/// The error for a call that got an error reply: the method, the object and what the
/// service said (its error name is kept as `dbus_error` for callers that tell errors
/// apart).
pub fn call_failed(call: &BusCall, e: &BusError) -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::CommandFailed,
        format!(
            "D-Bus call {} on {} failed: {}",
            call.method(),
            call.path,
            e.message
        ),
    )
    .with("dbus_call", call.record())
    .with("dbus_error", e.name.clone())
    .with("dbus_message", e.message.clone())
}
