//! After a change: read the host again (as `read` does: 1 ip, and 1 nmcli where
//! NetworkManager is involved) and compare with `plan.desired`. NetworkManager finishes
//! some work just after nmcli returns (removing a link with its profile), so a mismatch is
//! read again for a moment before it fails the run.

use crate::current::{self, Current};
use crate::params::{Params, Persistence};
use crate::plan::{link_value, profile_changes, select_profile, Desired, LinkWant, Plan};
use kvmnet_iproute::{Link, MacvlanMode};
use kvmnet_protocol::{Ctx, Error, Result};
use serde_json::Value;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(150);
/// 20 reads at most.
const MAX_WAIT: Duration = Duration::from_millis(150 * 19);

pub fn verify(ctx: &mut Ctx, p: &Params, plan: &mut Plan) -> Result<()> {
    let start = ctx.now();
    loop {
        let cur = current::read(ctx, p)?;
        let bad = mismatches(p, &plan.desired, &cur);
        if bad.is_empty() {
            plan.set("link", result_value(p, &cur));
            return Ok(());
        }
        if ctx.now() - start >= MAX_WAIT {
            return Err(Error::verification(format!(
                "after the change, {}",
                bad.join("; ")
            )));
        }
        ctx.sleep(POLL);
    }
}

/// The `link` return value from what was read.
fn result_value(p: &Params, cur: &Current) -> Value {
    match cur.link(&p.name) {
        None => Value::Null,
        Some(l) => {
            let prof = select_profile(cur.profiles(), &p.name, p.conn_name.as_deref());
            link_value(l, prof, cur.nm_read())
        }
    }
}

fn leftovers(cur: &Current) -> Vec<String> {
    cur.profiles()
        .iter()
        .map(|x| format!("NetworkManager profile {} ({}) still exists", x.id, x.uuid))
        .collect()
}

/// What does not match the request in a freshly read state (empty: all is in effect).
fn mismatches(p: &Params, desired: &Desired, cur: &Current) -> Vec<String> {
    let name = &p.name;
    let (want, persistence) = match desired {
        Desired::Absent => {
            let mut bad = leftovers(cur);
            if cur.link(name).is_some() {
                bad.insert(0, format!("{name} still exists"));
            }
            return bad;
        }
        Desired::Present { link, persistence } => (link, *persistence),
    };
    let Some(link) = cur.link(name) else {
        return vec![format!("{name} does not exist")];
    };
    let mut bad = link_mismatches(name, want, link);
    match persistence {
        Persistence::Profile => bad.extend(profile_mismatches(name, want, cur)),
        Persistence::NoProfile => bad.extend(leftovers(cur)),
        Persistence::Untouched => {}
    }
    bad
}

fn link_mismatches(name: &str, want: &LinkWant, c: &Link) -> Vec<String> {
    let mut bad = Vec::new();
    if c.kind() != Some("macvtap") {
        bad.push(format!("{name} is a {}, not a macvtap", c.describe_kind()));
    }
    if c.link.as_deref() != Some(want.parent.as_str()) {
        bad.push(format!(
            "{name}'s parent is {:?}, not {:?}",
            c.link,
            Some(&want.parent)
        ));
    }
    let mode = c.macvlan_mode().map(|m| m.name().to_string());
    if mode.as_deref() != Some(want.mode.name()) {
        bad.push(format!(
            "{name}'s mode is {:?}, not {:?}",
            mode,
            Some(want.mode.name())
        ));
    }
    if want.mode != MacvlanMode::Passthrough && c.mac() != want.mac {
        bad.push(format!(
            "{name}'s address is {:?}, not {:?}",
            c.mac(),
            want.mac
        ));
    }
    if c.is_up() != want.up {
        bad.push(format!(
            "{name} is {}",
            if c.is_up() { "up" } else { "down" }
        ));
    }
    bad
}

fn profile_mismatches(name: &str, want: &LinkWant, cur: &Current) -> Vec<String> {
    let profiles = cur.profiles();
    let mut bad = Vec::new();
    if profiles.len() != 1 {
        bad.push(format!(
            "{} NetworkManager profiles for {name} (want one)",
            profiles.len()
        ));
    }
    if let Some(x) = profiles.first() {
        if !x.active_on(name) {
            bad.push(format!(
                "NetworkManager profile {} is not active on {name}",
                x.id
            ));
        }
        let ch: Vec<&str> = profile_changes(x, want).iter().map(|(k, _)| *k).collect();
        if !ch.is_empty() {
            bad.push(format!(
                "NetworkManager profile {} differs in {}",
                x.id,
                ch.join(", ")
            ));
        }
    }
    bad
}
