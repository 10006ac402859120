//! The module contract and the driver: parse → validate → lock → read → plan → apply →
//! verify → one JSON result.
//!
//! A module is four typed phases (see modules/README.md): `read` gathers the current
//! state through [`Ctx`]; `plan` compares it with the options and returns a
//! [`Plan`] of the module's own typed steps and desired state, seeing the host only
//! through what `read` returned (its [`Env`] cannot run anything); `apply` runs the steps
//! (by default each step's planned command, in order); `verify` reads back and checks
//! what was asked. The driver owns everything the modules share: validation, the host
//! lock, check mode, what `changed` means, no_log and the one JSON result.

use crate::args::Invocation;
use crate::bus::Bus;
use crate::ctx::{Ctx, Env};
use crate::error::{Error, Result};
use crate::lock::{self, HostLock};
use crate::output::{self, Masker, Outcome};
use crate::plan::{Plan, Step};
use crate::runner::{Runner, SystemRunner};
use crate::spec::Spec;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// A kvmnet module.
pub trait Module {
    /// Short name, as in `kvmnet.network.<NAME>`.
    const NAME: &'static str;
    /// A module that only reports: it takes no host lock and its plan has no steps.
    const READ_ONLY: bool = false;
    /// The options, typed (from the validated options of [`Module::spec`]).
    type Params: DeserializeOwned;
    /// What `read` found on the host.
    type Current;
    /// What the plan aims at, typed, for apply and verify.
    type Desired;
    /// The module's steps.
    type Action: Step;

    /// The options: names, types, choices, defaults, aliases, required-ness.
    fn spec() -> Spec;
    /// Checks of the options alone, before anything on the host is read.
    fn validate(_p: &Self::Params) -> Result<()> {
        Ok(())
    }
    /// Read the current state (as few processes as possible; lazy reads decided here).
    fn read(ctx: &mut Ctx, p: &Self::Params) -> Result<Self::Current>;
    /// A cheaper read that can only confirm that nothing is to change: the objects that
    /// decide a no-change run, without what only a change needs (NetworkManager's
    /// profiles of the devices involved over D-Bus, instead of nmcli reading every profile
    /// of the host). `Ok(None)`: it cannot tell. The driver plans from what it returns;
    /// when that plan changes nothing, it is the run's; otherwise (a change, a refusal, an
    /// error here) the driver forgets it and reads everything with [`Module::read`].
    fn read_quick(_ctx: &mut Ctx, _p: &Self::Params) -> Result<Option<Self::Current>> {
        Ok(None)
    }
    /// Compare with what was asked: the desired state, the steps, the diff, the return
    /// values. Pure: everything it knows of the host came from `read`.
    fn plan(
        env: &mut Env,
        p: &Self::Params,
        cur: &Self::Current,
    ) -> Result<Plan<Self::Desired, Self::Action>>;
    /// Make the changes. The default runs each step's planned command in order.
    fn apply(
        ctx: &mut Ctx,
        _p: &Self::Params,
        _cur: &Self::Current,
        plan: &mut Plan<Self::Desired, Self::Action>,
    ) -> Result<()> {
        for a in &plan.actions {
            ctx.run_planned(a)?;
        }
        Ok(())
    }
    /// After a real change: read back and check that what was asked is in effect.
    fn verify(
        _ctx: &mut Ctx,
        _p: &Self::Params,
        _plan: &mut Plan<Self::Desired, Self::Action>,
    ) -> Result<()> {
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
/// `M --spec` prints the options as JSON in Ansible's argument_spec form (the tests hold
/// the documentation against it).
pub fn run<M: Module>() -> ! {
    run_inner::<M>(None)
}

/// Entry point of a module that calls the system bus: `bus` (a client that connects on
/// its first call) serves [`Ctx::bus_read`](crate::Ctx::bus_read) and
/// [`Ctx::bus_write`](crate::Ctx::bus_write).
pub fn run_bus<M: Module>(bus: Box<dyn Bus>) -> ! {
    run_inner::<M>(Some(bus))
}

fn run_inner<M: Module>(bus: Option<Box<dyn Bus>>) -> ! {
    output::install_panic_hook(M::NAME);
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--spec") {
        output::emit(&M::spec().to_argument_spec());
        std::process::exit(0);
    }
    let mut runner = SystemRunner::default();
    if let Some(b) = bus {
        runner = runner.with_bus(b);
    }
    let report = match arg.map(|p| Invocation::from_path(&p)) {
        None => early_failure(Error::invalid(format!(
            "usage: {} ARGS_FILE (an Ansible module: run it through Ansible)",
            M::NAME
        ))),
        Some(Err(err)) => early_failure(err),
        Some(Ok(inv)) => match std::env::var(crate::record::RECORD) {
            Ok(dir) if !dir.is_empty() => {
                let (rec, log) = crate::record::Recorder::new(Box::new(runner));
                let report = run_with::<M>(inv, Box::new(rec), Some(lock::default_path()));
                if let Err(e) = log.borrow().write(&dir) {
                    eprintln!("{}: cannot write {dir}: {e}", crate::record::RECORD);
                }
                report
            }
            _ => run_with::<M>(inv, Box::new(runner), Some(lock::default_path())),
        },
    };
    output::emit(&report.json);
    std::process::exit(report.rc)
}

fn early_failure(err: Error) -> RunReport {
    RunReport {
        json: output::failure(&err, &Value::Object(Map::new()), false, &[], &[]),
        rc: 1,
        calls: Vec::new(),
    }
}

/// What validation and planning produced, kept for the result of a failure too.
struct Progress {
    shown_args: Value,
    masker: Masker,
    planned: Vec<String>,
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
    let mut progress = Progress {
        shown_args: output::module_args(&spec, &inv.options, inv.flags.no_log),
        masker: Masker::new(&spec, &inv.options, None, inv.flags.no_log),
        planned: Vec::new(),
    };
    output::remember_invocation(&progress.shown_args, &progress.masker);
    let result = drive::<M>(&spec, &inv, &mut ctx, lock, &mut progress);
    let mut json = match result {
        Ok(outcome) => output::success(&outcome, &progress.shown_args, &ctx),
        Err(err) => {
            let changed = !ctx.check_mode() && !ctx.commands.is_empty() && !ctx.rolled_back;
            let err = if changed {
                partial_failure(err, &progress.planned, &ctx.done)
            } else {
                err
            };
            output::failure(
                &err,
                &progress.shown_args,
                changed,
                &ctx.warnings,
                &ctx.commands,
            )
        }
    };
    progress.masker.apply(&mut json);
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

/// Options → typed params, checked; the values no_log hides.
fn validate<M: Module>(
    spec: &Spec,
    inv: &Invocation,
    ctx: &mut Ctx,
    progress: &mut Progress,
) -> Result<M::Params> {
    let validated = spec.validate(&inv.options, M::NAME)?;
    progress.shown_args = output::module_args(spec, &validated.params, inv.flags.no_log);
    progress.masker = Masker::new(
        spec,
        &inv.options,
        Some(&validated.params),
        inv.flags.no_log,
    );
    output::remember_invocation(&progress.shown_args, &progress.masker);
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
    Ok(params)
}

fn drive<M: Module>(
    spec: &Spec,
    inv: &Invocation,
    ctx: &mut Ctx,
    lock: Option<PathBuf>,
    progress: &mut Progress,
) -> Result<Outcome> {
    let params = validate::<M>(spec, inv, ctx, progress)?;
    let _held = match (&lock, ctx.check_mode() || M::READ_ONLY) {
        (Some(path), false) => Some(HostLock::acquire(ctx, path, lock::DEFAULT_WAIT)?),
        _ => None, // check mode and read-only modules write nothing, not even a lock file
    };
    let (current, mut plan) = match quick::<M>(ctx, &params) {
        Some(read_and_plan) => read_and_plan,
        None => {
            let current = M::read(ctx, &params)?;
            let plan = M::plan(&mut ctx.env(), &params, &current)?;
            (current, plan)
        }
    };
    progress.planned = plan.actions.iter().map(Step::summary).collect();
    if M::READ_ONLY && plan.changed() {
        return Err(Error::bug(format!(
            "read-only module {} planned changes",
            M::NAME
        )));
    }
    if plan.changed() {
        if ctx.check_mode() {
            ctx.commands = plan.commands();
        } else {
            M::apply(ctx, &params, &current, &mut plan)?;
            M::verify(ctx, &params, &mut plan)?;
        }
    }
    // A real run changed the host if one of its writes did (a write its tool says changed
    // nothing is forgotten: Ctx::forget_last_write); check mode predicts from the plan.
    let changed = plan.changed() && (ctx.check_mode() || !ctx.done.is_empty());
    Ok(Outcome {
        changed,
        summaries: plan.summaries(),
        msg: plan.msg,
        result: plan.result,
        diffs: plan.diffs,
        restart_required: plan.restart_required,
    })
}

type Planned<M> = Plan<<M as Module>::Desired, <M as Module>::Action>;

/// The quick read and its plan, if that plan changes nothing (see [`Module::read_quick`]);
/// else nothing of it stays (its warnings are dropped with it).
fn quick<M: Module>(ctx: &mut Ctx, params: &M::Params) -> Option<(M::Current, Planned<M>)> {
    let warnings = ctx.warnings.len();
    let current = M::read_quick(ctx, params).ok().flatten()?;
    match M::plan(&mut ctx.env(), params, &current) {
        Ok(plan) if !plan.changed() && plan.restart_required != Some(true) => Some((current, plan)),
        _ => {
            ctx.warnings.truncate(warnings);
            None
        }
    }
}

/// A failure after some changes stuck: the message says what was done (steps by their
/// summaries, writes outside the steps by their argv) and which planned steps were not.
fn partial_failure(err: Error, planned: &[String], done: &[String]) -> Error {
    let mut left: Vec<&str> = Vec::new();
    let mut unmatched: Vec<&String> = done.iter().collect();
    for s in planned {
        match unmatched.iter().position(|d| *d == s) {
            Some(i) => {
                unmatched.remove(i);
            }
            None => left.push(s),
        }
    }
    let mut msg = format!(
        "{}. Changed before the failure: {}",
        err.msg,
        done.join("; ")
    );
    if !left.is_empty() {
        msg.push_str(&format!(". Not done: {}", left.join("; ")));
    }
    Error { msg, ..err }
}
