//! The real [`Bus`]: zbus 5's blocking client on the system bus, connected on the first
//! call.

use crate::{signatures, value};
use kvmnet_protocol::{Bus, BusCall, BusError, BusReply, Error, ErrorKind, Result};
use std::collections::HashMap;
use std::num::NonZeroU32;
use zbus::blocking::{Connection, MessageIterator};
use zbus::message::{Message, Type};

/// How many calls of [`Bus::call_all`] are on their way at once: enough that the service
/// never waits for the next one, few enough that its answers never queue up past what
/// zbus holds for a reader.
const IN_FLIGHT: usize = 32;

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

/// The call's arguments as a message body, typed by the method's signature.
fn typed_body(call: &BusCall) -> Result<Option<zbus::zvariant::Structure<'static>>> {
    let sigs = signatures::of(&call.interface, &call.member).ok_or_else(|| {
        Error::bug(format!(
            "kvmnet_nmdbus knows no signature for {}",
            call.method()
        ))
    })?;
    value::body(sigs, &call.args).map_err(|e| Error::bug(format!("{}: {e}", call.method())))
}

/// The method-call message for `call`.
fn message(call: &BusCall) -> Result<Message> {
    let built = |e: zbus::Error| Error::bug(format!("{}: {e}", call.method()));
    let b = Message::method_call(call.path.as_str(), call.member.as_str())
        .and_then(|b| b.destination(call.destination.as_str()))
        .and_then(|b| b.interface(call.interface.as_str()))
        .map_err(built)?;
    match typed_body(call)? {
        Some(body) => b.build(&body),
        None => b.build(&()),
    }
    .map_err(built)
}

/// A method return or error message as the answer to `call`.
fn answer(call: &BusCall, msg: &Message) -> Result<BusReply> {
    if msg.message_type() == Type::Error {
        let name = msg
            .header()
            .error_name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        let message = msg.body().deserialize::<String>().unwrap_or_default();
        return Ok(Err(BusError { name, message }));
    }
    value::reply(msg)
        .map(Ok)
        .map_err(|e| Error::bug(format!("{}: cannot read the reply: {e}", call.method())))
}

impl SystemBus {
    /// Send `calls` (at most [`IN_FLIGHT`] unanswered at a time) and collect each answer
    /// by the serial number of its call.
    fn pipelined(&mut self, calls: &[BusCall]) -> Result<Vec<BusReply>> {
        let msgs: Vec<Message> = calls.iter().map(message).collect::<Result<_>>()?;
        let conn = self.connection()?;
        let lost = |e: zbus::Error| {
            Error::new(
                ErrorKind::CommandFailed,
                format!("D-Bus calls to {} failed: {e}", crate::NM),
            )
        };
        // Listening before the first call is sent: no answer can come before it.
        let mut answers = MessageIterator::from(conn);
        let mut waiting: HashMap<NonZeroU32, usize> = HashMap::new();
        let mut replies: Vec<Option<BusReply>> = vec![None; calls.len()];
        let (mut sent, mut got) = (0, 0);
        while got < calls.len() {
            while sent < msgs.len() && waiting.len() < IN_FLIGHT {
                conn.send(&msgs[sent]).map_err(lost)?;
                waiting.insert(msgs[sent].primary_header().serial_num(), sent);
                sent += 1;
            }
            let msg = answers
                .next()
                .ok_or_else(|| {
                    lost(zbus::Error::InputOutput(
                        std::io::Error::other("closed").into(),
                    ))
                })?
                .map_err(lost)?;
            let Some(i) = msg.header().reply_serial().and_then(|s| waiting.remove(&s)) else {
                continue; // a signal, or the answer to a call not made here
            };
            replies[i] = Some(answer(&calls[i], &msg)?);
            got += 1;
        }
        Ok(replies.into_iter().flatten().collect())
    }
}

impl Bus for SystemBus {
    fn call_all(&mut self, calls: &[BusCall]) -> Result<Vec<BusReply>> {
        match calls {
            [] => Ok(Vec::new()),
            [one] => Ok(vec![self.call(one)?]),
            _ => self.pipelined(calls),
        }
    }

    fn call(&mut self, call: &BusCall) -> Result<BusReply> {
        let body = typed_body(call)?;
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
