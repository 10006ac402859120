//! Pure, like plan.rs: what a plan that can cut the host off looks like. Its steps go
//! inside a checkpoint (taken first and noted, committed last); a takeover (`inherit`)
//! says in `takeover` and in the message what moves to the bridge; an interrupted run's
//! leftovers are put back first.

use crate::apply::Action;
use crate::checkpoint::Leftover;
use crate::current::Current;
use crate::guard::Guard;
use crate::inherit::Source;
use crate::params::Params;
use crate::plan::Plan;
use kvmnet_protocol::output::capitalise;
use kvmnet_protocol::{Env, Step};
use serde_json::{json, Map, Value};

/// What an interrupted run left first (NetworkManager rolled its changes back): its memory
/// file as it was before that run, the guests' taps NetworkManager detached from the bridge
/// back in it, and its marker removed.
pub fn put_back(env: &mut Env, p: &Params, cur: &Current, left: &Leftover, plan: &mut Plan) {
    let bridge = p.name.clone();
    let mut steps = Vec::new();
    if let Some(text) = &left.memory_before {
        steps.push(Action::PutBackMemory {
            bridge: bridge.clone(),
            text: text.clone(),
        });
    }
    if cur.link(&bridge).is_some() {
        for tap in &left.taps {
            let detached = cur
                .link(tap)
                .is_some_and(|l| l.master.as_deref() != Some(bridge.as_str()));
            if detached {
                steps.push(Action::Reattach {
                    tap: tap.clone(),
                    bridge: bridge.clone(),
                });
            }
        }
    }
    steps.push(Action::ClearMarker { bridge });
    let first = steps
        .iter()
        .map(Step::summary)
        .collect::<Vec<_>>()
        .join("; ");
    let had = match plan.changed() {
        true => plan.msg.take(),
        false => {
            plan.msg = None; // the default message names the steps
            None
        }
    };
    steps.append(&mut plan.actions);
    plan.actions = steps;
    if let Some(m) = had {
        plan.msg = Some(match env.check_mode() {
            true => format!("would {first}; {m}"),
            false => format!("{}; {m}", capitalise(&first)),
        });
    }
}

/// Put the plan's steps inside a checkpoint: take it first (and note it), commit last.
/// The message names the steps and the checkpoint.
pub fn guarded(env: &mut Env, cur: &Current, mut g: Guard, plan: &mut Plan) {
    if plan.actions.is_empty() {
        return;
    }
    plan.msg = Some(match env.check_mode() {
        true => format!("would {}, {}", work(plan), g.phrase(false)),
        false => format!("{}, {}", capitalise(&work(plan)), g.phrase(true)),
    });
    let rewrites_memory = plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::Remember { .. } | Action::Forget { .. }));
    if rewrites_memory {
        g.memory_before = Some(cur.remembered.raw.clone());
    }
    let bridge = plan.desired.name.clone();
    let mut steps = vec![
        Action::Checkpoint {
            devices: g.devices.clone(),
            timeout: g.timeout,
        },
        Action::MakeRunDir,
        Action::MarkCheckpoint {
            bridge: bridge.clone(),
            memory_before: g.memory_before.clone(),
            taps: g.external_ports.clone(),
        },
    ];
    steps.append(&mut plan.actions);
    steps.push(Action::Commit);
    steps.push(Action::Unmark { bridge });
    plan.actions = steps;
    plan.set(
        "checkpoint",
        json!({"devices": g.devices, "rollback_timeout": g.timeout, "why": g.why}),
    );
    plan.desired.guard = Some(g);
}

/// The steps' summaries without the checkpoint's own (the message names the checkpoint).
fn work(plan: &Plan) -> String {
    plan.actions
        .iter()
        .filter(|a| {
            !matches!(
                a,
                Action::Checkpoint { .. }
                    | Action::MakeRunDir
                    | Action::MarkCheckpoint { .. }
                    | Action::Commit
                    | Action::Unmark { .. }
            )
        })
        .map(kvmnet_protocol::Step::summary)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `takeover` in the result, and a message that says what moves to the bridge.
pub fn values(env: &mut Env, p: &Params, source: Option<&Source>, plan: &mut Plan) {
    let Some(s) = source.filter(|_| plan.changed()) else {
        return;
    };
    let kept: Vec<(&str, String)> = s
        .settings()
        .into_iter()
        .filter(|(k, v)| {
            plan.desired
                .bridge
                .settings
                .iter()
                .any(|(dk, dv)| dk == k && dv == v)
        })
        .collect();
    let mac = s.mac.clone().filter(|_| p.mac.is_none());
    let settings: Map<String, Value> = kept
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let profile = s.conn.map(|c| json!({"uuid": c.uuid, "conn_name": c.id()}));
    plan.set(
        "takeover",
        json!({"port": s.port, "profile": profile, "mac": mac, "settings": settings}),
    );
    let mut what = format!("{}'s IP configuration", s.port);
    if let Some(c) = s.conn {
        let list: Vec<String> = kept.iter().map(|(k, v)| format!("{k} {v}")).collect();
        what.push_str(&format!(" (profile {}: {})", c.id(), list.join(", ")));
    }
    if let Some(m) = &mac {
        what.push_str(&format!(" and MAC address {m}"));
    }
    let guard = plan.desired.guard.as_ref();
    let checkpoint = guard
        .map(|g| format!(", {}", g.phrase(!env.check_mode())))
        .unwrap_or_default();
    let verb = match env.check_mode() {
        true => "would take over",
        false => "Took over",
    };
    plan.msg = Some(format!(
        "{verb} {what} into {}: {}{checkpoint}",
        p.name,
        work(plan)
    ));
}
