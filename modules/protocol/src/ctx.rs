//! What a module sees of the world. [`Ctx`] reads and writes the host through the
//! [`Runner`] (so the test double replays everything), keeps what changed, and hands out
//! randomness, time and sleep. [`Env`] is the narrow view `plan` gets: check mode,
//! warnings and randomness, but no way to read or change the host.

use crate::args::AnsibleFlags;
use crate::bus::{call_failed, BusCall, BusReply};
use crate::error::{Error, Result};
use crate::plan::{Command, Step};
use crate::runner::{command_failed, display_argv, Output, Runner};
use serde_json::Value;
use std::time::Duration;

pub struct Ctx {
    pub flags: AnsibleFlags,
    runner: Box<dyn Runner>,
    pub warnings: Vec<String>,
    /// Commands that changed something (or would have, in check mode): a write that
    /// failed is not here (it changed nothing unless its caller accepted the failure).
    pub commands: Vec<Vec<String>>,
    /// What changed, in order: the summary of each step whose command succeeded, and
    /// "ran ARGV" for a write outside the plan's steps (a fallback, a repair).
    pub done: Vec<String>,
    /// Every command run, reads included (tests, verbosity); D-Bus calls as
    /// [`BusCall::record`], probes as `["probe", WHAT]`.
    pub calls: Vec<Vec<String>>,
    /// Set by a module that put back what it had changed (a checkpoint rolled back, a
    /// previous definition restored): a failed run then reports `changed: false`.
    pub rolled_back: bool,
}

fn to_argv<S: AsRef<str>>(argv: &[S]) -> Vec<String> {
    argv.iter().map(|s| s.as_ref().to_string()).collect()
}

impl Ctx {
    pub fn new(flags: AnsibleFlags, runner: Box<dyn Runner>) -> Self {
        Ctx {
            flags,
            runner,
            warnings: Vec::new(),
            commands: Vec::new(),
            done: Vec::new(),
            calls: Vec::new(),
            rolled_back: false,
        }
    }
    pub fn check_mode(&self) -> bool {
        self.flags.check_mode
    }
    pub fn warn(&mut self, msg: impl Into<String>) {
        let m = msg.into();
        if !self.warnings.contains(&m) {
            self.warnings.push(m);
        }
    }
    /// Whether programs run in a UTF-8 C locale (see [`Runner::utf8_locale`]).
    pub fn utf8_locale(&self) -> bool {
        self.runner.utf8_locale()
    }
    /// `n` random bytes (the test double makes them predictable).
    pub fn random_bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        self.runner.random(&mut buf)?;
        Ok(buf)
    }
    /// `n` random bytes as lower-case hex.
    pub fn random_hex(&mut self, n: usize) -> Result<String> {
        Ok(self
            .random_bytes(n)?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
    /// Time since the run started (the test double's clock moves only when it sleeps).
    pub fn now(&self) -> Duration {
        self.runner.now()
    }
    /// Wait (the test double does not).
    pub fn sleep(&mut self, d: Duration) {
        self.runner.sleep(d)
    }
    /// Run a command that only reads; its exit status is the caller's to judge.
    pub fn read_any<S: AsRef<str>>(&mut self, argv: &[S]) -> Result<Output> {
        let argv = to_argv(argv);
        self.calls.push(argv.clone());
        self.runner.run(&argv, None)
    }
    /// Run a command that only reads; non-zero exit is an error naming the command.
    pub fn read<S: AsRef<str>>(&mut self, argv: &[S]) -> Result<Output> {
        let argv = to_argv(argv);
        self.calls.push(argv.clone());
        let out = self.runner.run(&argv, None)?;
        if out.success() {
            Ok(out)
        } else {
            Err(command_failed(&argv, &out))
        }
    }
    /// Read a small host file (sysfs, a keyfile): cheaper than a command, and replayed by
    /// the test double like commands are.
    pub fn read_file(&mut self, path: &str) -> Option<String> {
        self.runner.read_file(path)
    }
    /// The names in a host directory, sorted (no process; replayed by the test double
    /// from the files it serves).
    pub fn list_dir(&mut self, dir: &str) -> Vec<String> {
        self.runner.list_dir(dir)
    }
    /// Whether this module can call the system bus (its main linked a client).
    pub fn has_bus(&self) -> bool {
        self.runner.has_bus()
    }
    /// Call D-Bus methods that only read and do not depend on each other's answers, all
    /// at once (one wait for the service); the answers in the order of the calls, error
    /// replies the caller's to judge.
    pub fn bus_read_all(&mut self, calls: &[BusCall]) -> Result<Vec<BusReply>> {
        self.calls.extend(calls.iter().map(BusCall::record));
        self.runner.bus_all(calls)
    }
    /// Call a D-Bus method that only reads; an error reply is the caller's to judge.
    pub fn bus_read_any(&mut self, call: &BusCall) -> Result<BusReply> {
        self.calls.push(call.record());
        self.runner.bus(call)
    }
    /// Call a D-Bus method that only reads; an error reply is an error naming the method.
    pub fn bus_read(&mut self, call: &BusCall) -> Result<Vec<Value>> {
        self.bus_read_any(call)?.map_err(|e| call_failed(call, &e))
    }
    /// Call a D-Bus method that changes the host, as [`Ctx::write`] runs a command: never
    /// in check mode; an error reply is an error and changed nothing; a success is in
    /// `commands` (as [`BusCall::record`]) and in `done`.
    pub fn bus_write(&mut self, call: &BusCall) -> Result<Vec<Value>> {
        let out = self.bus_write_inner(call)?;
        self.done.push(format!("called {}", call.method()));
        Ok(out)
    }
    /// Run one step of the plan that is a D-Bus call (see [`Step::bus_call`]).
    pub fn run_bus_step(&mut self, step: &dyn Step, call: &BusCall) -> Result<Vec<Value>> {
        let out = self.bus_write_inner(call)?;
        self.done.push(step.summary());
        Ok(out)
    }

    fn bus_write_inner(&mut self, call: &BusCall) -> Result<Vec<Value>> {
        if self.flags.check_mode {
            return Err(Error::bug(format!(
                "a D-Bus call that changes the host was attempted in check mode: {}",
                call.method()
            )));
        }
        self.calls.push(call.record());
        let out = self.runner.bus(call)?.map_err(|e| call_failed(call, &e))?;
        self.commands.push(call.record());
        Ok(out)
    }
    /// A read of the host made in this process (a network probe on a socket): `probe`
    /// runs on the real host; the test double answers what its case scripted for `what`.
    pub fn probe(&mut self, what: &str, mut probe: impl FnMut() -> Result<Value>) -> Result<Value> {
        self.calls.push(vec!["probe".to_string(), what.to_string()]);
        self.runner.probe(what, &mut probe)
    }
    /// Run a command that changes the host. Never runs in check mode. A command that
    /// fails (or cannot start) is an error and counts as no change.
    pub fn write<S: AsRef<str>>(&mut self, argv: &[S], stdin: Option<&str>) -> Result<Output> {
        self.write_accepting(argv, stdin, |_| false)
    }
    /// Like [`Ctx::write`], but a non-zero exit that `accept` approves is a success (and a
    /// change): the tool says the host is as wanted, e.g. "already gone" on a delete.
    pub fn write_accepting<S: AsRef<str>>(
        &mut self,
        argv: &[S],
        stdin: Option<&str>,
        accept: impl Fn(&Output) -> bool,
    ) -> Result<Output> {
        let argv = to_argv(argv);
        let what = format!("ran {}", display_argv(&argv));
        let out = self.write_inner(argv, stdin, accept)?;
        self.done.push(what);
        Ok(out)
    }

    fn write_inner(
        &mut self,
        argv: Vec<String>,
        stdin: Option<&str>,
        accept: impl Fn(&Output) -> bool,
    ) -> Result<Output> {
        if self.flags.check_mode {
            return Err(Error::bug(format!(
                "a write was attempted in check mode: {}",
                display_argv(&argv)
            )));
        }
        self.calls.push(argv.clone());
        let out = self.runner.run(&argv, stdin)?;
        if out.success() || accept(&out) {
            self.commands.push(argv);
            Ok(out)
        } else {
            Err(command_failed(&argv, &out))
        }
    }
    /// Run one step of the plan with `command` (the step's own, or one whose placeholders
    /// apply has filled in); a success is remembered as done.
    pub fn run_step(
        &mut self,
        step: &dyn Step,
        command: &Command,
        accept: impl Fn(&Output) -> bool,
    ) -> Result<Output> {
        let out = self.write_inner(command.argv.clone(), command.stdin.as_deref(), accept)?;
        self.done.push(step.summary());
        Ok(out)
    }
    /// Run one step with the command it planned.
    pub fn run_planned(&mut self, step: &dyn Step) -> Result<Option<Output>> {
        if let Some(call) = step.bus_call() {
            return self.run_bus_step(step, &call).map(|_| None);
        }
        match step.command() {
            Some(c) => self.run_step(step, &c, |_| false).map(Some),
            None => {
                self.done.push(step.summary());
                Ok(None)
            }
        }
    }
    /// The write just made changed nothing, as its tool says (a delete of profiles that
    /// were all gone already): it is neither in `commands` nor in `done`. A real run whose
    /// writes all changed nothing says `changed: false` (the driver's one rule).
    pub fn forget_last_write(&mut self) {
        self.commands.pop();
        self.done.pop();
    }
    /// The view `plan` gets.
    pub fn env(&mut self) -> Env<'_> {
        Env { ctx: self }
    }
}

/// What `plan` may use: it decides from the options and the current state alone, so it
/// can neither read nor change the host.
pub struct Env<'a> {
    ctx: &'a mut Ctx,
}

impl Env<'_> {
    pub fn check_mode(&self) -> bool {
        self.ctx.check_mode()
    }
    pub fn warn(&mut self, msg: impl Into<String>) {
        self.ctx.warn(msg)
    }
    pub fn random_bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        self.ctx.random_bytes(n)
    }
}
