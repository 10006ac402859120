//! The module contract and the driver: parse → validate → lock → query → plan →
//! apply → verify → one JSON result. A module author writes typed params, a state query,
//! a plan (a list of actions with their argv, the diff and the return values) and, when
//! running the planned argv in order is not enough, an apply.

use crate::args::{AnsibleFlags, Invocation};
use crate::error::{Error, Result};
use crate::lock::{self, HostLock};
use crate::output;
use crate::runner::{command_failed, Output, Runner, SystemRunner};
use crate::spec::Spec;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// One change the module makes (or would make in check mode).
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Short human phrase: "create bridge profile bridge-br0".
    pub summary: String,
    /// The command that makes the change; empty for a change that is not a command.
    pub argv: Vec<String>,
    pub stdin: Option<String>,
}

impl Action {
    pub fn new<S: Into<String>>(
        summary: impl Into<String>,
        argv: impl IntoIterator<Item = S>,
    ) -> Self {
        Action {
            summary: summary.into(),
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
        }
    }
    pub fn with_stdin(mut self, stdin: impl Into<String>) -> Self {
        self.stdin = Some(stdin.into());
        self
    }
}

/// One object's before/after for `--diff`. Values are text or mappings.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    pub before_header: String,
    pub after_header: String,
    pub before: Value,
    pub after: Value,
}

impl Diff {
    pub fn new(
        header: impl Into<String>,
        before: impl Into<Value>,
        after: impl Into<Value>,
    ) -> Self {
        let h = header.into();
        Diff {
            before_header: h.clone(),
            after_header: h,
            before: before.into(),
            after: after.into(),
        }
    }
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "before": self.before, "after": self.after,
            "before_header": self.before_header, "after_header": self.after_header,
        })
    }
}

/// What the module will do, and what it will report.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub diffs: Vec<Diff>,
    /// The module's own return values (`bridge`, `link`, `network`, `interface`, ...),
    /// as they will be after the change; `verify` may refresh them.
    pub result: Map<String, Value>,
    /// One human sentence; a default is made from the actions when unset.
    pub msg: Option<String>,
    /// Set when a definition changed that the running object has not taken yet.
    pub restart_required: Option<bool>,
}

impl Plan {
    pub fn push(&mut self, action: Action) {
        self.actions.push(action);
    }
    pub fn changed(&self) -> bool {
        !self.actions.is_empty()
    }
    /// The actions' summaries joined with `; ` (the default message is made from them).
    pub fn summaries(&self) -> String {
        self.actions
            .iter()
            .map(|a| a.summary.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.result.insert(key.to_string(), value.into());
    }
}

/// What a module sees of the world: Ansible's flags, the command runner, warnings.
pub struct Ctx {
    pub flags: AnsibleFlags,
    runner: Box<dyn Runner>,
    pub warnings: Vec<String>,
    /// Commands that changed something (or would have, in check mode): a write that
    /// failed is not here (it changed nothing unless its caller accepted the failure).
    pub commands: Vec<Vec<String>>,
    /// Every command run, reads included (tests, verbosity).
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
            calls: Vec::new(),
            rolled_back: false,
        }
    }
    /// Whether programs run in a UTF-8 C locale (see [`Runner::utf8_locale`]).
    pub fn utf8_locale(&self) -> bool {
        self.runner.utf8_locale()
    }
    /// `n` random bytes as lower-case hex (the test double makes them predictable).
    pub fn random_hex(&mut self, n: usize) -> Result<String> {
        let mut buf = vec![0u8; n];
        self.runner.random(&mut buf)?;
        Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
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
        if self.flags.check_mode {
            return Err(Error::bug(format!(
                "a write was attempted in check mode: {}",
                crate::runner::display_argv(&argv)
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
}

/// A kvmnet module.
pub trait Module {
    /// Short name, as in `kvmnet.network.<NAME>`.
    const NAME: &'static str;
    type Params: DeserializeOwned;
    type State;

    fn spec() -> Spec;
    /// Checks of the options alone, before anything on the host is read.
    fn validate(_params: &Self::Params) -> Result<()> {
        Ok(())
    }
    /// Read the current state (as few commands as possible).
    fn query(ctx: &mut Ctx, params: &Self::Params) -> Result<Self::State>;
    /// Compare with what was asked; list the actions, the diff and the return values.
    fn plan(ctx: &mut Ctx, params: &Self::Params, current: &Self::State) -> Result<Plan>;
    /// Make the changes. The default runs each action's argv in order.
    fn apply(
        ctx: &mut Ctx,
        _params: &Self::Params,
        _current: &Self::State,
        plan: &Plan,
    ) -> Result<()> {
        for a in &plan.actions {
            if !a.argv.is_empty() {
                ctx.write(&a.argv, a.stdin.as_deref())?;
            }
        }
        Ok(())
    }
    /// After a real change: re-read and check that what was asked is in effect.
    fn verify(_ctx: &mut Ctx, _params: &Self::Params, _plan: &mut Plan) -> Result<()> {
        Ok(())
    }
}

/// The outcome of one run, for the binary's `main` and for tests.
#[derive(Debug)]
pub struct RunReport {
    pub json: Value,
    pub rc: i32,
    pub calls: Vec<Vec<String>>,
}

/// Entry point of a module binary: `fn main() { kvmnet_protocol::run::<M>() }`.
pub fn run<M: Module>() -> ! {
    output::install_panic_hook(M::NAME);
    let path = std::env::args().nth(1);
    let report = match path {
        None => {
            let err = Error::invalid(format!(
                "usage: {} ARGS_FILE (an Ansible module: run it through Ansible)",
                M::NAME
            ));
            RunReport {
                json: output::failure(&err, &Value::Object(Map::new()), false, &[], &[]),
                rc: 1,
                calls: Vec::new(),
            }
        }
        Some(p) => match Invocation::from_path(&p) {
            Ok(inv) => run_with::<M>(
                inv,
                Box::new(SystemRunner::default()),
                Some(lock::default_path()),
            ),
            Err(err) => RunReport {
                json: output::failure(&err, &Value::Object(Map::new()), false, &[], &[]),
                rc: 1,
                calls: Vec::new(),
            },
        },
    };
    output::emit(&report.json);
    std::process::exit(report.rc)
}

/// Run module `M` on a parsed invocation with the given runner; `lock` is the host lock
/// to hold for a real run (None: no lock, for unit tests).
pub fn run_with<M: Module>(
    inv: Invocation,
    runner: Box<dyn Runner>,
    lock: Option<PathBuf>,
) -> RunReport {
    let spec = M::spec();
    let mut ctx = Ctx::new(inv.flags.clone(), runner);
    // What invocation.module_args shows: the raw options until they validate, then the
    // validated ones (aliases resolved, defaults added), also when a later step fails.
    let mut shown_args = output::module_args(&spec, &inv.options, inv.flags.no_log);
    let mut masker = output::Masker::new(&spec, &inv.options, None, inv.flags.no_log);
    output::remember_invocation(&shown_args, &masker);
    let mut planned: Option<Plan> = None;
    let result = (|| -> Result<(Plan, Value)> {
        let validated = spec.validate(&inv.options, M::NAME)?;
        let args = output::module_args(&spec, &validated.params, inv.flags.no_log);
        masker = output::Masker::new(
            &spec,
            &inv.options,
            Some(&validated.params),
            inv.flags.no_log,
        );
        output::remember_invocation(&args, &masker);
        shown_args = args.clone();
        ctx.warnings.extend(validated.warnings);
        if !ctx.utf8_locale() {
            if let Some((path, value)) = spec.non_ascii(&validated.params) {
                return Err(Error::not_supported(format!(
                    "option '{path}': '{value}' holds characters outside ASCII, and this host has no UTF-8 C locale (C.UTF-8), without which nmcli, ip and virsh print them as '?' and kvmnet could not find the object again; install the C.UTF-8 locale on the host or use an ASCII name"
                )));
            }
        }
        let params: M::Params =
            serde_json::from_value(Value::Object(validated.params)).map_err(|e| {
                Error::bug(format!(
                    "options do not fit the module's parameter type: {e}"
                ))
            })?;
        M::validate(&params)?;
        let _held = match (&lock, ctx.check_mode()) {
            (Some(path), false) => Some(HostLock::acquire(path, lock::DEFAULT_WAIT)?),
            _ => None, // check mode writes nothing, not even a lock file
        };
        let current = M::query(&mut ctx, &params)?;
        let plan = M::plan(&mut ctx, &params, &current)?;
        planned = Some(plan.clone());
        let mut plan = plan;
        if plan.changed() {
            if ctx.check_mode() {
                ctx.commands = plan
                    .actions
                    .iter()
                    .filter(|a| !a.argv.is_empty())
                    .map(|a| a.argv.clone())
                    .collect();
            } else {
                M::apply(&mut ctx, &params, &current, &plan)?;
                M::verify(&mut ctx, &params, &mut plan)?;
            }
        }
        Ok((plan, args))
    })();
    let mut json = match result {
        Ok((plan, args)) => output::success(&plan, &args, &ctx),
        Err(err) => {
            let changed = !ctx.check_mode() && !ctx.commands.is_empty() && !ctx.rolled_back;
            let err = if changed {
                partial_failure(err, planned.as_ref(), &ctx.commands)
            } else {
                err
            };
            output::failure(&err, &shown_args, changed, &ctx.warnings, &ctx.commands)
        }
    };
    masker.apply(&mut json);
    let rc = if json["failed"] == Value::Bool(true) {
        1
    } else {
        0
    };
    RunReport {
        json,
        rc,
        calls: ctx.calls,
    }
}

/// A failure after some changes stuck: the message says what was done and what was not
/// (the plan's actions by their summaries, commands outside the plan by their argv).
fn partial_failure(err: Error, plan: Option<&Plan>, commands: &[Vec<String>]) -> Error {
    let actions = plan.map(|p| p.actions.as_slice()).unwrap_or_default();
    let mut done: Vec<String> = Vec::new();
    let mut not_done: Vec<String> = Vec::new();
    for a in actions {
        if a.argv.is_empty() {
            continue;
        }
        if commands.contains(&a.argv) {
            done.push(a.summary.clone());
        } else {
            not_done.push(a.summary.clone());
        }
    }
    for c in commands {
        if !actions.iter().any(|a| a.argv == *c) {
            done.push(format!("ran {}", crate::runner::display_argv(c)));
        }
    }
    let mut msg = format!(
        "{}. Changed before the failure: {}",
        err.msg,
        done.join("; ")
    );
    if !not_done.is_empty() {
        msg.push_str(&format!(". Not done: {}", not_done.join("; ")));
    }
    Error { msg, ..err }
}
