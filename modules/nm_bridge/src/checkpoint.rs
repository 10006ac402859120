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
//! D-Bus only while it says a rollback may still be pending. The marker names the
//! checkpoint by its path, its `Created` time and its devices: NetworkManager numbers
//! checkpoints from 1 again after a restart, so a path alone could name another client's.
//! Once the checkpoint is gone (rolled back, or lost with a NetworkManager restart), the
//! next run puts back what NetworkManager does not restore (the memory file, guests' taps
//! NetworkManager before 1.38 detached from the bridge) and removes the marker.

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
/// How far NetworkManager's `Created` of a checkpoint may be from the time read just
/// before creating it (one D-Bus round trip, on a loaded host).
pub const CREATED_SLACK_MS: i64 = 5000;

pub fn marker_path(bridge: &str) -> String {
    format!("{RUN_DIR}/{bridge}.checkpoint")
}

/// A checkpoint this run took.
#[derive(Debug, Clone)]
pub struct Taken {
    pub path: String,
    /// Its devices: (interface, object path).
    pub devices: Vec<(String, String)>,
    /// CLOCK_BOOTTIME (ms) just before it was created: within [`CREATED_SLACK_MS`] of the
    /// `Created` property NetworkManager gives it.
    pub created_ms: Option<i64>,
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

/// What the marker holds: the checkpoint (its path, when it was created and its devices'
/// paths, so that a later run recognises it), when NetworkManager rolls it back, the
/// guests' taps that were in the bridge, and, when the run rewrites the memory file, that
/// file's text before it (`text: None`: there was none). NetworkManager's rollback
/// restores neither: the next run does.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    checkpoint: String,
    rollback_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    devices: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_before: Option<MemoryBefore>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    taps: Vec<String>,
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
    taps: &[String],
) -> Command {
    let m = Marker {
        checkpoint: taken.map_or(PLACEHOLDER.to_string(), |t| t.path.clone()),
        rollback_at_ms: taken.and_then(|t| t.rollback_at_ms),
        created_ms: taken.and_then(|t| t.created_ms),
        devices: taken
            .map(|t| t.devices.iter().map(|(_, p)| p.clone()).collect())
            .unwrap_or_default(),
        memory_before: memory_before.map(|t| MemoryBefore { text: t.clone() }),
        taps: taps.to_vec(),
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
    /// Its checkpoint is gone: what is left to put back, then the marker is removed.
    Over(Leftover),
}

/// What an interrupted run leaves to the next one once NetworkManager rolled it back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftover {
    /// The memory file's text before that run (`Some(None)`: there was none), if that run
    /// rewrote it.
    pub memory_before: Option<Option<String>>,
    /// Guests' taps that were in the bridge (NetworkManager before 1.38 detaches them on
    /// rollback).
    pub taps: Vec<String>,
}

/// Whether the checkpoint NetworkManager holds at the marker's path is the marker's: made
/// when the marker says (within [`CREATED_SLACK_MS`]) on the same devices (NetworkManager
/// numbers checkpoints from 1 again after a restart, and another client may hold that
/// path now). A marker of an older kvmnet names the path only.
fn is_marked(m: &Marker, c: &cp::Checkpoint) -> bool {
    let mut want = m.devices.clone();
    let mut have = c.devices.clone();
    want.sort();
    have.sort();
    m.created_ms
        .is_none_or(|t| (c.created_ms - t).abs() <= CREATED_SLACK_MS)
        && (want.is_empty() || want == have)
}

/// The checkpoint the marker names, if NetworkManager still holds it, or what an
/// interrupted run left to put back. No marker: nothing is asked over D-Bus; nor when its
/// rollback time is long past (NetworkManager has rolled back by then).
pub fn read_marker(ctx: &mut Ctx, bridge: &str) -> Result<Option<Marked>> {
    let Some(text) = ctx.read_file(&marker_path(bridge)) else {
        return Ok(None);
    };
    let m = match serde_json::from_str::<Marker>(&text) {
        Ok(m) => m,
        // Not one this module wrote: remove it, nothing else to put back.
        Err(_) => return Ok(Some(Marked::Over(Leftover::default()))),
    };
    let now = uptime_ms(ctx);
    let past = matches!((now, m.rollback_at_ms), (Some(n), Some(at)) if n > at + 5000);
    if !past {
        if let Some(c) = cp::read(ctx, &m.checkpoint)?.filter(|c| is_marked(&m, c)) {
            return Ok(Some(Marked::Pending(describe(ctx, &c, now))));
        }
    }
    Ok(Some(Marked::Over(Leftover {
        memory_before: m.memory_before.map(|b| b.text),
        taps: m.taps,
    })))
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
    let mut named = Vec::new();
    for d in devices {
        if let Some(p) = device::path_by_iface(ctx, d)? {
            named.push((d.clone(), p));
        }
    }
    let paths: Vec<String> = named.iter().map(|(_, p)| p.clone()).collect();
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
        devices: named,
        created_ms: now,
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
/// addresses are back. A device NetworkManager could not restore keeps what this run did
/// to it: then the host is not as before (`changed: true`) and the message names it.
pub fn roll_back(ctx: &mut Ctx, plan: &mut Plan, why: Error) -> Error {
    let Some(taken) = plan.desired.checkpoint.take() else {
        return why;
    };
    let (failures, note) = match ctx.bus_write(&cp::rollback(&taken.path)) {
        Ok(reply) => (cp::rollback_failures(&reply), ""),
        Err(e) if gone(&e) => (
            Vec::new(),
            " (NetworkManager had already rolled back at its timeout)",
        ),
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
    ctx.rolled_back = failures.is_empty();
    let failed: Vec<(String, u64)> = failures
        .iter()
        .map(|(path, code)| (iface(&taken, path), *code))
        .collect();
    let after = crate::reach::after_rollback(ctx, plan);
    let devices: Vec<String> = plan
        .desired
        .guard
        .as_ref()
        .map(|g| g.devices.clone())
        .unwrap_or_default();
    let what = restored_phrase(&devices, &failed);
    let mut err = Error {
        msg: format!("{}; {what}{note}{after}", why.msg),
        ..why
    };
    if !failed.is_empty() {
        let names: Vec<String> = failed.into_iter().map(|(d, _)| d).collect();
        err = err.with("not_restored", names);
    }
    err
}

/// "rolled back: NetworkManager restored br0, ens32 to their state before this run", or,
/// when some devices were not restored, which ones and why.
fn restored_phrase(devices: &[String], failed: &[(String, u64)]) -> String {
    let back: Vec<&str> = devices
        .iter()
        .filter(|d| !failed.iter().any(|(f, _)| f == *d))
        .map(String::as_str)
        .collect();
    let their = |n: usize| if n == 1 { "its" } else { "their" };
    if failed.is_empty() {
        return format!(
            "rolled back: NetworkManager restored {} to {} state before this run",
            back.join(", "),
            their(back.len())
        );
    }
    let not: Vec<String> = failed
        .iter()
        .map(|(d, code)| format!("{d} ({}, result {code})", result_words(*code)))
        .collect();
    let restored = match back.is_empty() {
        true => "none of the devices".to_string(),
        false => format!(
            "{} to {} state before this run",
            back.join(", "),
            their(back.len())
        ),
    };
    format!(
        "rolled back only in part: NetworkManager restored {restored}, but not {}, which may still hold this run's changes",
        not.join(", ")
    )
}

/// The interface of a device path of the checkpoint (the path itself if unknown).
fn iface(taken: &Taken, path: &str) -> String {
    taken
        .devices
        .iter()
        .find(|(_, p)| p == path)
        .map_or_else(|| path.to_string(), |(d, _)| d.clone())
}

/// NetworkManager's `NMRollbackResult` in words.
fn result_words(code: u64) -> &'static str {
    match code {
        1 => "the device no longer exists",
        2 => "the device is not managed",
        _ => "the rollback failed",
    }
}
