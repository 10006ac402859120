//! Capturing a real run as a golden case: with `KVMNET_RECORD=DIR` in its environment, a
//! module binary writes every exchange with the host, in order, to `DIR/calls.json` (the
//! commands with their output, the D-Bus calls with their replies, the probes with their
//! answers) and the files it read to `DIR/files.json`: the formats of a case folder
//! (modules/README.md), so that a case is captured from the real tools rather than
//! written by hand. A recorded run gets the test double's "random" bytes (`00 01 02 ...`),
//! so that what it passes to the tools (virsh's batch marker, a new MAC address) is what
//! the double will expect when the case is replayed. Nothing is recorded without the
//! variable; Ansible passes no such variable to modules unless a task sets it.

use crate::bus::{BusCall, BusReply};
use crate::error::Result;
use crate::runner::{Output, Runner};
#[cfg(test)]
use crate::testing::first_random_hex;
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// The variable naming the folder a run is recorded into.
pub const RECORD: &str = "KVMNET_RECORD";

/// What was recorded so far.
#[derive(Debug, Default)]
pub struct Log {
    pub calls: Vec<Value>,
    pub files: Map<String, Value>,
}

impl Log {
    /// Write `calls.json` and `files.json` into `dir`.
    pub fn write(&self, dir: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
        std::fs::write(
            format!("{dir}/calls.json"),
            pretty(&Value::Array(self.calls.clone())),
        )?;
        std::fs::write(
            format!("{dir}/files.json"),
            pretty(&Value::Object(self.files.clone())),
        )
    }
}

/// A runner that records what the runner it wraps does.
pub struct Recorder {
    inner: Box<dyn Runner>,
    log: Rc<RefCell<Log>>,
}

impl Recorder {
    pub fn new(inner: Box<dyn Runner>) -> (Recorder, Rc<RefCell<Log>>) {
        let log = Rc::new(RefCell::new(Log::default()));
        (
            Recorder {
                inner,
                log: log.clone(),
            },
            log,
        )
    }
    fn push(&self, v: Value) {
        self.log.borrow_mut().calls.push(v);
    }
}

fn bus_entry(call: &BusCall, reply: &BusReply) -> Value {
    let mut e = json!({"bus": {
        "destination": call.destination, "path": call.path,
        "interface": call.interface, "member": call.member, "args": call.args,
    }});
    match reply {
        Ok(v) => e["reply"] = Value::Array(v.clone()),
        Err(err) => e["error"] = json!({"name": err.name, "message": err.message}),
    }
    e
}

impl Runner for Recorder {
    fn run(&mut self, argv: &[String], stdin: Option<&str>) -> Result<Output> {
        let out = self.inner.run(argv, stdin)?;
        self.push(json!({"argv": argv, "stdin": stdin, "rc": out.rc,
                         "stdout": out.stdout, "stderr": out.stderr}));
        Ok(out)
    }
    fn read_file(&mut self, path: &str) -> Option<String> {
        let text = self.inner.read_file(path)?;
        self.log
            .borrow_mut()
            .files
            .insert(path.to_string(), json!(text));
        Some(text)
    }
    fn list_dir(&mut self, dir: &str) -> Vec<String> {
        self.inner.list_dir(dir)
    }
    fn utf8_locale(&self) -> bool {
        self.inner.utf8_locale()
    }
    /// The test double's bytes, not the host's (see the module header).
    fn random(&mut self, buf: &mut [u8]) -> Result<()> {
        crate::testing::predictable(buf);
        Ok(())
    }
    fn now(&self) -> Duration {
        self.inner.now()
    }
    fn sleep(&mut self, d: Duration) {
        self.inner.sleep(d)
    }
    fn has_bus(&self) -> bool {
        self.inner.has_bus()
    }
    fn bus(&mut self, call: &BusCall) -> Result<BusReply> {
        let reply = self.inner.bus(call)?;
        self.push(bus_entry(call, &reply));
        Ok(reply)
    }
    fn bus_all(&mut self, calls: &[BusCall]) -> Result<Vec<BusReply>> {
        let replies = self.inner.bus_all(calls)?;
        for (c, r) in calls.iter().zip(&replies) {
            self.push(bus_entry(c, r));
        }
        Ok(replies)
    }
    fn probe(&mut self, what: &str, probe: &mut dyn FnMut() -> Result<Value>) -> Result<Value> {
        let v = self.inner.probe(what, probe)?;
        self.push(json!({"probe": what, "value": v}));
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::Ctx;
    use crate::runner::SystemRunner;

    #[test]
    fn a_recorded_run_draws_the_doubles_random_bytes() {
        let (rec, _log) = Recorder::new(Box::new(SystemRunner::default()));
        let mut ctx = Ctx::new(Default::default(), Box::new(rec));
        assert_eq!(ctx.random_hex(16).unwrap(), first_random_hex(16));
    }
}
