//! Running a change inside a NetworkManager checkpoint (guard.rs decides when): take it
//! (apply), commit it once verify has seen the host reachable, or roll back at once; and
//! notice, cheaply, a checkpoint an interrupted run left pending.
//!
//! A pending checkpoint is NetworkManager's only, in memory: a run killed before it
//! commits leaves NetworkManager to roll back by itself when the timeout passes. So that
//! the next run does not stack changes on a state about to be rolled back (or call a
//! doomed state "no change"), apply notes the checkpoint in
//! `/run/kvmnet/nm_bridge/<bridge>.checkpoint` (a tmpfs: gone at reboot, as checkpoints
//! are); current.rs reads that file directly (no process) and asks NetworkManager over
//! D-Bus only while it says a rollback may still be pending.

use crate::apply::Action;
use crate::plan::Plan;
use kvmnet_nmdbus::checkpoint::{self as cp, flags};
use kvmnet_nmdbus::{device, first_str};
use kvmnet_protocol::{BusCall, Command, Ctx, Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const RUN_DIR: &str = "/run/kvmnet/nm_bridge";
/// How planned commands show the checkpoint's path before NetworkManager names it.
pub const PLACEHOLDER: &str = "<checkpoint>";
const UPTIME: &str = "/proc/uptime";

pub fn marker_path(bridge: &str) -> String {
    format!("{RUN_DIR}/{bridge}.checkpoint")
}

/// A checkpoint this run took.
#[derive(Debug, Clone)]
pub struct Taken {
    pub path: String,
    /// `ctx.now()` when it was taken.
    pub started: Duration,
    /// When NetworkManager rolls back by itself (CLOCK_BOOTTIME ms), if the clock was read.
    pub rollback_at_ms: Option<i64>,
    pub timeout: u32,
}

impl Taken {
    pub fn verify_for(&self) -> Duration {
        verify_window(self.timeout)
    }
}

/// How long verify may try: the timeout less a margin (a quarter, 3 to 15 s), so that
/// this run rolls back or commits before NetworkManager's own rollback.
pub fn verify_window(timeout: u32) -> Duration {
    let t = u64::from(timeout);
    Duration::from_secs(t - (t / 4).clamp(3, 15))
}

/// What the marker holds: the checkpoint, when NetworkManager rolls it back, and, when the
/// run rewrites the memory file, that file's text before it (`text: None`: there was
/// none), which NetworkManager's rollback does not restore: the next run does.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    checkpoint: String,
    rollback_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_before: Option<MemoryBefore>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemoryBefore {
    text: Option<String>,
}

/// `tee` of the marker (a placeholder body while planning).
pub fn marker_command(
    bridge: &str,
    taken: Option<&Taken>,
    memory_before: Option<&Option<String>>,
) -> Command {
    let m = Marker {
        checkpoint: taken.map_or(PLACEHOLDER.to_string(), |t| t.path.clone()),
        rollback_at_ms: taken.and_then(|t| t.rollback_at_ms),
        memory_before: memory_before.map(|t| MemoryBefore { text: t.clone() }),
    };
    let body = serde_json::to_string(&m).unwrap_or_default() + "\n";
    Command::new(["tee", &marker_path(bridge)]).with_stdin(body)
}

/// `CheckpointCreate`: the devices, the timeout, and `DELETE_NEW_CONNECTIONS` (a rollback
/// deletes the profiles this run made; the ones it deleted come back). Not
/// `DESTROY_ALL`: other checkpoints may be another client's.
pub fn create_call(device_paths: &[String], timeout: u32) -> BusCall {
    cp::create(device_paths, timeout, flags::DELETE_NEW_CONNECTIONS)
}

pub fn commit_call(path: &str) -> BusCall {
    cp::destroy(path)
}

/// CLOCK_BOOTTIME now, in milliseconds (NetworkManager dates checkpoints by it), from
/// `/proc/uptime` ("4140.90 2338.80": seconds with hundredths).
pub fn uptime_ms(ctx: &mut Ctx) -> Option<i64> {
    let text = ctx.read_file(UPTIME)?;
    let first = text.split_whitespace().next()?;
    let (secs, frac) = first.split_once('.').unwrap_or((first, ""));
    let frac: String = frac.chars().chain("000".chars()).take(3).collect();
    Some(secs.parse::<i64>().ok()? * 1000 + frac.parse::<i64>().ok()?)
}

/// A checkpoint an earlier run left pending.
#[derive(Debug, Clone)]
pub struct Pending {
    pub path: String,
    /// Its devices' interface names.
    pub devices: Vec<String>,
    /// Milliseconds until NetworkManager rolls back, when known.
    pub in_ms: Option<i64>,
}

impl Pending {
    pub fn error(&self, whose: &str) -> Error {
        let when = match self.in_ms {
            Some(ms) if ms > 0 => format!("in about {} s", (ms + 999) / 1000),
            Some(_) => "any moment now".to_string(),
            None => "when its rollback timeout passes".to_string(),
        };
        Error::new(
            ErrorKind::Busy,
            format!(
                "a NetworkManager checkpoint {whose} ({}) is pending on {}: NetworkManager rolls {} back to the state before it {when}. Nothing was changed; run the task again after that",
                self.path,
                self.devices.join(", "),
                if self.devices.len() == 1 { "it" } else { "them" }
            ),
        )
        .with("checkpoint", self.path.clone())
    }
}

fn describe(ctx: &mut Ctx, c: &cp::Checkpoint, now: Option<i64>) -> Pending {
    let devices = c
        .devices
        .iter()
        .map(|d| device::interface(ctx, d).unwrap_or_else(|_| d.clone()))
        .collect();
    Pending {
        path: c.path.clone(),
        devices,
        in_ms: c.rollback_at_ms().zip(now).map(|(at, n)| at - n),
    }
}

/// What the marker of an earlier run says.
#[derive(Debug, Clone)]
pub enum Marked {
    /// NetworkManager still holds its checkpoint.
    Pending(Pending),
    /// The run was interrupted and its checkpoint is gone (rolled back): its memory file
    /// is to be put back to this text (`None`: removed).
    RolledBack(Option<String>),
}

/// The checkpoint the marker names, if NetworkManager still holds it, or what an
/// interrupted run left to put back. No marker: nothing is asked over D-Bus; nor when its
/// rollback time is long past (NetworkManager has rolled back by then).
pub fn read_marker(ctx: &mut Ctx, bridge: &str) -> Result<Option<Marked>> {
    let Some(text) = ctx.read_file(&marker_path(bridge)) else {
        return Ok(None);
    };
    let Ok(m) = serde_json::from_str::<Marker>(&text) else {
        return Ok(None);
    };
    let now = uptime_ms(ctx);
    let past = matches!((now, m.rollback_at_ms), (Some(n), Some(at)) if n > at + 5000);
    if !past {
        if let Some(c) = cp::read(ctx, &m.checkpoint)? {
            return Ok(Some(Marked::Pending(describe(ctx, &c, now))));
        }
    }
    Ok(m.memory_before.map(|b| Marked::RolledBack(b.text)))
}

/// `CheckpointCreate` refused: a device is in another pending checkpoint. Say which, and
/// when it rolls back.
fn held_elsewhere(ctx: &mut Ctx, paths: &[String], e: Error) -> Error {
    let now = uptime_ms(ctx);
    let Ok(all) = cp::list(ctx) else { return e };
    match all
        .iter()
        .find(|c| c.devices.iter().any(|d| paths.contains(d)))
    {
        Some(c) => describe(ctx, c, now).error("made by another run or client"),
        None => e,
    }
}

/// Take the checkpoint of the plan's guard: read what the host has before the change (its
/// default routes), find NetworkManager's devices, create it.
pub fn take(ctx: &mut Ctx, step: &Action, plan: &mut Plan) -> Result<()> {
    let Action::Checkpoint { devices, timeout } = step else {
        return Err(Error::bug("take: not a checkpoint step"));
    };
    let routes = kvmnet_iproute::read_default_routes(ctx)?;
    let mut paths = Vec::new();
    for d in devices {
        if let Some(p) = device::path_by_iface(ctx, d)? {
            paths.push(p);
        }
    }
    if paths.is_empty() {
        return Err(Error::not_supported(format!(
            "NetworkManager has no device for {}, so it cannot take a checkpoint of them",
            devices.join(", ")
        )));
    }
    let now = uptime_ms(ctx);
    let call = create_call(&paths, *timeout);
    let started = ctx.now();
    let reply = match ctx.run_bus_step(step, &call) {
        Ok(r) => r,
        Err(e) if cp::is_already_included(&e) => return Err(held_elsewhere(ctx, &paths, e)),
        Err(e) => return Err(e.context("cannot take a NetworkManager checkpoint")),
    };
    let path = first_str(&call, &reply)?;
    if let Some(g) = plan.desired.guard.as_mut() {
        g.reach.routes_before = routes;
    }
    plan.desired.checkpoint = Some(Taken {
        path,
        started,
        rollback_at_ms: now.map(|n| n + i64::from(*timeout) * 1000),
        timeout: *timeout,
    });
    Ok(())
}

fn gone(e: &Error) -> bool {
    e.extra
        .get("dbus_message")
        .and_then(|m| m.as_str())
        .is_some_and(|m| m.contains("does not exist"))
}

/// Keep the changes: destroy the checkpoint, then remove the marker.
pub fn commit(ctx: &mut Ctx, plan: &mut Plan) -> Result<()> {
    let Some(taken) = plan.desired.checkpoint.clone() else {
        return Ok(());
    };
    if let Err(e) = ctx.run_bus_step(&Action::Commit, &commit_call(&taken.path)) {
        if gone(&e) {
            ctx.rolled_back = true;
            return Err(Error::verification(format!(
                "the change was verified, but NetworkManager had already rolled it back: its rollback timeout of {} s passed first; rolled back (give rollback_timeout more time)",
                taken.timeout
            )));
        }
        return Err(e.context(format!(
            "could not commit the checkpoint, which NetworkManager rolls back by itself after {} s",
            taken.timeout
        )));
    }
    plan.desired.checkpoint = None;
    let unmark = plan
        .actions
        .iter()
        .find(|a| matches!(a, Action::Unmark { .. }))
        .cloned();
    if let Some(u) = unmark {
        if let Err(e) = ctx.run_planned(&u) {
            ctx.warn(format!(
                "could not {}: {}",
                kvmnet_protocol::Step::summary(&u),
                e.msg
            ));
        }
    }
    Ok(())
}

/// Roll back at once after `why`, when this run took a checkpoint (else `why` as it is),
/// and put back what NetworkManager does not restore: the memory file, guests' taps on the
/// bridge. The error says it rolled back, what did not hold, and whether the host's
/// addresses are back.
pub fn roll_back(ctx: &mut Ctx, plan: &mut Plan, why: Error) -> Error {
    let Some(taken) = plan.desired.checkpoint.take() else {
        return why;
    };
    let verdict = match ctx.bus_write(&cp::rollback(&taken.path)) {
        Ok(reply) => {
            ctx.rolled_back = true;
            not_restored(&cp::rollback_failures(&reply))
        }
        Err(e) if gone(&e) => {
            ctx.rolled_back = true;
            " (NetworkManager had already rolled back at its timeout)".to_string()
        }
        Err(e) => {
            return Error {
                msg: format!(
                    "{}; rolling back failed ({}): NetworkManager rolls back by itself {} s after the checkpoint was taken",
                    why.msg, e.msg, taken.timeout
                ),
                ..why
            }
        }
    };
    let after = crate::reach::after_rollback(ctx, plan);
    let devices: Vec<String> = plan
        .desired
        .guard
        .as_ref()
        .map(|g| g.devices.clone())
        .unwrap_or_default();
    let their = if devices.len() == 1 { "its" } else { "their" };
    Error {
        msg: format!(
            "{}; rolled back: NetworkManager restored {} to {their} state before this run{verdict}{after}",
            why.msg,
            devices.join(", ")
        ),
        ..why
    }
}

fn not_restored(failures: &[(String, u64)]) -> String {
    if failures.is_empty() {
        return String::new();
    }
    let what: Vec<String> = failures
        .iter()
        .map(|(d, code)| format!("{d} (result {code})"))
        .collect();
    format!(", except {}", what.join(", "))
}
