//! The real [`Bus`]: zbus 5's blocking client on the system bus, connected on the first
//! call.

use crate::{signatures, value};
use kvmnet_protocol::{Bus, BusCall, BusError, BusReply, Error, ErrorKind, Result};
use zbus::blocking::Connection;

/// The system bus, connected on the first call (a run that makes no call opens no
/// connection). Hand it to the driver: `kvmnet_protocol::run_bus::<M>(Box::new(SystemBus::default()))`.
#[derive(Default)]
pub struct SystemBus {
    conn: Option<Connection>,
}

impl SystemBus {
    fn connection(&mut self) -> Result<&Connection> {
        if self.conn.is_none() {
            let c = Connection::system().map_err(|e| {
                Error::missing_dependency(format!(
                    "cannot connect to the system D-Bus, through which NetworkManager takes checkpoints: {e}"
                ))
            })?;
            self.conn = Some(c);
        }
        self.conn
            .as_ref()
            .ok_or_else(|| Error::bug("no D-Bus connection"))
    }
}

impl Bus for SystemBus {
    fn call(&mut self, call: &BusCall) -> Result<BusReply> {
        let sigs = signatures::of(&call.interface, &call.member).ok_or_else(|| {
            Error::bug(format!(
                "kvmnet_nmdbus knows no signature for {}",
                call.method()
            ))
        })?;
        let body = value::body(sigs, &call.args)
            .map_err(|e| Error::bug(format!("{}: {e}", call.method())))?;
        let conn = self.connection()?;
        let (dest, path, iface) = (
            Some(call.destination.as_str()),
            call.path.as_str(),
            Some(call.interface.as_str()),
        );
        let res = match &body {
            Some(b) => conn.call_method(dest, path, iface, call.member.as_str(), b),
            None => conn.call_method(dest, path, iface, call.member.as_str(), &()),
        };
        match res {
            Ok(msg) => value::reply(&msg)
                .map(Ok)
                .map_err(|e| Error::bug(format!("{}: cannot read the reply: {e}", call.method()))),
            Err(zbus::Error::MethodError(name, detail, _)) => Ok(Err(BusError {
                name: name.to_string(),
                message: detail.unwrap_or_default(),
            })),
            Err(e) => Err(Error::new(
                ErrorKind::CommandFailed,
                format!("D-Bus call {} on {} failed: {e}", call.method(), call.path),
            )),
        }
    }
}
