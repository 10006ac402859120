//! Runs the planned steps in order. Three need more than their planned command:
//! - `AddProfile`: NetworkManager picks the new profile's UUID (before 1.42 it refuses
//!   one given as `connection.uuid`); it is read from nmcli's answer and fills in the
//!   `UpProfile` step that activates that profile.
//! - `DeleteLink`: a link already gone (NetworkManager removed it with its profile) is as
//!   deleted as it gets.
//! - `DeleteProfiles { keep_link: true }`: NetworkManager removes a link it made together
//!   with its profile, a moment after nmcli returns. Once the link has settled, the link
//!   steps after it (planned against the link as it was) run as planned if the link is
//!   still as it was, else the steps from what is there now replace them.

use crate::current::Current;
use crate::params::Params;
use crate::plan::{link_actions, up_profile_command, Action, Desired, LinkWant, Plan};
use kvmnet_iproute::{find, read_links, Link, MacvlanMode};
use kvmnet_nmcli::conn::{added_uuid, deleted_nothing};
use kvmnet_protocol::output::capitalise;
use kvmnet_protocol::{Command, Ctx, Error, Output, Result, Step};
use std::time::Duration;

/// How often, and for how long at most, the link is read while NetworkManager settles.
const SETTLE_POLL: Duration = Duration::from_millis(100);
/// A link that has not changed for this long (since the profiles went) stays.
const SETTLE_STABLE: Duration = Duration::from_millis(500);
const SETTLE_MAX: Duration = Duration::from_secs(3);

pub fn apply(ctx: &mut Ctx, p: &Params, cur: &Current, plan: &mut Plan) -> Result<()> {
    let remade = run_steps(ctx, p, cur, &plan.desired, &plan.actions)
        .map_err(|e| kvmnet_nmcli::conn::explain_failure(ctx, e))?;
    if remade {
        let base = plan
            .msg
            .clone()
            .unwrap_or_else(|| capitalise(&plan.summaries()));
        plan.msg = Some(format!(
            "{base}; NetworkManager removed {} with its profile: made it again as a runtime link with the same settings and address",
            p.name
        ));
    }
    Ok(())
}

/// Run the steps; true when NetworkManager took the link with its profile and it was
/// made again.
fn run_steps(
    ctx: &mut Ctx,
    p: &Params,
    cur: &Current,
    desired: &Desired,
    actions: &[Action],
) -> Result<bool> {
    let mut added: Option<String> = None;
    for a in actions {
        match a {
            Action::AddProfile { id, .. } => {
                let out = ctx.run_step(a, &command(a)?, |_| false)?;
                added = Some(added_uuid(&out.stdout).ok_or_else(|| no_uuid(id, &out))?);
            }
            Action::UpProfile { id, uuid: None } => {
                let uuid = added.as_deref().ok_or_else(|| {
                    Error::bug(format!(
                        "profile {id} is to be activated before it was created"
                    ))
                })?;
                ctx.run_step(a, &up_profile_command(uuid), |_| false)?;
            }
            Action::DeleteProfiles {
                keep_link,
                profiles,
            } => {
                // A profile already gone (nmcli rc 10) is as deleted as it gets; if every
                // one was, the delete changed nothing.
                let out = ctx.run_step(a, &command(a)?, |o| o.rc == 10)?;
                let uuids: Vec<String> = profiles.iter().map(|x| x.uuid.clone()).collect();
                if deleted_nothing(&out, &uuids) {
                    ctx.forget_last_write();
                }
                if let (true, Desired::Present { link: want, .. }) = (*keep_link, desired) {
                    if let Some((steps, gone)) = replan_link(ctx, &p.name, cur, want)? {
                        for s in &steps {
                            ctx.run_planned(s)?;
                        }
                        return Ok(gone);
                    }
                }
            }
            Action::DeleteLink { .. } => match ctx.run_step(a, &command(a)?, |_| false) {
                Ok(_) => {}
                Err(e) if link_already_gone(&e) => {}
                Err(e) => return Err(e),
            },
            _ => {
                ctx.run_planned(a)?;
            }
        }
    }
    Ok(false)
}

fn command(a: &Action) -> Result<Command> {
    a.command()
        .ok_or_else(|| Error::bug(format!("step without a command: {}", a.summary())))
}

fn no_uuid(id: &str, out: &Output) -> Error {
    Error::new(
        kvmnet_protocol::ErrorKind::CommandFailed,
        format!(
            "NetworkManager created profile {id} but its answer ({:?}) names no UUID to activate it by",
            out.stdout.trim()
        ),
    )
    .with("stdout", out.stdout.clone())
}

/// `ip link del` of a link that no longer exists.
fn link_already_gone(e: &Error) -> bool {
    e.extra
        .get("stderr")
        .and_then(|v| v.as_str())
        .is_some_and(|s| s.contains("Cannot find device") || s.contains("does not exist"))
}

/// After the profiles went: `None` when the link is as `read` found it (the planned steps
/// stand), else the steps from what is there now, and whether the link is gone.
fn replan_link(
    ctx: &mut Ctx,
    name: &str,
    cur: &Current,
    want: &LinkWant,
) -> Result<Option<(Vec<Action>, bool)>> {
    let before = cur.link(name);
    let now = settled_link(ctx, name)?;
    if facts(now.as_ref()) == facts(before) {
        return Ok(None);
    }
    let gone = before.is_some() && now.is_none();
    Ok(Some((link_actions(name, now.as_ref(), want, false), gone)))
}

/// What the steps depend on of a link.
type Facts = (
    u32,
    Option<String>,
    Option<MacvlanMode>,
    Option<String>,
    bool,
);

fn facts(l: Option<&Link>) -> Option<Facts> {
    l.map(|l| {
        (
            l.ifindex,
            l.link.clone(),
            l.macvlan_mode(),
            l.mac(),
            l.is_up(),
        )
    })
}

/// Read link `name` until it is gone or has not changed for [`SETTLE_STABLE`] (at most
/// [`SETTLE_MAX`]).
fn settled_link(ctx: &mut Ctx, name: &str) -> Result<Option<Link>> {
    let start = ctx.now();
    let mut prev: Option<Option<Facts>> = None;
    loop {
        let now = find(&read_links(ctx, false)?, name).cloned();
        let waited = ctx.now() - start;
        let stable = prev.as_ref() == Some(&facts(now.as_ref())) && waited >= SETTLE_STABLE;
        if now.is_none() || stable || waited >= SETTLE_MAX {
            return Ok(now);
        }
        prev = Some(facts(now.as_ref()));
        ctx.sleep(SETTLE_POLL);
    }
}
