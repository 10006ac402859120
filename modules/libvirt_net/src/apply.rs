//! Run the planned virsh commands; when one fails after the definition changed, or the
//! change does not hold (verify), put the network back as it was: nothing is left
//! half-defined.

use crate::params::Params;
use crate::plan::{pending_warning, Op, Plan};
use kvmnet_protocol::{Ctx, Error, Result, Step};
use kvmnet_virtxml::netstate;
use kvmnet_virtxml::network;
use kvmnet_virtxml::Element;

pub fn apply(ctx: &mut Ctx, p: &Params, plan: &mut Plan) -> Result<()> {
    for a in &plan.actions {
        if let Err(e) = ctx.run_planned(a) {
            return Err(put_back(ctx, p, plan, e, None));
        }
    }
    Ok(())
}

fn virsh(uri: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec!["virsh".to_string(), "-c".into(), uri.into()];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// The commands that bring the network from `now` back to what `plan.desired.before`
/// recorded (a removal is never undone: it has no definition to put back).
fn undo(
    ctx: &Ctx,
    p: &Params,
    plan: &Plan,
    now: &netstate::NetState,
) -> Vec<(Vec<String>, Option<String>)> {
    let b = &plan.desired.before;
    let (uri, name) = (p.uri.as_str(), p.name.as_str());
    let mut cmds = Vec::new();
    if !b.exists {
        if now.active {
            cmds.push((virsh(uri, &["net-destroy", "--network", name]), None));
        }
        if now.persistent {
            cmds.push((virsh(uri, &["net-undefine", "--network", name]), None));
        }
        return cmds;
    }
    let old = Element::parse(&b.xml).ok();
    let defined_differs = match (&now.inactive, &old) {
        (Some(n), Some(o)) => !network::same_definition(o, n),
        _ => true,
    };
    if b.persistent && defined_differs {
        cmds.push((
            virsh(uri, &["net-define", "--file", "/dev/stdin"]),
            Some(b.xml.clone()),
        ));
    } else if !b.persistent && now.persistent {
        // It was transient: undefining leaves it running as it was.
        cmds.push((virsh(uri, &["net-undefine", "--network", name]), None));
    }
    let restarted = plan
        .actions
        .iter()
        .any(|a| a.op == Op::Stop { restart: true } && ctx.done.contains(&a.summary()));
    if b.active && now.active && restarted {
        cmds.push((virsh(uri, &["net-destroy", "--network", name]), None));
        cmds.push((virsh(uri, &["net-start", "--network", name]), None));
    } else if b.active && !now.active {
        cmds.push((virsh(uri, &["net-start", "--network", name]), None));
    } else if !b.active && now.active {
        cmds.push((virsh(uri, &["net-destroy", "--network", name]), None));
    }
    if b.persistent && now.autostart != b.autostart {
        let mut a = vec!["net-autostart", "--network", name];
        if !b.autostart {
            a.push("--disable");
        }
        cmds.push((virsh(uri, &a), None));
    }
    cmds
}

/// After `err`: put the network back as it was before the run and say so (the run then
/// reports `changed: false`); a run that removed the network, or changed nothing, is
/// left as it is. `now`: the network's state if just read (else it is read).
pub fn put_back(
    ctx: &mut Ctx,
    p: &Params,
    plan: &Plan,
    err: Error,
    now: Option<netstate::NetState>,
) -> Error {
    if ctx.commands.is_empty() || plan.desired.absent {
        return err;
    }
    let now = match now
        .map(Ok)
        .unwrap_or_else(|| netstate::read(ctx, &p.uri, &p.name))
    {
        Ok(n) => n,
        Err(e) => {
            return Error {
                msg: format!("{}; rolling back failed: {}", err.msg, e.msg),
                ..err
            }
        }
    };
    for (argv, stdin) in undo(ctx, p, plan, &now) {
        if let Err(e) = ctx.write(&argv, stdin.as_deref()) {
            return Error {
                msg: format!("{}; rolling back failed too: {}", err.msg, e.msg),
                ..err
            };
        }
    }
    ctx.rolled_back = true;
    // No new definition is pending any more.
    let pending = pending_warning(&p.name);
    ctx.warnings.retain(|w| *w != pending);
    let b = &plan.desired.before;
    let how = if b.exists {
        "its previous definition and state were put back"
    } else {
        "it was removed again"
    };
    let mut err = Error {
        msg: format!(
            "{}; rolled back: network {} is as it was before the run ({how})",
            err.msg, p.name
        ),
        ..err
    };
    // `xml` is the definition the network has now: the previous one again. What libvirt
    // had made of the task's definition stays visible as `stored_xml`.
    if let Some(stored) = err.extra.remove("xml") {
        err.extra.insert("stored_xml".into(), stored);
    }
    let now = if b.exists {
        b.xml.clone().into()
    } else {
        serde_json::Value::Null
    };
    err.with("xml", now)
}
